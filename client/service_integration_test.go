//go:build integration

package client_test

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// startService builds cmd/pyexec and serves it on a free loopback port with
// the installed runtime and env (NAME=value) on top of the environment. It
// returns the service's URL once /healthz answers 200, and stops the
// service at cleanup.
func startService(t *testing.T, env ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pyexec")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/pyexec/pyexec/cmd/pyexec").CombinedOutput(); err != nil {
		t.Fatalf("building pyexec: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT="+port, "FUNCTION_TARGET=Execute", "PYEXEC_LOG=stdout")
	for name, installed := range map[string]string{"PYEXEC_PYTHON": "/opt/pyexec/venv/bin/python3", "PYEXEC_NSJAIL": "/opt/pyexec/bin/nsjail"} {
		if os.Getenv(name) == "" {
			cmd.Env = append(cmd.Env, name+"="+installed)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pyexec: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("pyexec did not stop within 20s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("pyexec's output:\n%s", logs.String())
		}
	})

	url := "http://127.0.0.1:" + port
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("pyexec exited before it was healthy: %v", err)
		default:
		}
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
	}
	t.Fatalf("pyexec's /healthz did not answer 200 within 3 minutes")
	return ""
}
