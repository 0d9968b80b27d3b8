// Package testsupport is what pyexec's tests share: a real service served
// over real HTTP on loopback (in the test's process, or the built binary as
// a child process) with its log captured, its answers decoded, Pub/Sub and
// CloudEvents parts to deliver messages with, and the checks that nothing
// is left behind. Only tests import it.
package testsupport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/pyexec/pyexec"
	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor"
	"github.com/pyexec/pyexec/internal/leakcheck"
	"github.com/pyexec/pyexec/internal/testenv"
	"github.com/pyexec/pyexec/server"
)

// Service is a real service (real executor, real nsjail, real Python) in
// the test's process, serving the Execute function over real HTTP on
// loopback, with its log entries captured. Its environment is the test's.
type Service struct {
	// URL is the service's base URL, http://127.0.0.1:PORT.
	URL      string
	Server   *server.Server
	Executor *executor.Executor
	// Logs holds the service's log entries, one JSON line each.
	Logs *Buffer
}

// StartService starts a service configured by the environment plus env,
// and waits for its sandbox self-test to pass, failing t if it fails. At
// cleanup it shuts the service down and fails t if any process, cgroup or
// file it made is left.
func StartService(t testing.TB, env map[string]string) *Service {
	t.Helper()
	RequireRuntime(t)
	s := newService(t, env)
	if err := s.Server.Start(context.Background()); err != nil {
		t.Fatalf("sandbox self-test failed: %v", err)
	}
	return s
}

// StartUnavailableService is StartService for a sandbox whose self-test
// fails: configured with env, the self-test must fail, and the service
// answers anyway (and retries the self-test in the background). Cleanup
// checks that nothing was left, as StartService's does.
func StartUnavailableService(t testing.TB, env map[string]string) *Service {
	t.Helper()
	s := newService(t, env)
	if err := s.Server.Start(context.Background()); err == nil {
		t.Fatalf("the self-test with %v passed, want it to fail", env)
	}
	return s
}

func newService(t testing.TB, env map[string]string) *Service {
	t.Helper()
	logs := &Buffer{}
	svc, err := pyexec.NewService(context.Background(), envWith(env), logs)
	if err != nil {
		t.Fatalf("pyexec.NewService: %v", err)
	}
	srv, exec, log := svc.Server, svc.Executor, svc.Log
	hs := httptest.NewServer(http.HandlerFunc(srv.Execute))
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := log.Close(); err != nil {
			t.Errorf("closing the log: %v", err)
		}
		AssertNothingLeft(t, exec)
	})
	return &Service{URL: hs.URL, Server: srv, Executor: exec, Logs: logs}
}

// envWith is the environment, with env's values in place of its own.
func envWith(env map[string]string) func(string) string {
	return func(name string) string {
		if v, ok := env[name]; ok {
			return v
		}
		return os.Getenv(name)
	}
}

// ExecutorConfig is the executor's configuration from the environment,
// with env's values in place of the environment's.
func ExecutorConfig(t testing.TB, env map[string]string) executor.Config {
	t.Helper()
	cfg, err := executor.ConfigFromEnv(envWith(env))
	if err != nil {
		t.Fatalf("executor.ConfigFromEnv: %v", err)
	}
	return cfg
}

// RequireRuntime fails (never skips) when the runtime is missing: the test
// command installs it, so its absence is a broken setup, not a reason to
// pass.
func RequireRuntime(t testing.TB) {
	t.Helper()
	cfg := ExecutorConfig(t, nil)
	for _, p := range []string{cfg.PythonPath, cfg.NsjailPath} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("runtime missing (%v): run `make runtime` or set PYEXEC_PYTHON and PYEXEC_NSJAIL", err)
		}
	}
}

// AssertNothingLeft fails t if exec left a process (below the test's),
// cgroup or file.
func AssertNothingLeft(t testing.TB, exec *executor.Executor) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		procs := leakcheck.Descendants(os.Getpid())
		left := leakcheck.ExecutorLeftovers(exec)
		if len(procs) == 0 && len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("left behind: processes [%s], cgroups and files %v", leakcheck.Describe(procs), left)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Response is a decoded answer.
type Response struct {
	// Request names what was answered, for failure messages: "POST /execute",
	// or "MCP run_python" for a tool call.
	Request string      `json:"-"`
	Status  int         `json:"-"`
	Header  http.Header `json:"-"`
	Raw     []byte      `json:"-"`
	// The body's fields, as /execute answers have them.
	Result    json.RawMessage `json:"result"`
	Stdout    *string         `json:"stdout"` // nil when the body has no stdout
	Error     string          `json:"error"`
	ErrorType string          `json:"error_type"`
	Traceback string          `json:"traceback"`
	// Files are a success's output files; nil when the body has none.
	Files []api.OutputFile `json:"files"`
}

// Do sends req and decodes the answer, failing t when it is not strict JSON
// (HEAD's and 204's empty answers aside).
func Do(t testing.TB, req *http.Request) Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer to %s %s: %v", req.Method, req.URL.Path, err)
	}
	r := Response{Request: req.Method + " " + req.URL.Path, Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if req.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent {
		return r
	}
	if err := r.decodeBody(); err != nil {
		t.Fatalf("%s %s answered %d with non-JSON body %q: %v", req.Method, req.URL.Path, resp.StatusCode, Clip(raw), err)
	}
	return r
}

// decodeBody sets r's body fields from Raw, numbers kept exact.
func (r *Response) decodeBody() error {
	var fields struct {
		Result    json.RawMessage  `json:"result"`
		Stdout    *string          `json:"stdout"`
		Error     string           `json:"error"`
		ErrorType string           `json:"error_type"`
		Traceback string           `json:"traceback"`
		Files     []api.OutputFile `json:"files"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.Raw))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		return err
	}
	r.Result, r.Stdout, r.Error, r.ErrorType, r.Traceback, r.Files = fields.Result, fields.Stdout, fields.Error, fields.ErrorType, fields.Traceback, fields.Files
	return nil
}

// Post sends body to the service's path and decodes the answer as Do does.
func (s *Service) Post(t testing.TB, path, contentType string, body []byte) Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	return Do(t, req)
}

// Execute runs script through POST /execute.
func (s *Service) Execute(t testing.TB, script string) Response {
	t.Helper()
	return s.Post(t, "/execute", "application/json", ScriptBody(t, script))
}

// ScriptBody is the request body {"script": script}.
func ScriptBody(t testing.TB, script string) []byte {
	t.Helper()
	body, err := json.Marshal(map[string]string{"script": script})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// Clip shortens b for a failure message.
func Clip(b []byte) string {
	const n = 2000
	if len(b) <= n {
		return string(b)
	}
	return fmt.Sprintf("%s…(%d bytes)", b[:n], len(b))
}

// RepoRoot is the repository's root directory (where go.mod is): a test's
// working directory is its package's.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}
