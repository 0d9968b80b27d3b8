package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/pyexec/pyexec/client"
)

// ran is what one run of the command did.
type ran struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command with args, stdin and an environment of env only.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) ran {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli(context.Background(), args, console{
		stdin:  strings.NewReader(stdin),
		stdout: &stdout,
		stderr: &stderr,
		getenv: func(k string) string { return env[k] },
	})
	return ran{code, stdout.String(), stderr.String()}
}

// fakeService answers every POST /execute with status and body, and keeps
// the request bodies it received.
type fakeService struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
}

func newFakeService(t *testing.T, status int, body string) *fakeService {
	t.Helper()
	f := &fakeService{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.bodies = append(f.bodies, b)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Execution-Id", "exec-7")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(f.Close)
	return f
}

// request is the one request the service received, decoded.
func (f *fakeService) request(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bodies) != 1 {
		t.Fatalf("service received %d requests, want 1", len(f.bodies))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(f.bodies[0], &m); err != nil {
		t.Fatalf("request body %s: %v", f.bodies[0], err)
	}
	return m
}

// writeTemp writes content to name in a new temporary directory and
// returns its path.
func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const helloScript = "def main():\n    print('Calculating...')\n    return {'answer': 2 + 2}\n"

func TestRunPrintsStdoutThenTheIndentedResult(t *testing.T) {
	svc := newFakeService(t, 200, `{"result": {"answer": 4, "big": 123456789012345678901234567890}, "stdout": "Calculating..."}`)
	script := writeTemp(t, "hello.py", helloScript)

	got := runCLI(t, nil, "", "run", script, "--url", svc.URL)

	want := "Calculating...\n{\n  \"answer\": 4,\n  \"big\": 123456789012345678901234567890\n}\n"
	if got.code != exitOK || got.stdout != want || got.stderr != "" {
		t.Errorf("run = %d, stdout %q, stderr %q\nwant 0, stdout %q, no stderr", got.code, got.stdout, got.stderr, want)
	}
	if body := svc.request(t); string(body["script"]) != fmt.Sprintf("%q", helloScript) || len(body) != 1 {
		t.Errorf("request = %s, want only the script", body)
	}
}

func TestRunWithJSONPrintsTheAnswerAsItCame(t *testing.T) {
	answer := `{"result":  {"answer": 4}, "stdout": ""}`
	svc := newFakeService(t, 200, answer)
	script := writeTemp(t, "hello.py", helloScript)

	got := runCLI(t, nil, "", "run", "--json", script, "--url", svc.URL)
	if got.code != exitOK || got.stdout != answer+"\n" {
		t.Errorf("run --json = %d, stdout %q; want 0, %q", got.code, got.stdout, answer+"\n")
	}
}

func TestRunSendsEveryFlag(t *testing.T) {
	svc := newFakeService(t, 200, `{"result": null, "stdout": ""}`)
	script := writeTemp(t, "job.py", "def main(p):\n    return p\n")
	inputFile := writeTemp(t, "input.json", `{"n": 12345678901234567890}`)
	csv := writeTemp(t, "in.csv", "x\n1\n")
	blob := writeTemp(t, "blob.bin", "\xff\x00")
	stdinFile := writeTemp(t, "stdin.txt", "from a file")

	tests := []struct {
		name  string
		args  []string
		stdin string
		want  map[string]string // fields of the request besides script
	}{
		{
			name: "literal input, flags before and after the script",
			args: []string{"--input", `[1, 2.50]`, script, "--timeout", "1500ms", "--memory=128"},
			want: map[string]string{"input": `[1,2.50]`, "limits": `{"timeout_seconds":1.5,"memory_mb":128}`},
		},
		{
			name: "input from a file, numbers exact",
			args: []string{script, "--input", "@" + inputFile},
			want: map[string]string{"input": `{"n":12345678901234567890}`},
		},
		{
			name: "files with their base name or a given one",
			args: []string{script, "--file", csv, "--file", blob + "=data/blob"},
			want: map[string]string{"files": `[{"path":"in.csv","content":"x\n1\n","encoding":"utf-8"},{"path":"data/blob","content":"/wA=","encoding":"base64"}]`},
		},
		{
			name: "stdin as text",
			args: []string{script, "--stdin", "typed"},
			want: map[string]string{"stdin": `"typed"`},
		},
		{
			name: "stdin from a file",
			args: []string{script, "--stdin", "@" + stdinFile},
			want: map[string]string{"stdin": `"from a file"`},
		},
		{
			name:  "stdin from the command's own",
			args:  []string{script, "--stdin", "-"},
			stdin: "piped\n",
			want:  map[string]string{"stdin": `"piped\n"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc.mu.Lock()
			svc.bodies = nil
			svc.mu.Unlock()
			got := runCLI(t, map[string]string{"PYEXEC_URL": svc.URL}, tt.stdin, append([]string{"run"}, tt.args...)...)
			if got.code != exitOK {
				t.Fatalf("run = %d, stderr %q; want 0", got.code, got.stderr)
			}
			body := svc.request(t)
			delete(body, "script")
			gotFields := map[string]string{}
			for k, v := range body {
				gotFields[k] = string(v)
			}
			if !reflect.DeepEqual(gotFields, tt.want) {
				t.Errorf("request fields = %v\nwant %v", gotFields, tt.want)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	script := writeTemp(t, "s.py", helloScript)
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no command", nil, "Usage:"},
		{"an unknown command", []string{"exec", script}, `unknown command "exec"`},
		{"no script", []string{"run", "--json"}, "run needs the path of a script"},
		{"two scripts", []string{"run", script, script}, "run takes one script"},
		{"an unknown flag", []string{"run", script, "--verbose"}, "flag provided but not defined: -verbose"},
		{"a flag without its value", []string{"run", script, "--timeout"}, "flag needs an argument: -timeout"},
		{"a bad duration", []string{"run", script, "--timeout", "5"}, `invalid value "5" for flag -timeout`},
		{"a negative timeout", []string{"run", script, "--timeout", "-1s"}, "--timeout must be positive"},
		{"a negative memory", []string{"run", script, "--memory", "-5"}, "--memory must be positive"},
		{"input that is not JSON", []string{"run", script, "--input", "{n: 1}"}, "--input is not JSON"},
		{"an input file that is missing", []string{"run", script, "--input", "@/nonexistent.json"}, "--input: open /nonexistent.json"},
		{"a script that is missing", []string{"run", "/nonexistent.py"}, "reading the script"},
		{"a file that is missing", []string{"run", script, "--file", "/nonexistent.csv=x.csv"}, "--file /nonexistent.csv=x.csv"},
		{"a URL that is not http", []string{"run", script, "--url", "localhost:8080"}, "want http:// or https://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runCLI(t, nil, "", tt.args...)
			if got.code != exitUsage || !strings.Contains(got.stderr, tt.wantErr) {
				t.Errorf("%q = %d, stderr %q; want %d and %q", tt.args, got.code, got.stderr, exitUsage, tt.wantErr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"run", "-h"}} {
		got := runCLI(t, nil, "", args...)
		if got.code != exitOK || !strings.Contains(got.stdout, "Exit status:") || got.stderr != "" {
			t.Errorf("%q = %d, stdout %q, stderr %q; want 0 and the usage on stdout", args, got.code, got.stdout, got.stderr)
		}
	}
}

func TestFailuresGoToStderrWithTheirExitStatus(t *testing.T) {
	script := writeTemp(t, "s.py", helloScript)
	tests := []struct {
		name       string
		status     int
		body       string
		wantCode   int
		wantStdout string
		wantStderr []string
	}{
		{
			name:       "an exception",
			status:     400,
			body:       `{"error": "ZeroDivisionError: division by zero", "error_type": "exception", "stdout": "step 1", "traceback": "Traceback (most recent call last):\n  File \"script.py\", line 3, in main\nZeroDivisionError: division by zero"}`,
			wantCode:   exitScriptError,
			wantStdout: "step 1\n",
			wantStderr: []string{"pyexec-cli: exception: ZeroDivisionError: division by zero\n", "line 3, in main\nZeroDivisionError", "execution exec-7"},
		},
		{
			name:       "no main",
			status:     400,
			body:       `{"error": "Script must contain a 'def main()' function", "error_type": "no_main", "stdout": ""}`,
			wantCode:   exitScriptError,
			wantStderr: []string{"pyexec-cli: no_main: Script must contain a 'def main()' function\n"},
		},
		{
			name:       "a request too large",
			status:     413,
			body:       `{"error": "Request body too large", "error_type": "invalid_request", "stdout": ""}`,
			wantCode:   exitScriptError,
			wantStderr: []string{"invalid_request: Request body too large"},
		},
		{
			name:       "an internal error",
			status:     500,
			body:       `{"error": "Internal error (execution exec-7)", "error_type": "internal", "stdout": ""}`,
			wantCode:   exitUnavailable,
			wantStderr: []string{"internal: Internal error (execution exec-7)"},
		},
		{
			name:       "a proxy's error page",
			status:     502,
			body:       `<html>Bad Gateway</html>`,
			wantCode:   exitUnavailable,
			wantStderr: []string{"HTTP 502", "Bad Gateway"},
		},
		{
			name:       "a refusal of Cloud Run's front end",
			status:     403,
			body:       `<html>Forbidden</html>`,
			wantCode:   exitUnavailable,
			wantStderr: []string{"HTTP 403", "roles/run.invoker"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newFakeService(t, tt.status, tt.body)
			got := runCLI(t, nil, "", "run", script, "--url", svc.URL)
			if got.code != tt.wantCode || got.stdout != tt.wantStdout {
				t.Errorf("run = %d, stdout %q; want %d, %q", got.code, got.stdout, tt.wantCode, tt.wantStdout)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(got.stderr, want) {
					t.Errorf("stderr = %q, want it to contain %q", got.stderr, want)
				}
			}
			got = runCLI(t, nil, "", "run", script, "--url", svc.URL, "--json")
			if tt.body[0] == '{' && got.stdout != tt.body+"\n" {
				t.Errorf("run --json: stdout = %q, want the answer %q", got.stdout, tt.body)
			}
		})
	}
}

func TestConnectionRefusedExitsUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	script := writeTemp(t, "s.py", helloScript)

	got := runCLI(t, map[string]string{"PYEXEC_URL": url}, "", "run", script)
	if got.code != exitUnavailable || !strings.Contains(got.stderr, "connection refused") {
		t.Errorf("run = %d, stderr %q; want %d and connection refused", got.code, got.stderr, exitUnavailable)
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{&client.Error{Type: client.ErrorTypeTimeout, StatusCode: 400}, exitScriptError},
		{fmt.Errorf("wrapped: %w", &client.Error{Type: client.ErrorTypeSyntaxError, StatusCode: 400}), exitScriptError},
		{&client.Error{Type: client.ErrorTypeNotFound, StatusCode: 404}, exitScriptError},
		{&client.Error{Type: client.ErrorTypeBusy, StatusCode: 503}, exitUnavailable},
		{&client.Error{Type: client.ErrorTypeSandboxUnavailable, StatusCode: 503}, exitUnavailable},
		{fmt.Errorf("waiting to retry: %w: %w", context.Canceled, &client.Error{Type: client.ErrorTypeBusy, StatusCode: 503}), exitUnavailable},
		{&client.Error{Type: client.ErrorTypeInternal, StatusCode: 500}, exitUnavailable},
		{&client.Error{StatusCode: 401}, exitUnavailable},
		{errors.New("dial tcp: connection refused"), exitUnavailable},
	}
	for _, tt := range tests {
		if got := exitStatus(tt.err); got != tt.want {
			t.Errorf("exitStatus(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestCloudRunURLsUseIDTokens(t *testing.T) {
	tests := []struct {
		url  string
		want bool
	}{
		{"https://pyexec-abc123-uc.a.run.app", true},
		{"https://pyexec-abc123-uc.a.run.app:443/", true},
		{"https://pyexec-123456789.europe-west1.run.app", true},
		{"http://pyexec-abc123-uc.a.run.app", false}, // no token in clear text
		{"https://run.app.example.com", false},
		{"https://example.com/x.run.app", false},
		{"http://localhost:8080", false},
	}
	for _, tt := range tests {
		if got := isCloudRun(tt.url); got != tt.want {
			t.Errorf("isCloudRun(%q) = %v, want %v", tt.url, got, tt.want)
		}
	}
}

func TestOutputFilesAreSavedInsideOut(t *testing.T) {
	svc := newFakeService(t, 200, `{"result": 1, "stdout": "", "files": [
		{"path": "outputs/out.csv", "content": "eAoz", "encoding": "base64", "bytes": 3},
		{"path": "outputs/plots/p.bin", "content": "AP8=", "encoding": "base64", "bytes": 2}]}`)
	script := writeTemp(t, "s.py", helloScript)
	out := filepath.Join(t.TempDir(), "results")

	got := runCLI(t, nil, "", "run", script, "--url", svc.URL, "--out", out)
	if got.code != exitOK {
		t.Fatalf("run = %d, stderr %q; want 0", got.code, got.stderr)
	}
	for path, want := range map[string]string{"out.csv": "x\n3", "plots/p.bin": "\x00\xff"} {
		content, err := os.ReadFile(filepath.Join(out, path))
		if err != nil || string(content) != want {
			t.Errorf("%s = %q, %v; want %q", path, content, err, want)
		}
	}
	if !strings.Contains(got.stderr, "wrote "+filepath.Join(out, "out.csv")+" (3 bytes)") {
		t.Errorf("stderr = %q, want it to say what it wrote", got.stderr)
	}

	got = runCLI(t, nil, "", "run", script, "--url", svc.URL)
	if got.code != exitOK || !strings.Contains(got.stderr, "2 output files not saved (use --out DIR)") {
		t.Errorf("run without --out = %d, stderr %q; want 0 and a note", got.code, got.stderr)
	}
}

func TestOutputFilesOutsideOutAreRefused(t *testing.T) {
	for _, path := range []string{"outputs/../../escaped", "/etc/escaped", "outputs/", "../escaped"} {
		t.Run(path, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"result": 1, "stdout": "", "files": []map[string]any{
				{"path": "outputs/fine.txt", "content": "aGk=", "encoding": "base64", "bytes": 2},
				{"path": path, "content": "aGk=", "encoding": "base64", "bytes": 2},
			}})
			svc := newFakeService(t, 200, string(body))
			script := writeTemp(t, "s.py", helloScript)
			parent := t.TempDir()
			out := filepath.Join(parent, "a", "b")

			got := runCLI(t, nil, "", "run", script, "--url", svc.URL, "--out", out)
			if got.code != exitScriptError || !strings.Contains(got.stderr, "refusing output file") {
				t.Errorf("run = %d, stderr %q; want %d and a refusal", got.code, got.stderr, exitScriptError)
			}
			var written []string
			filepath.WalkDir(parent, func(p string, d os.DirEntry, err error) error {
				if d != nil && !d.IsDir() {
					written = append(written, p)
				}
				return nil
			})
			if len(written) != 0 {
				t.Errorf("files written: %q, want none", written)
			}
		})
	}
}

func TestOutputFilesDoNotFollowSymlinksOutOfOut(t *testing.T) {
	svc := newFakeService(t, 200, `{"result": 1, "stdout": "", "files": [
		{"path": "outputs/link/pwned", "content": "aGk=", "encoding": "base64", "bytes": 2}]}`)
	script := writeTemp(t, "s.py", helloScript)
	out, elsewhere := t.TempDir(), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(out, "link")); err != nil {
		t.Fatal(err)
	}

	got := runCLI(t, nil, "", "run", script, "--url", svc.URL, "--out", out)
	if got.code != exitScriptError {
		t.Errorf("run = %d, stderr %q; want %d", got.code, got.stderr, exitScriptError)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "pwned")); err == nil {
		t.Errorf("a file was written through a symlink out of --out")
	}
}

func TestParseRunArgs(t *testing.T) {
	env := func(url string) func(string) string {
		return func(k string) string {
			if k == "PYEXEC_URL" {
				return url
			}
			return ""
		}
	}
	tests := []struct {
		name       string
		args       []string
		env        string
		wantScript string
		wantURL    string
		wantFiles  []string
	}{
		{"the default URL", []string{"s.py"}, "", "s.py", defaultURL, nil},
		{"PYEXEC_URL", []string{"s.py"}, "http://10.0.0.1:9000", "s.py", "http://10.0.0.1:9000", nil},
		{"--url over PYEXEC_URL", []string{"s.py", "--url", "http://a"}, "http://b", "s.py", "http://a", nil},
		{"flags on both sides, files in order", []string{"--file", "a", "s.py", "-file=b=c"}, "", "s.py", defaultURL, []string{"a", "b=c"}},
		{"a script named like a flag after --", []string{"--json", "--", "-s.py"}, "", "-s.py", defaultURL, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := parseRunArgs(tt.args, env(tt.env))
			if err != nil {
				t.Fatalf("parseRunArgs(%q) = %v", tt.args, err)
			}
			if a.script != tt.wantScript || a.url != tt.wantURL || !reflect.DeepEqual(a.files, tt.wantFiles) {
				t.Errorf("parseRunArgs(%q) = script %q, url %q, files %q; want %q, %q, %q",
					tt.args, a.script, a.url, a.files, tt.wantScript, tt.wantURL, tt.wantFiles)
			}
		})
	}
}
