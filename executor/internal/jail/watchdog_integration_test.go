//go:build integration

package jail

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyexec/pyexec/api"
)

// A stopped fork server (the interpreter that forks executions, inside its
// nsjail) costs each request at most forkTimeout: the request answers
// sandbox_unavailable, the server is killed and replaced, and a later request
// runs in the replacement without anyone continuing the stopped process.
func TestAStoppedForkServerIsReplaced(t *testing.T) {
	cfg := realConfig(t)
	cfg.Mode = ModeFork
	e := startExecutor(t, cfg)
	script := "def main():\n    return 7\n"
	if _, err := e.Run(context.Background(), Request{Script: script}); err != nil {
		t.Fatalf("Run before the fault: %v", err)
	}
	box := e.box.(*forkSandbox)
	nsjailPid := serverPid(box)
	zygote := childOf(t, nsjailPid)
	if err := syscall.Kill(zygote, syscall.SIGSTOP); err != nil {
		t.Fatalf("stopping the fork server: %v", err)
	}
	defer syscall.Kill(zygote, syscall.SIGCONT) //nolint:errcheck // gone once replaced

	bound := forkTimeout + 5*time.Second // one bounded wait, then a new server's start
	// The processes forked ahead of the fault answer the first requests;
	// the loop ends at the first request served by a replacement server.
	var served bool
	for i := 0; i < 8 && !served; i++ {
		start := time.Now()
		res, err := e.Run(context.Background(), Request{Script: script})
		took := time.Since(start)
		switch {
		case err == nil && string(res.Value) == "7":
			served = serverPid(box) != nsjailPid
		case err != nil && TypeOf(err) == api.ErrorTypeSandboxUnavailable:
		default:
			t.Fatalf("Run %d during the fault = %+v, %v; want 7 or sandbox_unavailable", i, string(res.Value), err)
		}
		if took > bound {
			t.Errorf("Run %d took %v, want at most %v", i, took, bound)
		}
	}
	if !served {
		t.Fatal("no request was served by a replacement of the stopped fork server")
	}
}

// serverPid returns the pid of the fork server's nsjail, 0 while there is none.
func serverPid(f *forkSandbox) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.server == nil {
		return 0
	}
	return f.server.proc.cmd.Process.Pid
}

// childOf returns the one child of pid.
func childOf(t *testing.T, pid int) int {
	t.Helper()
	p := strconv.Itoa(pid)
	b, err := os.ReadFile("/proc/" + p + "/task/" + p + "/children")
	if err != nil {
		t.Fatalf("reading nsjail's children: %v", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		t.Fatalf("nsjail %d has children %q, want one", pid, f)
	}
	c, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}
