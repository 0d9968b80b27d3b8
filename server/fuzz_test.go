package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor"
)

// fuzzCap is the request cap FuzzDecodeRequest decodes under: small, so
// that the fuzzer reaches past it.
const fuzzCap = 4 << 10

// FuzzDecodeRequest feeds raw bytes to the request decoder, as /execute's
// body and as ExecuteEvent's message data: it never panics, answers every
// input with a request or an invalid_request, never accepts invalid UTF-8,
// never reads a body past its cap, and keeps limits within the service's
// caps. What it accepts goes on to the executor's rules, which answer it
// with an invalid_request or accept it (and then, with no sandbox started,
// sandbox_unavailable): never anything else.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"script": "def main():\n    return 1"}`,
		`{"script": ""}`, `{"script": null}`, `{"script": 1}`, `{}`, `[]`, `null`, ``,
		`{"script": "\u0000"}`, `{"script": "\ud800"}`, "{\"script\": \"\xff\"}",
		"\xef\xbb\xbf{\"script\": \"x\"}", `{"script": "a", "script": "b"}`, `{"script": "x"} trailing`,
		`{"script": "x", "id": "caller"}`, `{"script": "x", "id": 7}`, `{"script": "x", "id": null}`,
		`{"script": "x", "input": null}`, `{"script": "x", "input": 123456789012345678901234567890.5e-3}`,
		`{"script": "x", "input": {"a": [1, "b", {"c": null}]}}`, `{"script": "x", "input": }`,
		`{"script": "x", "stdin": "line\n"}`, `{"script": "x", "stdin": 5}`, `{"script": "x", "stdin": null}`,
		`{"script": "x", "files": [{"path": "data/in.csv", "content": "x\n1\n"}]}`,
		`{"script": "x", "files": [{"path": "a.bin", "content": "AP8=", "encoding": "base64"}]}`,
		`{"script": "x", "files": [{"path": "a.bin", "content": "AP9=", "encoding": "base64"}]}`,
		`{"script": "x", "files": [{"path": "a.bin", "content": "AP8", "encoding": "base64"}]}`,
		`{"script": "x", "files": [{"path": "a", "content": "x", "encoding": "latin-1"}]}`,
		`{"script": "x", "files": [{"path": "../etc/passwd", "content": ""}, {"path": "/abs", "content": ""}]}`,
		`{"script": "x", "files": [{"path": "a", "content": ""}, {"path": "a/b", "content": ""}, {"path": "a", "content": ""}]}`,
		`{"script": "x", "files": [{"path": "a\u0000b", "content": ""}, {"path": "a//b", "content": ""}]}`,
		`{"script": "x", "files": [{"path": 1, "content": ""}]}`, `{"script": "x", "files": [{"path": "a"}]}`,
		`{"script": "x", "files": [null]}`, `{"script": "x", "files": {"path": "a"}}`, `{"script": "x", "files": null}`,
		`{"script": "x", "limits": {"timeout_seconds": 5, "memory_mb": 256}}`,
		`{"script": "x", "limits": {"timeout_seconds": 0.001}}`, `{"script": "x", "limits": {"timeout_seconds": 1e-300}}`,
		`{"script": "x", "limits": {"timeout_seconds": 1e400}}`, `{"script": "x", "limits": {"timeout_seconds": -1}}`,
		`{"script": "x", "limits": {"timeout_seconds": "5"}}`, `{"script": "x", "limits": {"memory_mb": 64.5}}`,
		`{"script": "x", "limits": {"memory_mb": 64.0}}`, `{"script": "x", "limits": {"memory_mb": 0}}`,
		`{"script": "x", "limits": {"memory_mb": 99999999999999999999}}`, `{"script": "x", "limits": []}`,
		`{"script": "x", "limits": {"timeout_seconds": null, "memory_mb": null}}`,
		`{"script": "x", "files": [], "limits": {}}`,
		`{"script": "x", "input": ` + strings.Repeat("[", 500) + strings.Repeat("]", 500) + `}`,
		`{"script": "x", "input": ` + strings.Repeat("[", 501) + strings.Repeat("]", 501) + `}`,
		`{"script": "x", "input": ` + strings.Repeat(`{"a":`, 501) + `0` + strings.Repeat("}", 501) + `}`,
		`{"script": "x", "input": ` + strings.Repeat("9", 4300) + `}`,
		`{"script": "x", "input": [-` + strings.Repeat("9", 4301) + `]}`,
		`{"script": "x", "input": {"big": 1e400, "small": 1e-400}}`, `{"script": "x", "input": -1.7976931348623159e308}`,
		`{"script": "x", "input": "\ud800"}`, `{"script": "x", "stdin": "\udc00"}`,
		`{"script": "x", "files": [{"path": "a\ud800", "content": ""}]}`,
		`{"script": "x", "files": [{"path": "\ud83d\ude00", "content": "\ud83d"}]}`,
		`{"script": "x", "files": [{"path": "a\\ud800", "content": ""}]}`,
	} {
		f.Add([]byte(seed))
	}
	caps := executor.Limits{Timeout: 30 * time.Second, MemoryBytes: 512 << 20, MaxInputFiles: 100, MaxInputFilesBytes: 1 << 10}
	dec := decoder{maxBytes: fuzzCap, caps: caps}
	cfg, err := executor.ConfigFromEnv(func(string) string { return "" })
	if err != nil {
		f.Fatal(err)
	}
	exec, err := executor.New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := httptest.NewRequest(http.MethodPost, "/execute", bytes.NewReader(data))
		req, err := dec.read(httptest.NewRecorder(), r)
		check(t, "read", data, req, err, caps)
		if err == nil && len(data) > fuzzCap {
			t.Fatalf("read accepted a %d-byte body past the %d cap", len(data), fuzzCap)
		}
		if err == nil && req.callerID != "" {
			t.Fatalf("read(%q) read a caller ID %q, which /execute ignores", data, req.callerID)
		}
		req, err = dec.decodeMessage(data)
		check(t, "decodeMessage", data, req, err, caps)
		if err != nil {
			return
		}
		_, err = exec.Run(context.Background(), req.executorRequest("fuzz"))
		var e *executor.Error
		if !errors.Is(err, executor.ErrSandboxUnavailable) && (!errors.As(err, &e) || e.Type != api.ErrorTypeInvalidRequest || e.Message == "") {
			t.Fatalf("the executor's rules answered decodeMessage(%q) with %v, want invalid_request or sandbox_unavailable", data, err)
		}
	})
}

