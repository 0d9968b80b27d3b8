//go:build integration

package adversarial

import (
	"net/http"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// Orphans and daemons: whatever a script leaves running when main()
// returns is gone with the execution. The answer is not held up by it, the
// host has no process or cgroup of it left, and the next execution sees
// nothing of it. The cases run one at a time so the host-side check is
// theirs alone.
func TestAdversarialOrphans(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_TIMEOUT_SECONDS": "10"})
	const orphanName = "pyexec-orphan"
	tests := []struct {
		name, script string
	}{
		{"a double-forked daemon", `import os, time
def main():
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            while True:
                with open("/tmp/daemon-was-here", "a") as f:
                    f.write("x")
                print("daemon still running", flush=True)
                time.sleep(0.1)
        os._exit(0)
    return "spawned"
`},
		{"a daemon that ignores every catchable signal", `import os, signal, time
def main():
    if os.fork() == 0:
        os.setsid()
        for s in range(1, 32):
            try:
                signal.signal(s, signal.SIG_IGN)
            except (OSError, ValueError):
                pass
        while True:
            time.sleep(0.1)
    return "spawned"
`},
		{"a subprocess holding stdout open", `import subprocess, sys
def main():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    return "spawned"
`},
		{"a thread left spinning", `import threading
def spin():
    while True:
        pass
def main():
    threading.Thread(target=spin).start()
    return "spawned"
`},
		{"a multiprocessing worker left behind", `import multiprocessing, time
def work():
    time.sleep(600)
def main():
    p = multiprocessing.Process(target=work)
    p.start()
    return "spawned"
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idle := idleProcesses(t)
			start := time.Now()
			r := execute(t, ts, testsupport.NameProcess(orphanName)+tt.script)
			if r.Status != http.StatusOK || string(r.Result) != `"spawned"` {
				t.Fatalf("answered %d %s, want 200 spawned", r.Status, testsupport.Clip(r.Raw))
			}
			// main() returned at once; the answer must not wait for what
			// it left (generous for a loaded machine, far below the 10 s
			// timeout the leftovers would otherwise run into).
			if d := time.Since(start); d > 8*time.Second {
				t.Errorf("the answer took %v: it waited for the leftovers", d)
			}
			// Host side: no process of it (by name, and by count against
			// the idle service), no cgroup.
			assertBackToIdle(t, ts, idle, orphanName)
			// Next execution: alone in its pid namespace, empty /tmp.
			var next struct {
				Procs []string `json:"procs"`
				Tmp   []string `json:"tmp"`
			}
			runProbe(t, ts, `
def main():
    return {"procs": sorted(p for p in os.listdir("/proc") if p.isdigit()), "tmp": os.listdir("/tmp")}
`, &next)
			if len(next.Procs) != 1 || next.Procs[0] != "1" || len(next.Tmp) != 0 {
				t.Errorf("the next execution sees processes %v and /tmp %v, want only itself and nothing", next.Procs, next.Tmp)
			}
		})
	}
}
