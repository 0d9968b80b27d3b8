//go:build integration

package jail

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/api"
)

// A session's process in a real fork-mode jail: cells share one namespace,
// an exception keeps the session, a timeout or the memory limit ends it, and
// nothing of it is left after.

func startTestSession(t *testing.T, memBytes int64) (*forkSandbox, *sessionProc) {
	t.Helper()
	e := modeExecutor(t, ModeFork)
	f, ok := e.box.(*forkSandbox)
	if !ok {
		t.Fatalf("the fork mode executor's sandbox is a %T", e.box)
	}
	s, err := f.startSession(memBytes)
	if err != nil {
		t.Fatalf("startSession: %v", err)
	}
	return f, s
}

func cellJob(t *testing.T, code string) []byte {
	t.Helper()
	b, err := json.Marshal(job{Script: code})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func runTestCell(t *testing.T, f *forkSandbox, s *sessionProc, code string, timeout time.Duration) (cellRun, report) {
	t.Helper()
	run, err := s.runCell(context.Background(), cellJob(t, code), timeout, f.cfg)
	if err != nil {
		t.Fatalf("runCell(%q): %v", code, err)
	}
	if run.Ended {
		return run, report{}
	}
	rep, err := parseReport(run.Report, f.cfg)
	if err != nil {
		t.Fatalf("cell %q: %v: %s", code, err, run.Report)
	}
	return run, rep
}

func TestSessionCellsShareStateInARealJail(t *testing.T) {
	f, s := startTestSession(t, serviceMemory(t))
	defer s.end()
	cells := []struct{ code, result, stdout string }{
		{"import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})\nprint('loaded')", "null", "loaded\n"},
		{"with open('data.txt', 'w') as out:\n    out.write('kept')\nint(df['a'].sum())", "6", ""},
		{"open('data.txt').read()", `"kept"`, ""},
		{"import os\nos.getpid()", "1", ""},
	}
	for _, c := range cells {
		run, rep := runTestCell(t, f, s, c.code, 20*time.Second)
		if !rep.OK || string(rep.Result) != c.result || string(run.Stdout) != c.stdout {
			t.Fatalf("cell %q = %+v, stdout %q; want result %s, stdout %q", c.code, rep, run.Stdout, c.result, c.stdout)
		}
	}
	_, rep := runTestCell(t, f, s, "df", 20*time.Second)
	if !rep.OK || !strings.Contains(string(rep.Result), "a") {
		t.Fatalf("a DataFrame as the last expression = %+v, want its text form", rep)
	}
	_, rep = runTestCell(t, f, s, "1 / 0", 20*time.Second)
	if rep.OK || rep.ErrorType != api.ErrorTypeException || !strings.Contains(rep.Traceback, "ZeroDivisionError") {
		t.Fatalf("a raising cell = %+v, want an exception with its traceback", rep)
	}
	_, rep = runTestCell(t, f, s, "len(df)", 20*time.Second)
	if !rep.OK || string(rep.Result) != "3" {
		t.Fatalf("after an exception = %+v, want the session's state", rep)
	}
}

func TestASessionCellsTimeoutEndsTheSession(t *testing.T) {
	f, s := startTestSession(t, serviceMemory(t))
	runTestCell(t, f, s, "x = 1", 20*time.Second)
	run, _ := runTestCell(t, f, s, "while True: pass", 500*time.Millisecond)
	if !run.Ended || !run.TimedOut {
		t.Fatalf("a cell past its timeout = %+v, want the session ended by the timeout", run)
	}
	if run, err := s.runCell(context.Background(), cellJob(t, "x"), time.Second, f.cfg); err != nil || !run.Ended {
		t.Fatalf("a cell after the end = %+v, %v; want the session's end", run, err)
	}
	dir := s.cg.MemDir()
	if err := s.end(); err != nil {
		t.Fatalf("end: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the session's cgroup %s is left after its end: %v", dir, err)
	}
}

func TestAMemoryBombOverSeveralCellsEndsTheSessionAtItsLimit(t *testing.T) {
	f, s := startTestSession(t, 200<<20)
	defer s.end()
	for i := 0; i < 8; i++ {
		run, rep := runTestCell(t, f, s, "import numpy as np\nblocks = globals().setdefault('blocks', [])\nblocks.append(np.ones(40 << 20, dtype=np.uint8))\nlen(blocks)", 20*time.Second)
		if run.Ended {
			if !run.MemoryLimitHit || i < 2 {
				t.Fatalf("cell %d ended the session: %+v, want the memory limit after a few cells", i, run)
			}
			return
		}
		if !rep.OK {
			t.Fatalf("cell %d = %+v, want the blocks held or the session killed at its limit", i, rep)
		}
	}
	t.Fatal("320 MiB held over 8 cells under a 200 MiB session limit")
}

// serviceMemory is the service's memory limit, a session's default.
func serviceMemory(t *testing.T) int64 { return realConfig(t).MemoryBytes }

func TestASessionThroughTheExecutorsAPI(t *testing.T) {
	e := modeExecutor(t, ModeFork)
	s, err := e.StartSession(context.Background(), SessionRequest{})
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	ctx := context.Background()
	if _, err := s.Run(ctx, Cell{Code: "import pandas as pd\ndf = pd.DataFrame({'n': [1, 2]})"}); err != nil {
		t.Fatalf("first cell: %v", err)
	}
	res, err := s.Run(ctx, Cell{Code: "df"})
	if err != nil || !res.Text || !strings.Contains(string(res.Value), `"   n\n0  1\n1  2"`) {
		t.Fatalf("a DataFrame cell = %+v, %v; want its text form, marked", res, err)
	}
	res, err = s.Run(ctx, Cell{Code: "x = df['n'].sum()\nprint('sum')\nint(x) + 1"})
	if err != nil || res.Text || string(res.Value) != "4" || res.Stdout != "sum" {
		t.Fatalf("x + 1 = %+v, %v; want 4 as JSON", res, err)
	}
	_, err = s.Run(ctx, Cell{Code: "import time\ntime.sleep(30)", Timeout: 300 * time.Millisecond})
	var ee *Error
	if !errors.As(err, &ee) || ee.Type != api.ErrorTypeTimeout || !strings.Contains(ee.Message, "the session has ended") {
		t.Fatalf("a cell past its timeout = %v, want a timeout that ends the session", err)
	}
	if _, err := s.Run(ctx, Cell{Code: "x"}); !errors.Is(err, errSessionEnded) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("a cell after the timeout = %v, want the session ended, saying why", err)
	}
	dir := s.proc.cg.MemDir()
	if err := s.End(); err != nil {
		t.Fatalf("End: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the session's cgroup %s is left after End: %v", dir, err)
	}
}

