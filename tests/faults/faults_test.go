//go:build integration

// Package faults breaks a running service's sandbox the ways a host can (a
// process killed or stopped, an interpreter that never finishes its imports,
// memory running out, a client that leaves) and checks that the service
// recovers on its own within a bound, that /healthz tells the truth
// meanwhile, that SIGTERM in the middle of it still shuts the service down
// cleanly, and that nothing is left: processes, cgroups, descriptors.
//
// Each service is the built binary (or PYEXEC_SERVICE_BINARY) as Cloud Run
// runs it, in a cgroup of the test's own from its first instruction; each
// fault is tried at idle and under a load of concurrent executions.
package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	"github.com/pyexec/pyexec/internal/testsupport"
)

func TestMain(m *testing.M) { testsupport.Main(m) }

// timeoutSeconds is the services' execution time limit.
const timeoutSeconds = 10

// Bounds, as docs/operations.md states them. In an emulated machine, where
// everything takes several times longer, PYEXEC_FAULTS_TIME_SCALE
// multiplies them.
var (
	// answerBound is the longest any request may take: its own timeout,
	// the wait for a sandbox beyond it (sandboxWaitMargin), and slack for
	// a loaded machine.
	answerBound = scaled((timeoutSeconds + 5 + 5) * time.Second)
	// recoveryBound is how soon after a fault the service must execute
	// again: a silent server is killed after 5 s (noticed within 2 s by
	// the watchdog), a replacement starts and passes its self-test in a
	// few seconds; a pool jail's imports are given 15 s.
	recoveryBound = scaled(30 * time.Second)
	// unhealthyBound is the longest /healthz may answer 200 while every
	// execution fails: the watchdog's interval plus a fork server's
	// silence before it is killed, plus slack.
	unhealthyBound = scaled(10 * time.Second)
)

func scaled(d time.Duration) time.Duration {
	if n, err := strconv.Atoi(os.Getenv("PYEXEC_FAULTS_TIME_SCALE")); err == nil && n > 1 {
		return d * time.Duration(n)
	}
	return d
}

const okScript = "def main():\n    return 42\n"

// client makes each request on a connection of its own, so that the
// service's descriptors count no idle connection of the test's.
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * answerBound}

// answer is one execution's outcome as the test saw it.
type answer struct {
	start, end time.Time
	status     int
	errorType  string
	result     json.RawMessage
	err        error // transport
}

func (a answer) ok() bool {
	return a.err == nil && a.status == http.StatusOK && string(a.result) == "42"
}

func execute(ctx context.Context, url, script string) answer {
	a := answer{start: time.Now()}
	body, _ := json.Marshal(map[string]string{"script": script})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/execute", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		a.err, a.end = err, time.Now()
		return a
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a.end, a.status = time.Now(), resp.StatusCode
	var parsed struct {
		Result    json.RawMessage `json:"result"`
		ErrorType string          `json:"error_type"`
	}
	_ = json.Unmarshal(raw, &parsed)
	a.result, a.errorType = parsed.Result, parsed.ErrorType
	return a
}

func healthStatus(url string) int {
	resp, err := client.Get(url + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// sample is one /healthz answer.
type sample struct {
	at     time.Time
	status int
}

// watcher polls /healthz and, under load, runs executions from several
// clients, recording everything until stopped.
type watcher struct {
	url     string
	clients int // how many run executions
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.Mutex
	health  []sample
	answers []answer
}

func watch(url string, clients int) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{url: url, clients: clients, cancel: cancel}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for ctx.Err() == nil {
			s := sample{at: time.Now(), status: healthStatus(url)}
			w.mu.Lock()
			w.health = append(w.health, s)
			w.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	for i := 0; i < clients; i++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for ctx.Err() == nil {
				a := execute(context.Background(), url, okScript)
				w.mu.Lock()
				w.answers = append(w.answers, a)
				w.mu.Unlock()
			}
		}()
	}
	return w
}

func (w *watcher) stop() {
	w.cancel()
	w.wg.Wait()
}

// succeededSince tells whether an execution that started at or after t
// has succeeded.
func (w *watcher) succeededSince(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.answers {
		if !a.start.Before(t) && a.ok() {
			return true
		}
	}
	return false
}

func (w *watcher) sawHealth(status int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.health {
		if s.status == status {
			return true
		}
	}
	return false
}

