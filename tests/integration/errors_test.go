//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/leakcheck"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// Every row of the error table in docs/api.md, answered with
// its status, error_type and error text, over real HTTP with the real
// sandbox.

func TestInvalidRequestsAnswer400WithTheReason(t *testing.T) {
	ts := testsupport.StartService(t, nil)
	const limit = 100 * 1024
	pad := func(n int) string {
		// A valid script of exactly n bytes: main plus a comment to fill.
		head := "def main():\n    return 1\n#"
		return head + strings.Repeat("x", n-len(head))
	}
	tests := []struct {
		name   string
		body   []byte
		prefix string
	}{
		{"an empty body", []byte(""), "Request body must be a JSON object"},
		{"a body that is not JSON", []byte("def main(): return 1"), "Request body must be a JSON object"},
		{"a JSON array", []byte(`["def main(): return 1"]`), "Request body must be a JSON object"},
		{"a JSON null", []byte(`null`), "Request body must be a JSON object"},
		{"JSON followed by more data", []byte(`{"script": "def main():\n    return 1\n"} {}`), "Request body must be a JSON object"},
		{"no script field", []byte(`{"code": "def main(): return 1"}`), "Missing 'script' field"},
		{"a script that is a number", []byte(`{"script": 5}`), "Script must be a non-empty string"},
		{"a script that is a list", []byte(`{"script": ["def main(): return 1"]}`), "Script must be a non-empty string"},
		{"a script that is null", []byte(`{"script": null}`), "Script must be a non-empty string"},
		{"an empty script", []byte(`{"script": ""}`), "Script must be a non-empty string"},
		{"a blank script", []byte(`{"script": "  \n\t\r\n "}`), "Script must be a non-empty string"},
		{"a script with a NUL byte", []byte(`{"script": "def main():\n    return 1\n\u0000"}`), "Script must not contain NUL bytes"},
		{"a body that is not UTF-8", []byte("{\"script\": \"def main():\\n    return '\xff'\\n\"}"), "Request body must be valid UTF-8"},
		{"a script one byte over 100 KiB", testsupport.ScriptBody(t, pad(limit+1)), "Script too large (max 100KB)"},
		{"a script of 51,201 two-byte characters", testsupport.ScriptBody(t, "def main():\n    return 1\n#"+strings.Repeat("é", 51201)), "Script too large (max 100KB)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := ts.Post(t, "/execute", "application/json", tt.body)
			checkFailure(t, tt.name, r, failure{400, "invalid_request", tt.prefix})
		})
	}
	t.Run("a script of exactly 100 KiB runs", func(t *testing.T) {
		t.Parallel()
		r := ts.Execute(t, pad(limit))
		checkOK(t, "a script of exactly 100 KiB", r, "1", "")
	})
	t.Run("unknown fields are ignored", func(t *testing.T) {
		t.Parallel()
		r := ts.Post(t, "/execute", "application/json", []byte(`{"script": "def main():\n    return 2\n", "language": "python", "id": 7}`))
		checkOK(t, "unknown fields", r, "2", "")
	})
}