// check fails t unless err is an invalid_request with a message, or data is
// UTF-8 and so is what was decoded from it, with limits within caps.
func check(t *testing.T, what string, data []byte, req request, err error, caps executor.Limits) {
	t.Helper()
	if err != nil {
		var e *executor.Error
		if !errors.As(err, &e) || e.Type != api.ErrorTypeInvalidRequest || e.Message == "" {
			t.Fatalf("%s(%q) error %v, want an invalid_request with a message", what, data, err)
		}
		if req.Script != "" {
			t.Fatalf("%s(%q) returned script %q with error %v", what, data, req.Script, err)
		}
		return
	}
	if !utf8.Valid(data) {
		t.Fatalf("%s accepted input that is not UTF-8: %q", what, data)
	}
	if !utf8.ValidString(req.Script) || !utf8.ValidString(req.callerID) || !utf8.ValidString(req.Stdin) {
		t.Fatalf("%s(%q) returned text that is not UTF-8: %q, %q, %q", what, data, req.Script, req.callerID, req.Stdin)
	}
	if req.Input != nil && !json.Valid(req.Input) {
		t.Fatalf("%s(%q) returned input %q that is not JSON", what, data, req.Input)
	}
	if req.Input != nil {
		if depth, digits, inf := inputExtremes(req.Input); depth > maxInputDepth || digits > maxInputIntDigits || inf {
			t.Fatalf("%s(%q) accepted input nested %d deep, with an integer of %d digits, a number beyond a float: %v", what, data, depth, digits, inf)
		}
	}
	for _, f := range req.Files {
		if strings.ContainsRune(f.Path, utf8.RuneError) && !strings.Contains(string(data), "\ufffd") && !strings.Contains(string(data), "\uFFFD") && !strings.ContainsRune(string(data), utf8.RuneError) {
			t.Fatalf("%s(%q) made a path %q with U+FFFD out of none", what, data, f.Path)
		}
	}
	for _, f := range req.Files {
		if !utf8.ValidString(f.Path) {
			t.Fatalf("%s(%q) returned a file path that is not UTF-8: %q", what, data, f.Path)
		}
	}
	if req.Timeout < 0 || req.Timeout > caps.Timeout || req.MemoryBytes < 0 || req.MemoryBytes > caps.MemoryBytes || req.MemoryBytes%(1<<20) != 0 {
		t.Fatalf("%s(%q) returned limits %v and %d bytes, past the caps %v and %d", what, data, req.Timeout, req.MemoryBytes, caps.Timeout, caps.MemoryBytes)
	}
}

