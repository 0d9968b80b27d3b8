package pyexec

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"unicode/utf8"

	"github.com/pyexec/pyexec/executor"
)

// FuzzReadScript feeds raw request bodies to the request decoder: it never
// panics, answers every body with a script or an invalid_request, never
// accepts invalid UTF-8, and never reads past its cap.
func FuzzReadScript(f *testing.F) {
	for _, seed := range []string{
		`{"script": "def main():\n    return 1"}`,
		`{"script": ""}`, `{"script": null}`, `{"script": 1}`, `{}`, `[]`, `null`, ``,
		`{"script": "\u0000"}`, `{"script": "\ud800"}`, "{\"script\": \"\xff\"}",
		"\xef\xbb\xbf{\"script\": \"x\"}", `{"script": "a", "script": "b"}`, `{"script": "x"} trailing`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/execute", bytes.NewReader(body))
		w := httptest.NewRecorder()
		script, err := readScript(w, r)
		if err != nil {
			var e *executor.Error
			if !errors.As(err, &e) || e.Type != executor.TypeInvalidRequest || e.Message == "" {
				t.Fatalf("readScript(%q) error %v, want an invalid_request with a message", body, err)
			}
			if script != "" {
				t.Fatalf("readScript(%q) returned script %q with error %v", body, script, err)
			}
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("readScript accepted a body that is not UTF-8: %q", body)
		}
		if !utf8.ValidString(script) {
			t.Fatalf("readScript(%q) returned a script that is not UTF-8: %q", body, script)
		}
		if len(body) > maxBodyBytes {
			t.Fatalf("readScript accepted a %d-byte body past the %d cap", len(body), maxBodyBytes)
		}
	})
}
