//go:build integration

package browser

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pyexec/pyexec/executor"
	"github.com/pyexec/pyexec/internal/testenv"
)

// binary is the pyexec binary TestMain builds, as a user's `go build` would.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "pyexec-browser-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pyexec")
	build := exec.Command("go", "build", "-o", binary, "github.com/pyexec/pyexec/cmd/pyexec")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building ./cmd/pyexec: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	shared.svc.stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// service is the pyexec binary serving Execute on a loopback port.
type service struct {
	URL  string // e.g. http://127.0.0.1:41234
	cmd  *exec.Cmd
	out  *syncBuffer // its stdout and stderr
	done chan struct{}
}

// sharedService is the service most tests use, started on first use with
// the default limits and stopped by TestMain.
var shared struct {
	once sync.Once
	svc  *service
	err  error
}

func sharedService(t *testing.T) *service {
	t.Helper()
	shared.once.Do(func() { shared.svc, shared.err = startService(nil) })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.svc
}

// serviceWith starts a service of its own for t, with env on top of the
// environment, and stops it when t ends.
func serviceWith(t *testing.T, env map[string]string) *service {
	t.Helper()
	svc, err := startService(env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.stop)
	return svc
}

// startService runs the binary with the environment (PYEXEC_PYTHON and
// PYEXEC_NSJAIL as make sets them) plus env, on a free loopback port, and
// waits until /healthz answers 200: the sandbox self-test has passed.
func startService(env map[string]string) (*service, error) {
	cfg, err := executor.ConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("reading the configuration: %w", err)
	}
	for _, p := range []string{cfg.PythonPath, cfg.NsjailPath} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("runtime missing (%w): run `make runtime` or set PYEXEC_PYTHON and PYEXEC_NSJAIL", err)
		}
	}
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	svc := &service{URL: "http://127.0.0.1:" + strconv.Itoa(port), out: &syncBuffer{}, done: make(chan struct{})}
	svc.cmd = exec.Command(binary)
	svc.cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "FUNCTION_TARGET=Execute")
	for k, v := range env {
		svc.cmd.Env = append(svc.cmd.Env, k+"="+v)
	}
	svc.cmd.Stdout, svc.cmd.Stderr = svc.out, svc.out
	if err := svc.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	go func() {
		_ = svc.cmd.Wait()
		close(svc.done)
	}()
	if err := svc.waitHealthy(2 * time.Minute); err != nil {
		svc.stop()
		return nil, fmt.Errorf("%w; its output:\n%s", err, svc.out.String())
	}
	return svc, nil
}

func (s *service) waitHealthy(limit time.Duration) error {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(limit)
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("pyexec exited before it was healthy (%v)", s.cmd.ProcessState)
		default:
		}
		res, err := client.Get(s.URL + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			last = res.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("GET /healthz did not answer 200 within %v (last: %s)", limit, last)
}

// stop asks the service to shut down as Cloud Run does (SIGTERM) and kills
// it if it has not exited in time.
func (s *service) stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	select {
	case <-s.done:
	case <-ctx.Done():
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// syncBuffer is a bytes.Buffer that the process's output goroutines and
// the test can share.
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

// errNoChromium says how to get the browser the tests drive.
var errNoChromium = errors.New("chromium not found: run scripts/install-chromium.sh, or set CHROMIUM to a Chrome/Chromium binary")

// chromiumPath is the browser to drive: $CHROMIUM, else Debian's chromium.
func chromiumPath() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errNoChromium
}
