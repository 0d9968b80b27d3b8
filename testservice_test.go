package pyexec

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyexec/pyexec/execlog"
	"github.com/pyexec/pyexec/executor"
	"github.com/pyexec/pyexec/internal/leakcheck"
)

// testService is a real service (real executor, real nsjail, real Python)
// served over real HTTP on loopback, with its log entries captured.
type testService struct {
	*service
	exec *executor.Executor
	srv  *httptest.Server
	logs *syncBuffer
}

// startService starts a service configured by the environment plus env, and
// waits for its sandbox self-test to pass. At cleanup it shuts the service
// down and fails the test if any process, cgroup or file it made is left.
func startService(t *testing.T, env map[string]string) *testService {
	t.Helper()
	requireRuntime(t)
	cfg := configWith(t, env)
	exec, err := executor.New(cfg)
	if err != nil {
		t.Fatalf("executor.New: %v", err)
	}
	if err := exec.Start(context.Background()); err != nil {
		t.Fatalf("sandbox self-test failed: %v", err)
	}
	return serveExecutor(t, cfg, exec)
}

// serveExecutor serves exec over real HTTP on loopback with its log entries
// captured, and at cleanup shuts it down and fails t if any process, cgroup
// or file it made is left.
func serveExecutor(t *testing.T, cfg executor.Config, exec *executor.Executor) *testService {
	t.Helper()
	logs := &syncBuffer{}
	log, err := execlog.New(context.Background(), execlog.Config{Mode: "stdout", Out: logs})
	if err != nil {
		t.Fatalf("execlog.New: %v", err)
	}
	s := &service{exec: exec, health: exec.Health, log: log, cfg: cfg, stop: exec.Shutdown}
	srv := httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := exec.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		assertNothingLeft(t, exec)
	})
	return &testService{service: s, exec: exec, srv: srv, logs: logs}
}

// configWith is the configuration from the environment, with env's values
// in place of the environment's.
func configWith(t *testing.T, env map[string]string) executor.Config {
	t.Helper()
	cfg, err := executor.ConfigFromEnv(func(name string) string {
		if v, ok := env[name]; ok {
			return v
		}
		return os.Getenv(name)
	})
	if err != nil {
		t.Fatalf("ConfigFromEnv: %v", err)
	}
	return cfg
}

// assertNothingLeft fails t if the executor left a process, cgroup or file.
func assertNothingLeft(t *testing.T, exec *executor.Executor) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		procs := leakcheck.Descendants(os.Getpid())
		left := exec.Leftovers()
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

// requireRuntime fails (never skips) when the runtime is missing: the test
// command installs it, so its absence is a broken setup, not a reason to pass.
func requireRuntime(t *testing.T) {
	t.Helper()
	cfg, err := executor.ConfigFromEnv(os.Getenv)
	if err != nil {
		t.Fatalf("ConfigFromEnv: %v", err)
	}
	for _, p := range []string{cfg.PythonPath, cfg.NsjailPath} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("runtime missing (%v): run `make runtime` or set PYEXEC_PYTHON and PYEXEC_NSJAIL", err)
		}
	}
}

// response is a decoded /execute answer.
type response struct {
	Status    int
	Header    http.Header
	Raw       []byte
	Result    json.RawMessage `json:"result"`
	Stdout    *string         `json:"stdout"`
	Error     string          `json:"error"`
	ErrorType string          `json:"error_type"`
	Traceback string          `json:"traceback"`
}

// post sends body to path and decodes the JSON answer, failing t when the
// answer is not strict JSON.
func (ts *testService) post(t *testing.T, path, contentType string, body []byte) response {
	t.Helper()
	resp, err := http.Post(ts.srv.URL+path, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatalf("reading response: %v", err)
	}
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: buf.Bytes()}
	dec := json.NewDecoder(bytes.NewReader(r.Raw))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("POST %s answered %d with non-JSON body %q: %v", path, resp.StatusCode, r.Raw, err)
	}
	return r
}

// execute runs script through POST /execute.
func (ts *testService) execute(t *testing.T, script string) response {
	t.Helper()
	body, err := json.Marshal(map[string]string{"script": script})
	if err != nil {
		t.Fatal(err)
	}
	return ts.post(t, "/execute", "application/json", body)
}

// entries returns the captured log entries.
func (ts *testService) entries(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(ts.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