func TestBodiesOverTheRequestCapAnswer413WithoutBeingRead(t *testing.T) {
	// A 1 MiB cap (the default is 10 MiB): the endless body below must be
	// refused after little more than the cap.
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_MAX_REQUEST_BYTES": "1048576"})
	want := failure{http.StatusRequestEntityTooLarge, "invalid_request", "Request body too large (max 1MB)"}

	// A syntactically valid body just over the cap: the size alone decides.
	justOver := append(append([]byte(`{"script": "def main():\n    return 1\n"}`), bytes.Repeat([]byte(" "), 1<<20)...), '\n')
	for _, tt := range []struct {
		name string
		body []byte
	}{
		{"1 MiB and a few bytes with Content-Length", justOver},
		{"20 MiB with Content-Length", bytes.Repeat([]byte("a"), 20<<20)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.Post(t, "/execute", "application/json", tt.body)
			checkFailure(t, tt.name, r, want)
		})
	}

	t.Run("an endless chunked body is cut off at the cap", func(t *testing.T) {
		// Without Content-Length the server can only count; an endless body
		// must still be answered, having read little more than the cap.
		body := &testsupport.CountingReader{R: testsupport.Endless(' ')}
		req, err := http.NewRequest(http.MethodPost, ts.URL+"/execute", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.ContentLength = -1 // chunked
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req = req.WithContext(ctx)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST /execute with an endless chunked body: %v (sent %d bytes)", err, body.N())
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var got testsupport.Response
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("POST /execute with an endless chunked body answered %d %q: not JSON", resp.StatusCode, raw)
		}
		got.Status, got.Header, got.Raw = resp.StatusCode, resp.Header, raw
		checkFailure(t, "an endless chunked body", got, want)
		// Socket buffers on both sides hold some megabytes the server never
		// read; far more than that means the server kept reading.
		if sent := body.N(); sent > 64<<20 {
			t.Errorf("the client sent %d MiB before the answer, want the server to stop reading at 1 MiB", sent>>20)
		}
	})

	t.Run("a Content-Length over the cap is answered before the body is sent", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(conn, "POST /execute HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 200<<20)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("reading the answer to a 200 MiB Content-Length with no body sent: %v", err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var got testsupport.Response
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("answer %d %q is not JSON", resp.StatusCode, raw)
		}
		got.Status, got.Header, got.Raw = resp.StatusCode, resp.Header, raw
		checkFailure(t, "a 200 MiB Content-Length", got, want)
	})

	t.Run("the service still answers afterwards", func(t *testing.T) {
		checkOK(t, "after oversized bodies", ts.Execute(t, "def main():\n    return 'ok'\n"), `"ok"`, "")
	})
}

