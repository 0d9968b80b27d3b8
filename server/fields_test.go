package server_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/executor"
	ts "github.com/pyexec/pyexec/internal/testsupport"
	"github.com/pyexec/pyexec/server"
)

// capturing is a fakeExecutor that keeps the request it was asked to run
// and answers res.
func capturing(res executor.Result, got *executor.Request) *fakeExecutor {
	return &fakeExecutor{run: func(req executor.Request) (executor.Result, error) {
		*got = req
		return res, nil
	}}
}

func TestEveryFieldReachesTheExecutorAndOutputFilesComeBack(t *testing.T) {
	var got executor.Request
	res := executor.Result{Value: json.RawMessage(`{"rows":2}`), Stdout: "done", Files: []executor.File{
		{Path: "outputs/a.csv", Content: []byte("x\n3\n")},
		{Path: "outputs/b.bin", Content: []byte{0, 0xff}},
	}}
	s := startServer(t, capturing(res, &got), nil)
	body := `{"script": "def main(p):\n    return p\n", "input": {"min": 2, "big": 123456789012345678901234567890},
	  "stdin": "text", "files": [{"path": "data/in.csv", "content": "x\n1\n3\n"}, {"path": "raw", "content": "AP8=", "encoding": "base64"}],
	  "limits": {"timeout_seconds": 5, "memory_mb": 256}}`
	a := send(t, http.MethodPost, s.executeURL+"/execute", body)
	want := `{"result":{"rows":2},"stdout":"done","files":[` +
		`{"path":"outputs/a.csv","content":"eAozCg==","encoding":"base64","bytes":4},` +
		`{"path":"outputs/b.bin","content":"AP8=","encoding":"base64","bytes":2}]}` + "\n"
	if a.status != http.StatusOK || a.body != want {
		t.Errorf("POST /execute = %d %s, want 200 %s", a.status, a.body, want)
	}
	wantReq := executor.Request{
		ID:      a.header.Get("X-Execution-Id"),
		Script:  "def main(p):\n    return p\n",
		Input:   json.RawMessage(`{"min": 2, "big": 123456789012345678901234567890}`),
		Stdin:   "text",
		Files:   []executor.File{{Path: "data/in.csv", Content: []byte("x\n1\n3\n")}, {Path: "raw", Content: []byte{0, 0xff}}},
		Timeout: 5 * time.Second, MemoryBytes: 256 << 20, Extended: true,
	}
	if !reflect.DeepEqual(got, wantReq) {
		t.Errorf("the executor was asked to run\n%+v\nwant\n%+v", got, wantReq)
	}
	entry := s.only(t)
	for field, want := range map[string]any{"input_bytes": float64(len(wantReq.Input)), "stdin_bytes": float64(4), "files": float64(2), "files_bytes": float64(8), "output_files": float64(2), "output_files_bytes": float64(6)} {
		if entry[field] != want {
			t.Errorf("log entry %s = %v, want %v", field, entry[field], want)
		}
	}
	if raw := s.logs.String(); strings.Contains(raw, "123456789012345678901234567890") || strings.Contains(raw, "eAozCg==") {
		t.Errorf("the log holds the request's input or an output file:\n%s", raw)
	}
}

func TestAScriptAloneIsAnsweredExactlyAsBefore(t *testing.T) {
	var got executor.Request
	s := startServer(t, capturing(executor.Result{Value: json.RawMessage(`{"answer":4}`), Stdout: "Calculating..."}, &got), nil)
	a := send(t, http.MethodPost, s.executeURL+"/execute", string(ts.ScriptBody(t, okScript)))
	if want := `{"result":{"answer":4},"stdout":"Calculating..."}` + "\n"; a.status != http.StatusOK || a.body != want {
		t.Errorf("POST /execute = %d %q, want 200 %q", a.status, a.body, want)
	}
	if got.Input != nil || got.Stdin != "" || got.Files != nil || got.Timeout != 0 || got.MemoryBytes != 0 {
		t.Errorf("the executor was asked to run %+v, want a script alone", got)
	}
	entry := s.only(t)
	for _, field := range []string{"input_bytes", "stdin_bytes", "files", "files_bytes", "output_files", "output_files_bytes"} {
		if _, ok := entry[field]; ok {
			t.Errorf("log entry has %s for a script alone: %v", field, entry)
		}
	}
}

