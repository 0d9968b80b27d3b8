package pyexec

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/load"
	"github.com/pyexec/pyexec/internal/leakcheck"
)

// The load and fault tests run the real binary, cmd/pyexec, as Cloud Run
// would: a process of its own, its own cgroups, signals from outside.

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// serviceBinary builds cmd/pyexec once per test run.
func serviceBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pyexec-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "pyexec")
		out, err := exec.Command("go", "build", "-o", binaryPath, "./cmd/pyexec").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build ./cmd/pyexec: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// process is a running pyexec binary.
type process struct {
	cmd    *exec.Cmd
	url    string
	output *syncBuffer
	done   chan struct{}
	err    error // Wait's error, once done is closed
}

// startBinary starts cmd/pyexec on a free loopback port with env added to
// this process's environment, and kills it at cleanup if it still runs.
func startBinary(t *testing.T, env map[string]string) *process {
	t.Helper()
	requireRuntime(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(serviceBinary(t))
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "FUNCTION_TARGET=Execute", "PYEXEC_LOG=stdout")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &process{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port), output: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("service output (last 4 KiB):\n%s", tail(p.output.String(), 4096))
		}
	})
	return p
}

// health polls /healthz until it answers want or the deadline passes, and
// returns the last body.
func (p *process) health(t *testing.T, want int) map[string]any {
	t.Helper()
	var body map[string]any
	pollUntil(t, 60*time.Second, fmt.Sprintf("/healthz to answer %d", want), func() bool {
		resp, err := http.Get(p.url + "/healthz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		body = nil
		_ = json.Unmarshal(raw, &body)
		return resp.StatusCode == want
	})
	return body
}

// fds counts the process's open descriptors.
func (p *process) fds(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("reading the service's descriptors: %v", err)
	}
	return len(entries)
}

// rssKB reads the process's resident set size.
func (p *process) rssKB(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/<pid>/status")
	return 0
}