func TestScriptsThatFailAnswerTheirErrorType(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{
		"PYEXEC_MAX_RESULT_BYTES": "1048576",
		"PYEXEC_QUEUE":            "64",
	})
	tests := []struct {
		name       string
		script     string
		want       failure
		wantStdout string
		// check, if set, looks further at the answer.
		check func(t *testing.T, r testsupport.Response)
	}{
		{
			name:   "no_main: a script without main",
			script: "def run():\n    return 1\n\nprint('never printed')\n",
			want:   failure{400, "no_main", "Script must contain a 'def main()' function"},
		},
		{
			name:   "no_main: main only inside a class",
			script: "class A:\n    def main(self):\n        return 1\n",
			want:   failure{400, "no_main", "Script must contain a 'def main()' function"},
		},
		{
			name:   "no_main: main only as a comprehension variable, and nothing runs",
			script: "print('module ran')\nsquares = [main * main for main in range(3)]\n",
			want:   failure{400, "no_main", "Script must contain a 'def main()' function"},
		},
		{
			name:   "no_main: main only annotated, and nothing runs",
			script: "print('module ran')\nmain: object\n",
			want:   failure{400, "no_main", "Script must contain a 'def main()' function"},
		},
		{
			name:   "syntax_error: a broken def",
			script: "def main(:\n    return 1\n",
			want:   failure{400, "syntax_error", "SyntaxError: "},
			check: func(t *testing.T, r testsupport.Response) {
				if !strings.HasSuffix(r.Error, "(line 1)") {
					t.Errorf("error = %q, want it to end with (line 1)", r.Error)
				}
			},
		},
		{
			name:   "syntax_error: bad indentation on line 3",
			script: "def main():\n    x = 1\n      return x\n",
			want:   failure{400, "syntax_error", "IndentationError: unexpected indent (line 3)"},
		},
		{
			name:   "syntax_error: an unclosed bracket, main never checked",
			script: "print('never')\ndef main():\n    return [1, 2\n",
			want:   failure{400, "syntax_error", "SyntaxError: '[' was never closed (line 3)"},
		},
		{
			name:       "exception: raised in main with user frames only",
			script:     "def helper(x):\n    raise ValueError(f'bad value {x}')\n\ndef main():\n    print('before')\n    helper(42)\n",
			want:       failure{400, "exception", "ValueError: bad value 42"},
			wantStdout: "before",
			check: func(t *testing.T, r testsupport.Response) {
				checkUserTraceback(t, r, []string{
					`File "<script>", line 6, in main`,
					`File "<script>", line 2, in helper`,
					"ValueError: bad value 42",
				})
			},
		},
		{
			name:       "exception: raised by the module body",
			script:     "print('loading')\nx = 1 / 0\n\ndef main():\n    return x\n",
			want:       failure{400, "exception", "ZeroDivisionError: division by zero"},
			wantStdout: "loading",
			check: func(t *testing.T, r testsupport.Response) {
				checkUserTraceback(t, r, []string{`File "<script>", line 2, in <module>`})
			},
		},
		{
			name:   "exception: raised inside pandas shows only user frames",
			script: "import pandas as pd\n\ndef main():\n    df = pd.DataFrame({'a': [1]})\n    return df['missing']\n",
			want:   failure{400, "exception", "KeyError: 'missing'"},
			check: func(t *testing.T, r testsupport.Response) {
				checkUserTraceback(t, r, []string{`File "<script>", line 5, in main`})
				if strings.Contains(r.Traceback, "pandas/") {
					t.Errorf("traceback %q shows pandas' frames, want user frames only", r.Traceback)
				}
			},
		},
		{
			name:   "exception: an exception without a message",
			script: "def main():\n    raise KeyboardInterrupt\n",
			want:   failure{400, "exception", "KeyboardInterrupt"},
		},
		{
			name:   "exception: an exception whose __str__ raises",
			script: "class Odd(Exception):\n    def __str__(self):\n        raise RuntimeError('no text')\n\ndef main():\n    raise Odd()\n",
			want:   failure{400, "exception", "Odd: <exception str() failed>"},
		},
		{
			name:   "invalid_result: NaN with its path",
			script: "def main():\n    return {'stats': [1.0, 2.0, float('nan')]}\n",
			want:   failure{400, "invalid_result", "main() must return a JSON-serializable object: NaN is not allowed at result['stats'][2]"},
		},
		{
			name:   "memory_limit: a 4 GiB allocation",
			script: "def main():\n    print('allocating')\n    block = bytearray(4 << 30)\n    return len(block)\n",
			want:   failure{400, "memory_limit", "Memory limit exceeded (512 MB)"},
			// stdout is what was printed before the kill.
			wantStdout: "allocating",
		},
		{
			name:   "memory_limit: a MemoryError raised by the script",
			script: "def main():\n    raise MemoryError('pretend')\n",
			want:   failure{400, "memory_limit", "Memory limit exceeded (512 MB)"},
		},
		{
			name:   "output_limit: a stdout flood",
			script: "import sys\n\ndef main():\n    while True:\n        sys.stdout.write('y' * 65536)\n",
			want:   failure{400, "output_limit", "Output limit exceeded (1 MB)"},
			check: func(t *testing.T, r testsupport.Response) {
				if r.Stdout == nil || len(*r.Stdout) != 1<<20 || strings.Trim(*r.Stdout, "y") != "" {
					t.Errorf("stdout of %d bytes, want the first 1 MiB of the flood", len(deref(r.Stdout)))
				}
			},
		},
		{
			name:   "output_limit: a result far over PYEXEC_MAX_RESULT_BYTES",
			script: "def main():\n    return 'r' * (8 << 20)\n",
			want:   failure{400, "output_limit", "Output limit exceeded (1 MB)"},
		},
		{
			name:   "output_limit: a result whose JSON is just over PYEXEC_MAX_RESULT_BYTES",
			script: "def main():\n    return '\"' * ((1 << 19) + 10)\n",
			want:   failure{400, "output_limit", "Output limit exceeded (1 MB)"},
		},
		{
			name:       "exited: sys.exit(3)",
			script:     "import sys\n\ndef main():\n    print('leaving')\n    sys.exit(3)\n",
			want:       failure{400, "exited", "Script exited with code 3 before main() returned"},
			wantStdout: "leaving",
		},
		{
			name:   "exited: sys.exit at module level",
			script: "import sys\nsys.exit(0)\n\ndef main():\n    return 1\n",
			want:   failure{400, "exited", "Script exited with code 0 before main() returned"},
		},
		{
			name:       "exited: os._exit(4)",
			script:     "import os\n\ndef main():\n    print('bye')\n    os._exit(4)\n",
			want:       failure{400, "exited", "Script exited with code 4 before main() returned"},
			wantStdout: "bye",
		},
		{
			name:   "exited: a segfault through ctypes",
			script: "import ctypes\n\ndef main():\n    return ctypes.string_at(0)\n",
			want:   failure{400, "exited", "Script was killed by signal SIGSEGV"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := ts.Execute(t, tt.script)
			checkFailure(t, tt.name, r, tt.want)
			if tt.check != nil {
				tt.check(t, r)
			} else if got := deref(r.Stdout); got != tt.wantStdout {
				t.Errorf("POST /execute %s: stdout = %q, want %q", tt.name, got, tt.wantStdout)
			}
			if tt.want.errorType != "exception" && r.Traceback != "" {
				t.Errorf("POST /execute %s: traceback %q on a %s failure, want none", tt.name, r.Traceback, tt.want.errorType)
			}
		})
	}
}