// inputExtremes walks JSON text token by token with encoding/json, apart
// from the decoder's own byte scan: its deepest nesting, its longest integer
// in digits, and whether a number in it is beyond a float's range.
func inputExtremes(raw []byte) (depth, digits int, inf bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	level := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return depth, digits, inf
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '[' || v == '{' {
				level++
				depth = max(depth, level)
			} else {
				level--
			}
		case json.Number:
			if _, err := v.Int64(); err == nil || !strings.ContainsAny(string(v), ".eE") {
				digits = max(digits, len(strings.TrimPrefix(string(v), "-")))
				continue
			}
			f, _ := strconv.ParseFloat(string(v), 64)
			inf = inf || math.IsInf(f, 0)
		}
	}
}

// FuzzDecodeSessionBodies feeds raw bytes to the decoders of POST
// /sessions's body and a cell's: they never panic, answer every input with
// a value or an invalid_request, and keep limits within the service's caps
// (a cell's memory never set).
func FuzzDecodeSessionBodies(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `[]`, `null`, `{"code": "x = 1"}`, `{"code": ""}`, `{"code": null}`, `{"code": 1}`,
		`{"code": "x", "stdin": "a"}`, `{"code": "x", "stdin": 1}`, `{"code": "\ud800"}`, "{\"code\": \"\xff\"}",
		`{"code": "x", "limits": {"timeout_seconds": 1}}`, `{"code": "x", "limits": {"memory_mb": 10}}`,
		`{"code": "x", "files": [{"path": "a", "content": "AP8=", "encoding": "base64"}]}`,
		`{"files": [{"path": "d.csv", "content": "a\n1\n"}], "limits": {"memory_mb": 64, "timeout_seconds": 5}}`,
		`{"limits": {"timeout_seconds": 1e400}}`, `{"limits": []}`, `{"files": null, "limits": null}`,
	} {
		f.Add([]byte(seed))
	}
	caps := executor.Limits{Timeout: 30 * time.Second, MemoryBytes: 512 << 20, MaxInputFiles: 100, MaxInputFilesBytes: 1 << 10}
	dec := decoder{maxBytes: fuzzCap, caps: caps}
	f.Fuzz(func(t *testing.T, data []byte) {
		onlyInvalid := func(err error) {
			if t := executor.TypeOf(err); t != api.ErrorTypeInvalidRequest {
				panic(fmt.Sprintf("%q answered %s: %v", data, t, err))
			}
		}
		req, err := dec.decodeSessionRequest(data)
		if err != nil {
			onlyInvalid(err)
		} else if req.Timeout < 0 || req.Timeout > caps.Timeout || req.MemoryBytes < 0 || req.MemoryBytes > caps.MemoryBytes {
			t.Fatalf("%q: session limits %v, %d beyond the caps", data, req.Timeout, req.MemoryBytes)
		}
		cell, err := dec.decodeCell(data)
		if err != nil {
			onlyInvalid(err)
			return
		}
		if !utf8.ValidString(cell.Code) || !utf8.ValidString(cell.Stdin) {
			t.Fatalf("%q: a cell with invalid UTF-8 accepted", data)
		}
		if cell.Timeout < 0 || cell.Timeout > caps.Timeout {
			t.Fatalf("%q: cell timeout %v beyond the cap", data, cell.Timeout)
		}
	})
}