// cgroupsOf lists the execution cgroups under the service's own parents
// (pyexec/<pid>-<n>, one per executor) in every hierarchy, and the processes
// anywhere on the host that still sit in one of them: a jail that outlived
// its execution or its service would show here even once reparented away
// from the service.
func cgroupsOf(pid int) (dirs []string, procs []string) {
	mark := fmt.Sprintf("/pyexec/%d-", pid)
	matches, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/*/pyexec/%d-*/*", pid))
	more, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/*/*/pyexec/%d-*/*", pid))
	for _, m := range append(matches, more...) {
		if fi, err := os.Stat(m); err == nil && fi.IsDir() {
			dirs = append(dirs, m)
		}
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup")); err == nil && strings.Contains(string(data), mark) {
			procs = append(procs, e.Name())
		}
	}
	return dirs, procs
}

// TestLoadMixedExecutions runs a few hundred good, failing and hostile
// executions at a concurrency well above the service's limit (so the queue
// fills and busy answers come), then checks that every answer was the right
// one and that nothing leaked: processes, cgroups, descriptors, memory.
// `go run ./cmd/pyexec-load -n 10000` is the long form.
func TestLoadMixedExecutions(t *testing.T) {
	p := startBinary(t, map[string]string{
		"PYEXEC_CONCURRENCY":     "2",
		"PYEXEC_QUEUE":           "4",
		"PYEXEC_TIMEOUT_SECONDS": "2",
		"PYEXEC_MEMORY_MB":       "256",
	})
	p.health(t, http.StatusOK)
	pid := p.cmd.Process.Pid
	// A warm-up, so the baseline counts the connections and buffers a
	// serving process keeps anyway.
	if _, err := load.Run(context.Background(), load.Config{URL: p.url, Count: 8, Concurrency: 2, Mix: map[string]int{"good": 1}}); err != nil {
		t.Fatal(err)
	}
	idleProcs := settledDescendants(t, p.cmd.Process.Pid)
	idleCgroups, _ := cgroupsOf(pid)
	fdsBefore, rssBefore := p.fds(t), p.rssKB(t)

	rep, err := load.Run(context.Background(), load.Config{
		URL: p.url, Count: 300, Concurrency: 12, Seed: uint64(time.Now().UnixNano()), RetryBusy: 50,
		Mix: map[string]int{"good": 6, "failing": 2, "hostile": 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load: %s", rep)
	if len(rep.Mismatches) > 0 {
		t.Errorf("%d answers were wrong for their script, e.g. %+v", len(rep.Mismatches), rep.Mismatches[0])
	}
	if rep.ByOutcome["200"] == 0 || rep.ByOutcome["503 busy"] == 0 {
		t.Errorf("outcomes %v: want successes, and busy answers at 12 in flight against 2 slots and 4 queue places", rep.ByOutcome)
	}
	for _, s := range load.Scripts {
		if rep.ByScript[s.Name] == 0 {
			t.Errorf("script %s never ran; the mix did not cover it", s.Name)
		}
	}

	// Nothing left: no more processes than the idle service had, no more
	// cgroups, and no process anywhere in one of its execution cgroups
	// beyond those of its idle sandboxes.
	_, idleInCgroups := cgroupsOf(pid)
	pollUntil(t, 30*time.Second, "the service's executions to leave nothing behind", func() bool {
		dirs, procs := cgroupsOf(pid)
		return len(leakcheck.Descendants(pid)) <= idleProcs && len(dirs) <= len(idleCgroups) && len(procs) <= len(idleInCgroups)
	})
	// Descriptors back to the baseline (keep-alive connections may differ
	// by a few, and are closed by now on the client side).
	var fdsAfter int
	pollUntil(t, 10*time.Second, "the service's descriptors to return to the baseline", func() bool {
		fdsAfter = p.fds(t)
		return fdsAfter <= fdsBefore+4
	})
	rssAfter := p.rssKB(t)
	t.Logf("descriptors %d -> %d; RSS %d KiB -> %d KiB", fdsBefore, fdsAfter, rssBefore, rssAfter)
	if rssAfter > rssBefore+128<<10 || rssAfter > 512<<10 {
		t.Errorf("RSS grew from %d KiB to %d KiB over the load", rssBefore, rssAfter)
	}
	if r, err := http.Get(p.url + "/healthz"); err != nil || r.StatusCode != http.StatusOK {
		t.Errorf("/healthz after the load: %v %v", r, err)
	}
}

// TestShutdownUnderLoad sends SIGTERM while executions run and wait: every
// request sent before it is answered (200, 4xx or 503), the process exits
// within its grace period, and no jail or cgroup of it remains anywhere.
func TestShutdownUnderLoad(t *testing.T) {
	p := startBinary(t, map[string]string{
		"PYEXEC_CONCURRENCY":     "2",
		"PYEXEC_QUEUE":           "6",
		"PYEXEC_TIMEOUT_SECONDS": "30",
	})
	p.health(t, http.StatusOK)
	pid := p.cmd.Process.Pid

	// One slot runs a script that outlives the 10 s grace (killed at
	// shutdown, and answered), the other one that finishes within it; more
	// wait in the queue.
	long := fmt.Sprintf("pyexec-sl%d", os.Getpid()%100000)
	short := fmt.Sprintf("pyexec-ss%d", os.Getpid()%100000)
	longScript := nameSelf(long) + "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ndef main():\n    time.sleep(60)\n"
	shortScript := nameSelf(short) + "import time\ndef main():\n    time.sleep(2)\n    return 'slept'\n"
	quick := "def main():\n    return 1\n"
	client := &http.Client{Timeout: 60 * time.Second}
	type answer struct {
		script, outcome, body string
	}
	answers := make(chan answer, 64)
	var wg sync.WaitGroup
	send := func(name, script string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcome, body := load.Execute(context.Background(), client, p.url, script)
			answers <- answer{name, outcome, body}
		}()
	}
	send("long", longScript)
	pollUntil(t, 30*time.Second, "the long script to run", func() bool { return len(namedAnywhere(long)) > 0 })
	send("short", shortScript)
	pollUntil(t, 30*time.Second, "the short script to run", func() bool { return len(namedAnywhere(short)) > 0 })
	for i := 0; i < 6; i++ {
		send("quick", quick)
	}
	time.Sleep(300 * time.Millisecond) // let the quick ones reach the queue
	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the service still runs 20 s after SIGTERM")
	}
	exitAfter := time.Since(sent)
	wg.Wait()
	close(answers)
	counts := map[string]int{}
	for a := range answers {
		counts[a.script+" "+a.outcome]++
		switch {
		case a.script == "short" && a.outcome != "200":
			t.Errorf("the script that finishes within the grace got %s: %s", a.outcome, a.body)
		case a.script == "long" && a.outcome != "503 busy":
			t.Errorf("the script killed at the end of the grace got %s, want 503 busy: %s", a.outcome, a.body)
		case a.outcome == "200", strings.HasPrefix(a.outcome, "400 "), strings.HasPrefix(a.outcome, "503 "):
		default:
			t.Errorf("a request in flight at SIGTERM got %s: %s", a.outcome, a.body)
		}
	}
	t.Logf("exit %v after SIGTERM; answers %v", exitAfter, counts)
	if exitAfter > 14*time.Second {
		t.Errorf("the service took %v to exit after SIGTERM, want its 10 s grace and little more", exitAfter)
	}
	if p.err != nil {
		t.Errorf("the service exited with %v, want a clean exit", p.err)
	}
	dirs, procs := cgroupsOf(pid)
	parents, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/*/pyexec/%d-*", pid))
	if len(dirs) != 0 || len(procs) != 0 || len(parents) != 0 {
		t.Errorf("after the service exited: cgroups %v %v and processes %v of it remain", parents, dirs, procs)
	}
	pollUntil(t, 5*time.Second, "no script process anywhere on the host", func() bool {
		return len(namedAnywhere(long))+len(namedAnywhere(short)) == 0
	})
}

