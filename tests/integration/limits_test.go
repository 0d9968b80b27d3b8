//go:build integration

package integration

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/leakcheck"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// Every limit of docs/operations.md's "Configuration" holds, the script's output up
// to it is kept, and the service answers the next request as if nothing had
// happened.

// limitsService runs with a 2-second wall-time limit, so that timeouts cost
// little.
func limitsService(t *testing.T) *testsupport.Service {
	t.Helper()
	return testsupport.StartService(t, map[string]string{"PYEXEC_TIMEOUT_SECONDS": "2", "PYEXEC_QUEUE": "64"})
}

// checkRecovered fails t unless the service answers an ordinary script
// correctly and the jail of the previous one is gone.
func checkRecovered(t *testing.T, ts *testsupport.Service) {
	t.Helper()
	checkOK(t, "the next ordinary script", ts.Execute(t, "def main():\n    print('fine')\n    return {'ok': True}\n"), `{"ok":true}`, "fine")
}

// limitRow is a script that a limit ends, with what the answer must be.
type limitRow struct {
	name       string
	script     string
	want       failure
	wantStdout string
}

func TestLimitsEndScriptsAndKeepTheirOutput(t *testing.T) {
	const timedOut = "Execution timed out after 2 seconds"
	runLimitRows(t, limitsService(t), []limitRow{
		{
			name:       "a busy loop times out with its earlier stdout",
			script:     "def main():\n    print('started')\n    print('looping')\n    while True:\n        pass\n",
			want:       failure{400, "timeout", timedOut},
			wantStdout: "started\nlooping",
		},
		{
			name:   "time.sleep(60) times out",
			script: "import time\n\ndef main():\n    time.sleep(60)\n",
			want:   failure{400, "timeout", timedOut},
		},
		{
			name:       "a module-level loop times out",
			script:     "print('top')\nwhile True:\n    pass\n\ndef main():\n    return 1\n",
			want:       failure{400, "timeout", timedOut},
			wantStdout: "top",
		},
		{
			name:   "a child that ignores SIGTERM is killed with the script at the timeout",
			script: "import os, signal, time\n\ndef main():\n    if os.fork() == 0:\n        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n        time.sleep(60)\n        os._exit(0)\n    os.wait()\n",
			want:   failure{400, "timeout", timedOut},
		},
		{
			name:   "a stdout flood hits the output limit",
			script: "import os\n\ndef main():\n    print('flood')\n    while True:\n        os.write(1, b'z' * 65536)\n",
			want:   failure{400, "output_limit", "Output limit exceeded (1 MB)"},
		},
	})
}

// TestMemoryLimitsEndScriptsAndKeepTheirOutput runs where only the memory
// limit can end the scripts (the default 30-second wall clock): faulting in
// 512 MB can take longer than 2 seconds on a loaded machine, and what these
// rows check is the memory limit, not the clock.
func TestMemoryLimitsEndScriptsAndKeepTheirOutput(t *testing.T) {
	runLimitRows(t, testsupport.StartService(t, map[string]string{"PYEXEC_QUEUE": "64"}), []limitRow{
		{
			name:       "a 4 GiB allocation hits the memory limit",
			script:     "def main():\n    print('big')\n    return len(b'x' * (4 << 30))\n",
			want:       failure{400, "memory_limit", "Memory limit exceeded (512 MB)"},
			wantStdout: "big",
		},
		{
			name:       "memory grown step by step hits the memory limit",
			script:     "def main():\n    print('growing')\n    keep = []\n    while True:\n        keep.append(bytearray(16 << 20))\n",
			want:       failure{400, "memory_limit", "Memory limit exceeded (512 MB)"},
			wantStdout: "growing",
		},
	})
}