func TestPoolModeRefusesSessions(t *testing.T) {
	e := modeExecutor(t, ModePool)
	if _, err := e.StartSession(context.Background(), SessionRequest{}); !errors.Is(err, ErrSessionsUnsupported) {
		t.Fatalf("StartSession in pool mode = %v, want ErrSessionsUnsupported", err)
	}
}

func TestTwoSessionsCannotSeeEachOther(t *testing.T) {
	e := modeExecutor(t, ModeFork)
	ctx := context.Background()
	start := func() *Session {
		s, err := e.StartSession(context.Background(), SessionRequest{})
		if err != nil {
			t.Fatalf("StartSession: %v", err)
		}
		t.Cleanup(func() { _ = s.End() })
		return s
	}
	a, b := start(), start()
	setup := "import os, socket, subprocess, sys\n" +
		"secret = 'a-secret'\n" +
		"open('/tmp/mine.txt', 'w').write(secret)\n" +
		"listener = socket.socket(socket.AF_UNIX)\n" +
		"listener.bind('\\0pyexec-session-a')\n" +
		"listener.listen()\n" +
		"sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n" +
		"sorted(int(p) for p in os.listdir('/proc') if p.isdigit())"
	res, err := a.Run(ctx, Cell{Code: setup})
	if err != nil || string(res.Value) != "[1,2]" {
		t.Fatalf("session a's setup = %+v, %v; want its own two processes", res, err)
	}
	probe := "import os, socket\n" +
		"seen = {'file': os.path.exists('/tmp/mine.txt'), 'secret': 'secret' in globals(),\n" +
		"        'pids': sorted(int(p) for p in os.listdir('/proc') if p.isdigit())}\n" +
		"try:\n" +
		"    socket.socket(socket.AF_UNIX).connect('\\0pyexec-session-a')\n" +
		"    seen['socket'] = 'connected'\n" +
		"except OSError as exc:\n" +
		"    seen['socket'] = type(exc).__name__\n" +
		"seen"
	res, err = b.Run(ctx, Cell{Code: probe})
	if err != nil {
		t.Fatalf("session b's probe: %v", err)
	}
	var seen struct {
		File, Secret bool
		Pids         []int
		Socket       string
	}
	if err := json.Unmarshal(res.Value, &seen); err != nil {
		t.Fatal(err)
	}
	if seen.File || seen.Secret || len(seen.Pids) != 1 || seen.Pids[0] != 1 || seen.Socket != "ConnectionRefusedError" {
		t.Fatalf("session b sees %+v of session a; want nothing: no file, no variable, only its own pid 1, no socket", seen)
	}
	// And a still has all of it.
	res, err = a.Run(ctx, Cell{Code: "open('/tmp/mine.txt').read() == secret and sleeper.poll() is None"})
	if err != nil || string(res.Value) != "true" {
		t.Fatalf("session a after b's probe = %+v, %v; want its file and process", res, err)
	}
}