// check asserts what holds under every fault: every execution was answered
// within answerBound, as a success or as a prompt 503 (busy or
// sandbox_unavailable, which a client retries), never a 500 or a broken
// connection; and /healthz never answered 200 for longer than
// unhealthyBound while every execution that ended meanwhile failed.
//
// killed is how many executions may instead answer that their process was
// killed: the fault killed a process that was given its script a moment
// before.
func (w *watcher) check(t *testing.T, killed int) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.answers {
		if a.err == nil && a.errorType == "exited" && killed > 0 {
			killed--
			continue
		}
		took := a.end.Sub(a.start)
		switch {
		case took > answerBound:
			t.Errorf("an execution took %v, want at most %v", took.Round(time.Millisecond), answerBound)
		case a.ok():
		case a.err == nil && a.status == http.StatusServiceUnavailable && (a.errorType == "busy" || a.errorType == "sandbox_unavailable"):
		default:
			t.Errorf("an execution answered %d %s %s (%v), want 200 42 or 503 busy/sandbox_unavailable", a.status, a.errorType, a.result, a.err)
		}
	}
	// Runs of /healthz 200 during which executions ended and all failed.
	var since time.Time
	for _, s := range w.health {
		if s.status != http.StatusOK {
			since = time.Time{}
			continue
		}
		if since.IsZero() {
			since = s.at
		}
		ended, failed := 0, 0
		for _, a := range w.answers {
			if !a.end.Before(since) && !a.end.After(s.at) {
				ended++
				if !a.ok() {
					failed++
				}
			}
		}
		if ended > 0 && ended == failed && s.at.Sub(since) > unhealthyBound {
			t.Errorf("/healthz answered 200 for %v while all %d executions that ended failed", s.at.Sub(since).Round(time.Millisecond), ended)
			return
		}
		if ended > failed {
			since = s.at
		}
	}
}

// service is one service under test, with what it held once warm.
type service struct {
	*testsupport.Binary
	cg        *serviceCgroup
	baseProcs int
	baseFDs   int
}

func startService(t *testing.T, env map[string]string, memBytes int64) *service {
	t.Helper()
	cg := newServiceCgroup(t, memBytes)
	settings := map[string]string{
		"PYEXEC_CONCURRENCY":     "2",
		"PYEXEC_TIMEOUT_SECONDS": strconv.Itoa(timeoutSeconds),
	}
	for k, v := range env {
		settings[k] = v
	}
	b := testsupport.StartBinaryInCgroups(t, settings, cg.procsFiles())
	b.Health(t, http.StatusOK)
	s := &service{Binary: b, cg: cg}
	mustExecute(t, s.URL)
	s.baseProcs, s.baseFDs = settledHoldings(t, b.Pid())
	return s
}

// settledHoldings returns the processes and descriptors the service holds
// once both have stayed the same for a second: straight after an execution
// it may still hold that request's connection, or be starting the jail that
// replaces a used one.
func settledHoldings(t *testing.T, pid int) (procs, fds int) {
	t.Helper()
	held := testsupport.Settled(t, "the service's processes and descriptors", time.Second, scaled(30*time.Second),
		func() []int { return []int{len(leakcheck.Descendants(pid)), leakcheck.FDs(pid)} })
	return held[0], held[1]
}

func mustExecute(t *testing.T, url string) {
	t.Helper()
	if a := execute(context.Background(), url, okScript); !a.ok() {
		t.Fatalf("execution = %d %s %s (%v), want 200 42", a.status, a.errorType, a.result, a.err)
	}
}

