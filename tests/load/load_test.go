//go:build integration

// Package load runs the load and fault tests against the real binary,
// cmd/pyexec, as Cloud Run would: a process of its own, its own cgroups,
// signals from outside.
package load

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/leakcheck"
	loadgen "github.com/pyexec/pyexec/internal/load"
	"github.com/pyexec/pyexec/internal/testsupport"
)

func TestMain(m *testing.M) { testsupport.Main(m) }

// fds counts the open descriptors of process pid.
func fds(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("reading the service's descriptors: %v", err)
	}
	return len(entries)
}

// rssKB reads the resident set size of process pid.
func rssKB(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
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
	p := testsupport.StartBinary(t, map[string]string{
		"PYEXEC_CONCURRENCY":     "2",
		"PYEXEC_QUEUE":           "4",
		"PYEXEC_TIMEOUT_SECONDS": "2",
		"PYEXEC_MEMORY_MB":       "256",
	})
	p.Health(t, http.StatusOK)
	pid := p.Pid()
	// A warm-up, so the baseline counts the connections and buffers a
	// serving process keeps anyway.
	if _, err := loadgen.Run(context.Background(), loadgen.Config{URL: p.URL, Count: 8, Concurrency: 2, Mix: map[string]int{"good": 1}}); err != nil {
		t.Fatal(err)
	}
	idleProcs := testsupport.SettledDescendants(t, p.Pid())
	idleCgroups, idleInCgroups := cgroupsOf(pid)
	fdsBefore, rssBefore := fds(t, pid), rssKB(t, pid)

	rep, err := loadgen.Run(context.Background(), loadgen.Config{
		URL: p.URL, Count: 300, Concurrency: 12, Seed: uint64(time.Now().UnixNano()), RetryBusy: 50,
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
	for _, s := range loadgen.Scripts {
		if rep.ByScript[s.Name] == 0 {
			t.Errorf("script %s never ran; the mix did not cover it", s.Name)
		}
	}

	// Nothing left: no more processes than the idle service had, no more
	// cgroups, and no process anywhere in one of its execution cgroups
	// beyond those of its idle sandboxes (all three counted once the
	// warm-up had settled: just after the load, a warm process may be
	// between its fork and its cgroup).
	var left string
	t.Cleanup(func() {
		if t.Failed() && left != "" {
			t.Logf("left when the wait ended: %s", left)
		}
	})
	testsupport.PollUntil(t, 30*time.Second, "the service's executions to leave nothing behind", func() bool {
		dirs, procs := cgroupsOf(pid)
		descendants := leakcheck.Descendants(pid)
		left = fmt.Sprintf("%d processes under the service (idle: %d), cgroups %v (idle: %v), processes in them %v (idle: %v)",
			len(descendants), idleProcs, dirs, idleCgroups, procs, idleInCgroups)
		return len(descendants) <= idleProcs && len(dirs) <= len(idleCgroups) && len(procs) <= len(idleInCgroups)
	})
	// Descriptors back to the baseline (keep-alive connections may differ
	// by a few, and are closed by now on the client side).
	var fdsAfter int
	testsupport.PollUntil(t, 10*time.Second, "the service's descriptors to return to the baseline", func() bool {
		fdsAfter = fds(t, pid)
		return fdsAfter <= fdsBefore+4
	})
	rssAfter := rssKB(t, pid)
	t.Logf("descriptors %d -> %d; RSS %d KiB -> %d KiB", fdsBefore, fdsAfter, rssBefore, rssAfter)
	if rssAfter > rssBefore+128<<10 || rssAfter > 512<<10 {
		t.Errorf("RSS grew from %d KiB to %d KiB over the load", rssBefore, rssAfter)
	}
	if r, err := http.Get(p.URL + "/healthz"); err != nil || r.StatusCode != http.StatusOK {
		t.Errorf("/healthz after the load: %v %v", r, err)
	}
}

// TestShutdownUnderLoad sends SIGTERM while executions run and wait: every
// request sent before it is answered (200, 4xx or 503), the process exits
// within its grace period, and no jail or cgroup of it remains anywhere.
func TestShutdownUnderLoad(t *testing.T) {
	p := testsupport.StartBinary(t, map[string]string{
		"PYEXEC_CONCURRENCY":     "2",
		"PYEXEC_QUEUE":           "6",
		"PYEXEC_TIMEOUT_SECONDS": "30",
	})
	p.Health(t, http.StatusOK)
	pid := p.Pid()

	// One slot runs a script that outlives the 10 s grace (killed at
	// shutdown, and answered), the other one that finishes within it; more
	// wait in the queue.
	long := fmt.Sprintf("pyexec-sl%d", os.Getpid()%100000)
	short := fmt.Sprintf("pyexec-ss%d", os.Getpid()%100000)
	longScript := testsupport.NameProcess(long) + "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ndef main():\n    time.sleep(60)\n"
	shortScript := testsupport.NameProcess(short) + "import time\ndef main():\n    time.sleep(2)\n    return 'slept'\n"
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
			outcome, body := loadgen.Execute(context.Background(), client, p.URL, script)
			answers <- answer{name, outcome, body}
		}()
	}
	send("long", longScript)
	testsupport.PollUntil(t, 30*time.Second, "the long script to run", func() bool { return len(leakcheck.DescendantsNamed(1, long)) > 0 })
	send("short", shortScript)
	testsupport.PollUntil(t, 30*time.Second, "the short script to run", func() bool { return len(leakcheck.DescendantsNamed(1, short)) > 0 })
	for i := 0; i < 6; i++ {
		send("quick", quick)
	}
	time.Sleep(300 * time.Millisecond) // let the quick ones reach the queue
	sent := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
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
	if err := p.Err(); err != nil {
		t.Errorf("the service exited with %v, want a clean exit", err)
	}
	dirs, procs := cgroupsOf(pid)
	parents, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/*/pyexec/%d-*", pid))
	if len(dirs) != 0 || len(procs) != 0 || len(parents) != 0 {
		t.Errorf("after the service exited: cgroups %v %v and processes %v of it remain", parents, dirs, procs)
	}
	testsupport.PollUntil(t, 5*time.Second, "no script process anywhere on the host", func() bool {
		return len(leakcheck.DescendantsNamed(1, long))+len(leakcheck.DescendantsNamed(1, short)) == 0
	})
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
			p := testsupport.StartBinary(t, map[string]string{"PYEXEC_NSJAIL": tc.nsjail})
			body := p.Health(t, http.StatusServiceUnavailable)
			if reason, _ := body["reason"].(string); reason == "" {
				t.Errorf("/healthz 503 body %v has no reason", body)
			}
			mark := filepath.Join(t.TempDir(), "ran-unsandboxed")
			script := fmt.Sprintf("def main():\n    open(%q, 'w').write('x')\n    return 1\n", mark)
			outcome, raw := loadgen.Execute(context.Background(), http.DefaultClient, p.URL, script)
			if outcome != "503 sandbox_unavailable" {
				t.Errorf("/execute answered %s %s, want 503 sandbox_unavailable", outcome, raw)
			}
			if _, err := os.Stat(mark); err == nil {
				t.Error("the script ran outside the sandbox: its mark is on the host")
			}
		})
	}
}