func TestTheBodyCapFollowsTheConfiguration(t *testing.T) {
	for _, tt := range []struct {
		name    string
		max     int64
		wantMsg string
	}{
		{"the default", 0, "Request body too large (max 10MB)"},
		{"a configured cap", 4 << 10, "Request body too large (max 4KB)"},
		{"a cap in bytes", 5000, "Request body too large (max 5000 bytes)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			exec := answering(executor.Result{Value: json.RawMessage(`1`)}, nil)
			s := serve(t, server.Config{MaxRequestBytes: tt.max}, exec, nil)
			limit := tt.max
			if limit == 0 {
				limit = server.DefaultMaxRequestBytes
			}
			script := "def main():\n    return 1\n#"
			fits := `{"script": "` + strings.ReplaceAll(script, "\n", `\n`) + strings.Repeat("x", int(limit)-len(`{"script": ""}`)-len(script)-2) + `"}`
			if int64(len(fits)) != limit {
				t.Fatalf("test body is %d bytes, want %d", len(fits), limit)
			}
			if a := send(t, http.MethodPost, s.executeURL+"/execute", fits); a.status == http.StatusRequestEntityTooLarge {
				t.Errorf("a body of exactly the cap = %d %s, want it read", a.status, a.body)
			}
			over := fits[:len(fits)-2] + `x"}`
			a := send(t, http.MethodPost, s.executeURL+"/execute", over)
			want := `{"error":"` + tt.wantMsg + `","error_type":"invalid_request","stdout":""}` + "\n"
			if a.status != http.StatusRequestEntityTooLarge || a.body != want {
				t.Errorf("a body one byte over the cap = %d %s, want 413 %s", a.status, a.body, want)
			}
		})
	}
}

func TestMaxRequestBytesIsReadAndChecked(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string { return map[string]string{"PYEXEC_MAX_REQUEST_BYTES": v}[k] }
	}
	for _, tt := range []struct {
		value   string
		want    int64
		wantErr string
	}{
		{"", server.DefaultMaxRequestBytes, ""},
		{" 2048 ", 2048, ""},
		{"1024", 1024, ""},
		{"1073741824", 1 << 30, ""},
		{"1023", 0, "PYEXEC_MAX_REQUEST_BYTES must be 1024..1073741824, got 1023"},
		{"1073741825", 0, "PYEXEC_MAX_REQUEST_BYTES must be 1024..1073741824"},
		{"10MB", 0, `PYEXEC_MAX_REQUEST_BYTES="10MB" is not a whole number`},
	} {
		cfg, err := server.ConfigFromEnv(env(tt.value))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ConfigFromEnv(PYEXEC_MAX_REQUEST_BYTES=%q) = %v, want an error %q", tt.value, err, tt.wantErr)
			}
			continue
		}
		if err != nil || cfg.MaxRequestBytes != tt.want {
			t.Errorf("ConfigFromEnv(PYEXEC_MAX_REQUEST_BYTES=%q) = %d, %v; want %d", tt.value, cfg.MaxRequestBytes, err, tt.want)
		}
	}
}

func TestMessageDataCarriesTheSameFields(t *testing.T) {
	var got executor.Request
	s := startServer(t, capturing(executor.Result{Value: json.RawMessage(`1`)}, &got), nil)
	data := []byte(`{"script": "x", "id": "c1", "input": [1, 2], "stdin": "in", "files": [{"path": "a", "content": "eA==", "encoding": "base64"}], "limits": {"memory_mb": 64}}`)
	if status := deliver(t, s.eventURL, ts.PublishedEvent("m1", data)); status != http.StatusOK {
		t.Fatalf("status = %d, want 200", status)
	}
	if string(got.Input) != "[1, 2]" || got.Stdin != "in" || !reflect.DeepEqual(got.Files, []executor.File{{Path: "a", Content: []byte("x")}}) || got.MemoryBytes != 64<<20 {
		t.Errorf("the executor was asked to run %+v, want the message's input, stdin, file and limit", got)
	}
	bad := []byte(`{"script": "x", "id": "c2", "limits": {"memory_mb": 4096}}`)
	if status := deliver(t, s.eventURL, ts.PublishedEvent("m2", bad)); status != http.StatusOK {
		t.Fatalf("status = %d, want 200 (an invalid payload is acknowledged)", status)
	}
	entries := s.entries(t)
	last := entries[len(entries)-1]
	if last["error_type"] != "invalid_request" || last["id"] != "c2" || !strings.HasPrefix(last["error"].(string), "'limits.memory_mb' must be a whole number above 0 and at most 512") {
		t.Errorf("entry = %v, want an invalid_request naming limits.memory_mb and its cap, with the caller's id", last)
	}
}