// recovered waits until /healthz answers 200 and an execution that started
// after the fault succeeds, failing t if that takes longer than
// recoveryBound from the fault. Under load the watcher's executions count:
// an execution of the test's own would queue behind them for the same
// sandboxes, and on a slow machine could time out while the service
// serves them.
func (s *service) recovered(t *testing.T, fault time.Time, w *watcher) {
	t.Helper()
	for {
		executes := w.succeededSince(fault)
		if !executes && w.clients == 0 {
			executes = execute(context.Background(), s.URL, okScript).ok()
		}
		if executes && healthStatus(s.URL) == http.StatusOK {
			t.Logf("recovered %v after the fault", time.Since(fault).Round(time.Millisecond))
			return
		}
		if time.Since(fault) > recoveryBound {
			t.Fatalf("the service did not recover within %v of the fault", recoveryBound)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nothingLeft waits until the service holds again the processes and
// descriptors it held once warm, failing t if it does not within 15 s
// (scaled).
func (s *service) nothingLeft(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(scaled(15 * time.Second))
	for {
		procs := len(leakcheck.Descendants(s.Pid()))
		fds := leakcheck.FDs(s.Pid())
		// Fewer descriptors than the baseline is no leak: the baseline
		// may count one of a pool jail still starting (under emulation
		// its imports outlast the baseline's settling second).
		if procs == s.baseProcs && fds <= s.baseFDs {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("after the fault the service holds %d processes and %d descriptors, want %d and at most %d as before it: %s",
				procs, fds, s.baseProcs, s.baseFDs, leakcheck.Describe(leakcheck.Descendants(s.Pid())))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logged waits for a log entry whose message contains text.
func (s *service) logged(t *testing.T, text string, within time.Duration) {
	t.Helper()
	testsupport.PollUntil(t, within, fmt.Sprintf("a log entry saying %q", text), func() bool {
		for _, e := range s.Entries(t) {
			if msg, _ := e["message"].(string); strings.Contains(msg, text) {
				return true
			}
		}
		return false
	})
}

// sandboxEvents are the messages of the log entries of what the sandbox
// did on its own.
func (s *service) sandboxEvents(t *testing.T) []string {
	var events []string
	for _, e := range s.Entries(t) {
		if msg, _ := e["message"].(string); e["sandbox_event"] == true {
			events = append(events, msg)
		}
	}
	return events
}

// sandboxEventsSaying counts the sandbox's events whose message contains
// text.
func (s *service) sandboxEventsSaying(t *testing.T, text string) int {
	n := 0
	for _, msg := range s.sandboxEvents(t) {
		if strings.Contains(msg, text) {
			n++
		}
	}
	return n
}

// logEvents writes into the test's log what the sandbox did on its own, so
// that a failure can be read against it.
func (s *service) logEvents(t *testing.T) {
	t.Helper()
	for _, msg := range s.sandboxEvents(t) {
		t.Logf("sandbox event: %s", msg)
	}
}

// stopAndCheck sends SIGTERM and checks the service exits cleanly within
// 30 s (Stop) and leaves nothing in its cgroup (the cgroup's cleanup).
func (s *service) stopAndCheck(t *testing.T) {
	t.Helper()
	s.Stop(t)
	testsupport.PollUntil(t, 10*time.Second, "the service's cgroup to hold no process", func() bool {
		return len(s.cg.processes()) == 0
	})
}

// forkServer returns the pids of the fork server's nsjail and of the server
// (the interpreter in it): the service's child nsjail and its one child.
func forkServer(t *testing.T, s *service) (nsjail, server int) {
	t.Helper()
	for _, pid := range leakcheck.Children(s.Pid()) {
		if leakcheck.Name(pid) != "nsjail" {
			continue
		}
		kids := leakcheck.Children(pid)
		if len(kids) == 1 {
			return pid, kids[0]
		}
	}
	t.Fatalf("no fork server below the service: %s", leakcheck.Describe(leakcheck.Descendants(s.Pid())))
	return 0, 0
}

func signal(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("kill(%d, %v): %v", pid, sig, err)
	}
}

// fault is one way to break the sandbox. inject breaks it and returns what
// to do once the service has recovered (nil: nothing); expect, if set,
// checks what the service did about it.
type fault struct {
	name   string
	env    map[string]string
	memory int64 // the service's cgroup's memory limit; 0: none
	inject func(t *testing.T, s *service) (after func())
	expect func(t *testing.T, s *service, w *watcher)
	// killed is how many executions under load may answer that their
	// process was killed (watcher.check).
	killed int
}

// killForkServer is the fault that SIGKILLs the process pick chooses: the
// fork server's nsjail or the server in it.
func killForkServer(pick func(nsjail, server int) int) func(*testing.T, *service) func() {
	return func(t *testing.T, s *service) func() {
		signal(t, pick(forkServer(t, s)), syscall.SIGKILL)
		return nil
	}
}

// replaced checks the log says the fork server was replaced by one that
// passed its self-test.
func replaced(t *testing.T, s *service, _ *watcher) {
	s.logged(t, "the new one passed its self-test", recoveryBound)
}

var faults = []fault{
	{
		name:   "SIGKILL of a warm process",
		killed: 1, // under load, it may have been given its script already
		inject: func(t *testing.T, s *service) func() {
			// Under load the server's children come and go: one that
			// ended between the listing and the kill is passed over.
			_, server := forkServer(t, s)
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				for _, pid := range leakcheck.Children(server) {
					if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
						return nil
					} else if err != syscall.ESRCH {
						t.Fatalf("kill(%d, SIGKILL): %v", pid, err)
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Fatal("the fork server has no process forked ahead")
			return nil
		},
	},
	{
		name:   "SIGKILL of the fork server",
		inject: killForkServer(func(nsjail, server int) int { return server }),
		expect: replaced,
	},
	{
		name:   "SIGKILL of the fork server's nsjail",
		inject: killForkServer(func(nsjail, server int) int { return nsjail }),
		expect: replaced,
	},
	{
		name: "SIGSTOP of the fork server",
		inject: func(t *testing.T, s *service) func() {
			_, server := forkServer(t, s)
			signal(t, server, syscall.SIGSTOP)
			return func() { _ = syscall.Kill(server, syscall.SIGCONT) }
		},
		expect: func(t *testing.T, s *service, w *watcher) {
			s.logged(t, "the new one passed its self-test", recoveryBound)
			if n := s.sandboxEventsSaying(t, "fork server killed"); n != 1 {
				t.Errorf("%d log entries say the stopped fork server was killed, want 1", n)
			}
			if !w.sawHealth(http.StatusServiceUnavailable) {
				t.Error("/healthz never answered 503 while the stopped fork server was replaced")
			}
		},
	},
	{
		name: "a pool jail that never finishes its imports",
		env:  map[string]string{"PYEXEC_MODE": "pool"},
		inject: func(t *testing.T, s *service) func() {
			// A jail started after this point is still importing when it
			// is stopped: one execution uses a warm jail up, and the pool
			// starts its replacement.
			before := map[int]bool{}
			for _, pid := range leakcheck.Descendants(s.Pid()) {
				before[pid] = true
			}
			go execute(context.Background(), s.URL, okScript)
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				for _, pid := range leakcheck.Descendants(s.Pid()) {
					if !before[pid] && strings.HasPrefix(leakcheck.Name(pid), "python") {
						signal(t, pid, syscall.SIGSTOP)
						return func() { _ = syscall.Kill(pid, syscall.SIGCONT) }
					}
				}
				time.Sleep(2 * time.Millisecond)
			}
			t.Fatal("no new pool jail started")
			return nil
		},
		expect: func(t *testing.T, s *service, w *watcher) {
			s.logged(t, "pool jail", recoveryBound)
		},
	},
	{
		name: "the service's memory nearly full",
		// Two executions of 300 MiB each, under their own 512 MiB limit,
		// fill the service's cgroup: the kernel kills in it, and must pick
		// an execution, never the service.
		memory: 640 << 20,
		inject: func(t *testing.T, s *service) func() {
			for _, pid := range leakcheck.Descendants(s.Pid()) {
				adj, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "oom_score_adj"))
				if strings.TrimSpace(string(adj)) != "1000" {
					t.Errorf("process %s has oom_score_adj %s, want 1000 (killed before the service)", leakcheck.Describe([]int{pid}), adj)
				}
			}
			bomb := "import time\ndef main():\n    block = bytearray(b'x') * (300 << 20)\n    time.sleep(2)\n    return len(block)\n"
			var wg sync.WaitGroup
			answers := make([]answer, 2)
			for i := range answers {
				wg.Add(1)
				go func() { defer wg.Done(); answers[i] = execute(context.Background(), s.URL, bomb) }()
			}
			wg.Wait()
			if !s.cg.filled(t) {
				t.Fatalf("the executions (%+v) did not fill the service's cgroup", answers)
			}
			killed := 0
			for _, a := range answers {
				switch {
				case a.err != nil:
					t.Errorf("an execution the kernel may have killed answered nothing: %v", a.err)
				case a.errorType == "exited" || a.errorType == "sandbox_unavailable" || a.errorType == "memory_limit":
					// exited: killed by a signal; memory_limit: under cgroup
					// v2 the kill counts in the execution's cgroup too.
					killed++
				case !(a.status == http.StatusOK && string(a.result) == strconv.Itoa(300<<20)):
					t.Errorf("an execution answered %d %s %s, want its result, or that it was killed", a.status, a.errorType, a.result)
				}
			}
			if killed == 0 {
				t.Error("both executions succeeded: the kernel killed neither, though their cgroup filled")
			}
			return nil
		},
	},
	{
		name: "the client going away mid-execution",
		inject: func(t *testing.T, s *service) func() {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			if a := execute(ctx, s.URL, "import time\ndef main():\n    time.sleep(8)\n"); a.err == nil {
				t.Fatalf("the execution answered %d before the client went away", a.status)
			}
			return nil
		},
	},
}

// TestFaults tries each fault at idle and under load, waiting for recovery,
// and then with SIGTERM sent straight after it.
func TestFaults(t *testing.T) {
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			for _, load := range []int{0, 4} {
				name := "idle"
				if load > 0 {
					name = "under load"
				}
				t.Run(name, func(t *testing.T) {
					s := startService(t, f.env, f.memory)
					w := watch(s.URL, load)
					at := time.Now()
					after := f.inject(t, s)
					if after != nil {
						t.Cleanup(after) // also when the test fails before its turn
					}
					s.recovered(t, at, w)
					if f.expect != nil {
						f.expect(t, s, w)
					}
					if after != nil {
						after()
					}
					w.stop()
					s.logEvents(t)
					w.check(t, f.killed)
					s.nothingLeft(t)
					if _, err := syscall.Getpgid(s.Pid()); err != nil {
						t.Fatalf("the service died: %v", err)
					}
					s.stopAndCheck(t)
				})
			}
			t.Run("SIGTERM during it", func(t *testing.T) {
				s := startService(t, f.env, f.memory)
				w := watch(s.URL, 4)
				f.inject(t, s)
				s.stopAndCheck(t)
				w.stop()
			})
		})
	}
}