func TestCPUTimeOfManyCellsDoesNotAddUpToAKill(t *testing.T) {
	cfg := realConfig(t)
	cfg.Mode = ModeFork
	cfg.Concurrency = 1
	// A script's CPU rlimit is then 13 seconds (cpuSeconds), which the
	// cells below pass together; each has room to spend its second on a
	// loaded machine.
	cfg.Timeout = 4 * time.Second
	e := startExecutor(t, cfg)
	s, err := e.StartSession(context.Background(), SessionRequest{})
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	defer s.End()
	burn := "import time\nstart = time.process_time()\nwhile time.process_time() - start < 1.0: pass\ncells = globals().get('cells', 0) + 1\ncells"
	for i := 1; i <= cpuSeconds(cfg.Timeout)+1; i++ {
		res, err := s.Run(context.Background(), Cell{Code: burn})
		if err != nil || string(res.Value) != strconv.Itoa(i) {
			t.Fatalf("cell %d, with %d CPU-seconds spent before it = %+v, %v; want it to run", i, i-1, res, err)
		}
	}
}

// sessionCPUTicks is the CPU time, in clock ticks, that the session's
// processes have used, all their threads included.
func sessionCPUTicks(t *testing.T, s *Session) int64 {
	t.Helper()
	procs := filepath.Join(s.proc.cg.PidsDir(), "cgroup.procs")
	if _, err := os.Stat(procs); err != nil {
		procs = filepath.Join(s.proc.cg.MemDir(), "run", "cgroup.procs") // cgroup v2's leaf
	}
	data, err := os.ReadFile(procs)
	if err != nil {
		t.Fatalf("reading the session's processes: %v", err)
	}
	var ticks int64
	for _, pid := range strings.Fields(string(data)) {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue
		}
		// The fields after the command's closing parenthesis; utime and
		// stime are the 14th and 15th of the line.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		for _, f := range fields[11:13] {
			n, _ := strconv.ParseInt(f, 10, 64)
			ticks += n
		}
	}
	return ticks
}

func TestAnIdleSessionIsFrozenWithTheThreadItLeft(t *testing.T) {
	e := modeExecutor(t, ModeFork)
	ctx := context.Background()
	s, err := e.StartSession(ctx, SessionRequest{})
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	defer s.End()
	spin := "import threading\n" +
		"spins = [0]\n" +
		"def spin():\n" +
		"    while True:\n" +
		"        spins[0] += 1\n" +
		"threading.Thread(target=spin, daemon=True).start()"
	if _, err := s.Run(ctx, Cell{Code: spin}); err != nil {
		t.Fatalf("the cell that leaves a busy thread: %v", err)
	}
	before := sessionCPUTicks(t, s)
	time.Sleep(time.Second)
	if used := sessionCPUTicks(t, s) - before; used > 2 {
		t.Fatalf("an idle session with a busy thread used %d ticks of CPU in a second, want none: it is not frozen", used)
	}
	// The thread resumes with the next cell: it spins while the cell sleeps.
	res, err := s.Run(ctx, Cell{Code: "import time\nn = spins[0]\ntime.sleep(0.3)\nspins[0] > n"})
	if err != nil || string(res.Value) != "true" {
		t.Fatalf("the thread during the next cell = %+v, %v; want it spinning again", res, err)
	}
	dirs := []string{s.proc.cg.MemDir(), s.proc.cg.PidsDir()}
	if err := s.End(); err != nil {
		t.Fatalf("End: %v", err)
	}
	for _, dir := range dirs {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("the session's cgroup %s is left after End: %v", dir, err)
		}
	}
}
