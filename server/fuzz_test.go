package server

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"unicode/utf8"

	"github.com/pyexec/pyexec/executor"
)

// FuzzDecodeRequest feeds raw bytes to the request decoder, as /execute's
// body and as ExecuteEvent's message data: it never panics, answers every
// input with a request or an invalid_request, never accepts invalid UTF-8,
// and never reads a body past its cap.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"script": "def main():\n    return 1"}`,
		`{"script": ""}`, `{"script": null}`, `{"script": 1}`, `{}`, `[]`, `null`, ``,
		`{"script": "\u0000"}`, `{"script": "\ud800"}`, "{\"script\": \"\xff\"}",
		"\xef\xbb\xbf{\"script\": \"x\"}", `{"script": "a", "script": "b"}`, `{"script": "x"} trailing`,
		`{"script": "x", "id": "caller"}`, `{"script": "x", "id": 7}`, `{"script": "x", "id": null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := httptest.NewRequest(http.MethodPost, "/execute", bytes.NewReader(data))
		req, err := readRequest(httptest.NewRecorder(), r)
		check(t, "readRequest", data, req, err)
		if err == nil && len(data) > maxBodyBytes {
			t.Fatalf("readRequest accepted a %d-byte body past the %d cap", len(data), maxBodyBytes)
		}
		if err == nil && req.callerID != "" {
			t.Fatalf("readRequest(%q) read a caller ID %q, which /execute ignores", data, req.callerID)
		}
		req, err = decodeRequest(data, messageData)
		check(t, "decodeRequest(messageData)", data, req, err)
	})
}

// check fails t unless err is an invalid_request with a message, or data is
// UTF-8 and so is what was decoded from it.
func check(t *testing.T, what string, data []byte, req request, err error) {
	t.Helper()
	if err != nil {
		var e *executor.Error
		if !errors.As(err, &e) || e.Type != executor.TypeInvalidRequest || e.Message == "" {
			t.Fatalf("%s(%q) error %v, want an invalid_request with a message", what, data, err)
		}
		if req.script != "" {
			t.Fatalf("%s(%q) returned script %q with error %v", what, data, req.script, err)
		}
		return
	}
	if !utf8.Valid(data) {
		t.Fatalf("%s accepted input that is not UTF-8: %q", what, data)
	}
	if !utf8.ValidString(req.script) || !utf8.ValidString(req.callerID) {
		t.Fatalf("%s(%q) returned text that is not UTF-8: %q, %q", what, data, req.script, req.callerID)
	}
}