// checkUserTraceback checks that the traceback holds the wanted lines and
// nothing of the harness.
func checkUserTraceback(t *testing.T, r testsupport.Response, want []string) {
	t.Helper()
	if !strings.HasPrefix(r.Traceback, "Traceback (most recent call last):") {
		t.Errorf("traceback = %q, want a Python traceback", r.Traceback)
	}
	for _, w := range want {
		if !strings.Contains(r.Traceback, w) {
			t.Errorf("traceback = %q, want it to contain %q", r.Traceback, w)
		}
	}
	for _, leak := range []string{"harness", "/pyexec/", "/opt/", "exec(code", "run(source)"} {
		if strings.Contains(r.Traceback, leak) {
			t.Errorf("traceback = %q shows %q, want user frames only", r.Traceback, leak)
		}
	}
}

func TestATimedOutScriptAnswersTimeout(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_TIMEOUT_SECONDS": "2"})
	r := ts.Execute(t, "import time\n\ndef main():\n    print('waiting')\n    time.sleep(60)\n")
	checkFailure(t, "a sleep past the limit", r, failure{400, "timeout", "Execution timed out after 2 seconds"})
	if got := deref(r.Stdout); got != "waiting" {
		t.Errorf("stdout = %q, want what was printed before the timeout, %q", got, "waiting")
	}
}

func TestAFullQueueAnswersBusyWithRetryAfter(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_CONCURRENCY": "1", "PYEXEC_QUEUE": "0"})
	sleeper := make(chan testsupport.Response, 1)
	go func() {
		sleeper <- ts.Execute(t, testsupport.NameProcess("pyexec-sleeper")+"import time\n\ndef main():\n    time.sleep(4)\n    return 'slept'\n")
	}()
	// The sleeper holds the only slot once its process runs.
	testsupport.PollUntil(t, 30*time.Second, "the sleeping script to run", func() bool {
		return len(leakcheck.DescendantsNamed(os.Getpid(), "pyexec-sleeper")) > 0
	})
	r := ts.Execute(t, "def main():\n    return 1\n")
	checkFailure(t, "while the only slot is taken", r, failure{503, "busy", "Service busy, retry later"})
	if ra := r.Header.Get("Retry-After"); ra == "" {
		t.Errorf("busy answer has no Retry-After header: %v", r.Header)
	}
	select {
	case r := <-sleeper:
		checkOK(t, "the sleeping script", r, `"slept"`, "")
	case <-time.After(60 * time.Second):
		t.Fatal("the sleeping script was not answered within 60s")
	}
	checkOK(t, "after the slot is free again", ts.Execute(t, "def main():\n    return 1\n"), "1", "")
}