// runLimitRows runs every row through every entry point, in parallel, then
// checks that the service still answers an ordinary script.
func runLimitRows(t *testing.T, ts *testsupport.Service, tests []limitRow) {
	t.Helper()
	// Each entry point's group returns once its parallel subtests are done,
	// so that the two do not queue for each other's slots.
	for _, via := range entryPoints {
		t.Run(via.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					start := time.Now()
					r := via.run(ts, t, tt.script)
					checkFailure(t, tt.name, r, tt.want)
					if tt.wantStdout != "" {
						if got := deref(r.Stdout); got != tt.wantStdout {
							t.Errorf("%s %s: stdout = %q, want %q", r.Request, tt.name, got, tt.wantStdout)
						}
					}
					// Generous: a 2-second limit must not become a minute.
					if d := time.Since(start); d > 30*time.Second {
						t.Errorf("%s %s took %v, want the limit to end it promptly", r.Request, tt.name, d)
					}
				})
			}
		})
	}
	checkRecovered(t, ts)
}

func TestAForkBombIsContained(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_TIMEOUT_SECONDS": "5", "PYEXEC_MAX_PROCS": "32"})
	r := ts.Execute(t, testsupport.NameProcess("pyexec-bomb")+`import os

def main():
    print('forking')
    while True:
        try:
            os.fork()
        except OSError:
            pass
`)
	// However the bomb ends (the time limit, or the harness hitting the
	// process cap), it is a failure of the script, not of the service.
	if r.Status != 400 || r.ErrorType == "internal" || !strings.HasPrefix(deref(r.Stdout), "forking") {
		t.Errorf("POST /execute a fork bomb = %d %s, want a 400 script failure with its stdout", r.Status, testsupport.Clip(r.Raw))
	}
	t.Logf("a fork bomb answered %d %s: %s", r.Status, r.ErrorType, r.Error)
	testsupport.PollUntil(t, 30*time.Second, "the fork bomb's processes to be gone", func() bool {
		return len(leakcheck.DescendantsNamed(os.Getpid(), "pyexec-bomb")) == 0
	})
	checkRecovered(t, ts)

	// The cap itself: the 33rd process of an execution cannot start.
	r = ts.Execute(t, `import os, time

def main():
    children = []
    try:
        for _ in range(100):
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
    except OSError as e:
        return len(children)
    finally:
        for pid in children:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    return len(children)
`)
	if r.Status != 200 {
		t.Fatalf("POST /execute forking up to the cap = %d %s, want 200", r.Status, testsupport.Clip(r.Raw))
	}
	if n, err := strconv.Atoi(string(r.Result)); err != nil || n >= 32 || n < 16 {
		t.Errorf("forked %s children under PYEXEC_MAX_PROCS=32, want fewer than 32 (and most of them)", r.Result)
	}
}

func TestAnOrphanHoldingStdoutDoesNotDelayTheAnswer(t *testing.T) {
	ts := testsupport.StartService(t, nil)
	start := time.Now()
	r := ts.Execute(t, `import ctypes, os, time

def main():
    print('parent')
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            # The grandchild keeps stdout and the report channel open.
            ctypes.CDLL(None).prctl(15, b'pyexec-orphan', 0, 0, 0)
            print('grandchild', flush=True)
            time.sleep(30)
            os._exit(0)
        os._exit(0)
    os.wait()
    time.sleep(0.2)
    return 'returned'
`)
	elapsed := time.Since(start)
	if r.Status != 200 || string(r.Result) != `"returned"` || !strings.HasPrefix(deref(r.Stdout), "parent") {
		t.Errorf("POST /execute with an orphan = %d %s, want 200 returned", r.Status, testsupport.Clip(r.Raw))
	}
	// The grandchild sleeps for 30 s; an answer that waited for it would
	// take at least that long.
	if elapsed > 20*time.Second {
		t.Errorf("the answer took %v: it waited for the orphaned grandchild", elapsed)
	}
	testsupport.PollUntil(t, 15*time.Second, "the orphan to be killed with its jail", func() bool {
		return len(leakcheck.DescendantsNamed(os.Getpid(), "pyexec-orphan")) == 0
	})
}