// namedAnywhere lists every process on the host called name, wherever it
// was reparented.
func namedAnywhere(name string) []int {
	var found []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm")); err == nil && strings.TrimSpace(string(comm)) == name {
			found = append(found, pid)
		}
	}
	return found
}

// TestNsjailUnavailableIsNeverBypassed starts the binary with nsjail
// missing, and with an "nsjail" that fails at once: executions answer 503
// sandbox_unavailable, /healthz 503 with the reason, and the script (which
// would leave a mark on the host if it ran unsandboxed) never runs.
func TestNsjailUnavailableIsNeverBypassed(t *testing.T) {
	failing := filepath.Join(t.TempDir(), "nsjail")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\necho 'nsjail: cannot start' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, nsjail string }{
		{"nsjail missing", "/nonexistent/nsjail"},
		{"nsjail failing at start", failing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startBinary(t, map[string]string{"PYEXEC_NSJAIL": tc.nsjail})
			body := p.health(t, http.StatusServiceUnavailable)
			if reason, _ := body["reason"].(string); reason == "" {
				t.Errorf("/healthz 503 body %v has no reason", body)
			}
			mark := filepath.Join(t.TempDir(), "ran-unsandboxed")
			script := fmt.Sprintf("def main():\n    open(%q, 'w').write('x')\n    return 1\n", mark)
			outcome, raw := load.Execute(context.Background(), http.DefaultClient, p.url, script)
			if outcome != "503 sandbox_unavailable" {
				t.Errorf("/execute answered %s %s, want 503 sandbox_unavailable", outcome, raw)
			}
			if _, err := os.Stat(mark); err == nil {
				t.Error("the script ran outside the sandbox: its mark is on the host")
			}
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