func TestWithoutASandboxNothingRunsAndHealthSaysWhy(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-nsjail-here")
	ts := testsupport.StartUnavailableService(t, map[string]string{"PYEXEC_NSJAIL": missing})

	marker := filepath.Join(t.TempDir(), "ran")
	script := fmt.Sprintf("open(%q, 'w').write('ran')\n\ndef main():\n    return 1\n", marker)
	r := ts.Execute(t, script)
	checkFailure(t, "without a sandbox", r, failure{503, "sandbox_unavailable", "Sandbox unavailable"})
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the script ran although the sandbox is unavailable: %s exists", marker)
	}
	if procs := leakcheck.Descendants(os.Getpid()); len(procs) != 0 {
		t.Errorf("processes started without a sandbox: %s", leakcheck.Describe(procs))
	}
	// Request validation still answers first.
	checkFailure(t, "an empty script without a sandbox", ts.Execute(t, ""), failure{400, "invalid_request", "Script must be a non-empty string"})

	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/healthz", nil)
	h := testsupport.Do(t, req)
	var body struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(h.Raw, &body); err != nil || h.Status != http.StatusServiceUnavailable || body.Status == "ok" || !strings.Contains(body.Reason, "nsjail") {
		t.Errorf("GET /healthz = %d %s, want 503 with a reason naming nsjail", h.Status, h.Raw)
	}
}

func TestHealthzReportsTheIsolationInForce(t *testing.T) {
	ts := testsupport.StartService(t, nil)
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/healthz", nil)
	checkHealthz(t, "GET /healthz", testsupport.Do(t, req))
}

func TestWrongPathsAndMethodsAnswer404And405(t *testing.T) {
	ts := testsupport.StartService(t, nil)
	tests := []struct {
		method, path string
		wantStatus   int
		wantAllow    string
	}{
		{http.MethodGet, "/execute", 405, "POST"},
		{http.MethodPut, "/execute", 405, "POST"},
		{http.MethodDelete, "/execute", 405, "POST"},
		{http.MethodPost, "/healthz", 405, "GET, HEAD"},
		{http.MethodGet, "/", 404, ""},
		{http.MethodPost, "/run", 404, ""},
		{http.MethodPost, "/execute/", 404, ""},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, ts.URL+tt.path, strings.NewReader(`{"script": "def main():\n    return 1\n"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		r := testsupport.Do(t, req)
		what := tt.method + " " + tt.path
		if r.Status != tt.wantStatus || r.Header.Get("Allow") != tt.wantAllow || r.Error == "" || r.ErrorType == "" {
			t.Errorf("%s = %d Allow %q %s, want %d Allow %q with error and error_type", what, r.Status, r.Header.Get("Allow"), r.Raw, tt.wantStatus, tt.wantAllow)
		}
		checkCommonFields(t, what, r)
		id := r.Header.Get("X-Execution-Id")
		if seen[id] {
			t.Errorf("%s: X-Execution-Id %s was already used by another response", what, id)
		}
		seen[id] = true
	}
	req, _ := http.NewRequest(http.MethodHead, ts.URL+"/healthz", nil)
	if r := testsupport.Do(t, req); r.Status != http.StatusOK || r.Header.Get("X-Execution-Id") == "" {
		t.Errorf("HEAD /healthz = %d %v, want 200 with X-Execution-Id", r.Status, r.Header)
	}
}
