//go:build integration

package adversarial

import (
	"encoding/json"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/leakcheck"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// Resources: fork, thread and memory bombs, memory spread over many
// processes, CPU spin, sleep and a jail that ignores SIGTERM all end as the
// script's own failure within the limits, and leave nothing behind. The
// cases run one at a time, so the host-side process count is theirs alone.
func TestAdversarialResources(t *testing.T) {
	const (
		timeout  = 4
		memoryMB = 192
		procs    = 24
	)
	ts := testsupport.StartService(t, map[string]string{
		"PYEXEC_TIMEOUT_SECONDS": "4",
		"PYEXEC_MEMORY_MB":       "192",
		"PYEXEC_MAX_PROCS":       "24",
	})

	const resourceName = "pyexec-resource"
	// watch samples the service's descendant processes while fn runs and
	// returns the most seen at once.
	watch := func(fn func()) int {
		var peak atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if n := int64(len(leakcheck.Descendants(os.Getpid()))); n > peak.Load() {
					peak.Store(n)
				}
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		fn()
		close(stop)
		wg.Wait()
		return int(peak.Load())
	}

	tests := []struct {
		name   string
		script string
		// want lists the acceptable error types; "" means success.
		want []string
		// check inspects the result of a successful run.
		check func(t *testing.T, r testsupport.Response)
	}{
		{
			name: "a fork bomb is capped at the process limit",
			script: `import os, time
def main():
    n = 0
    while True:
        try:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            n += 1
        except OSError:
            time.sleep(0.01)
`,
			want: []string{"timeout"},
		},
		{
			name: "a thread bomb fails to start threads past the limit",
			script: `import threading, time
def main():
    threads = []
    try:
        while len(threads) < 10000:
            t = threading.Thread(target=time.sleep, args=(30,), daemon=True)
            t.start()
            threads.append(t)
    except RuntimeError:
        pass
    return len(threads)
`,
			want: []string{""},
			check: func(t *testing.T, r testsupport.Response) {
				var n int
				if json.Unmarshal(r.Result, &n) != nil || n <= 0 || n >= procs {
					t.Errorf("started %s threads, want between 1 and %d", r.Result, procs-1)
				}
			},
		},
		{
			name: "a memory bomb is a memory_limit",
			script: `def main():
    blocks = []
    while True:
        blocks.append(bytearray(16 << 20))
`,
			want: []string{"memory_limit"},
		},
		{
			// Each child holds 48 MiB; together they would pass the 192 MiB
			// of the whole execution. The cgroup counts them together, so
			// some are killed (the survivors hold less than the limit), or
			// the whole execution is a memory_limit.
			name: "memory spread across processes is limited together",
			script: `import os, time
def main():
    r, w = os.pipe()
    children = []
    for i in range(8):
        pid = os.fork()
        if pid == 0:
            block = bytearray(48 << 20)
            for j in range(0, len(block), 4096):
                block[j] = 1
            os.write(w, b"x")
            time.sleep(30)
            os._exit(0)
        children.append(pid)
    os.close(w)
    held = 0
    deadline = time.time() + 2.5
    os.set_blocking(r, False)
    while time.time() < deadline:
        try:
            chunk = os.read(r, 64)
        except BlockingIOError:
            time.sleep(0.05)
            continue
        if not chunk:
            break
        held += len(chunk)
    # A child the OOM killer took had reported too; only those that
    # reported and are still alive hold their memory at the same time.
    alive = sum(1 for pid in children if os.waitpid(pid, os.WNOHANG) == (0, 0))
    for pid in children:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    return {"reported": held, "alive": alive, "held_mb": min(held, alive) * 48}
`,
			want: []string{"", "memory_limit"},
			check: func(t *testing.T, r testsupport.Response) {
				var got struct {
					Reported int `json:"reported"`
					Alive    int `json:"alive"`
					HeldMB   int `json:"held_mb"`
				}
				if json.Unmarshal(r.Result, &got) != nil || got.Reported == 0 || got.HeldMB >= memoryMB {
					t.Errorf("children reported %s, want fewer than %d MiB held at once", r.Result, memoryMB)
				}
				if testing.Verbose() {
					t.Logf("memory spread: %s", r.Result)
				}
			},
		},
		{
			name:   "a CPU spin is a timeout",
			script: "def main():\n    while True:\n        pass\n",
			want:   []string{"timeout"},
		},
		{
			name:   "a long sleep is a timeout",
			script: "import time\ndef main():\n    time.sleep(3600)\n",
			want:   []string{"timeout"},
		},
		{
			name: "a jail that ignores SIGTERM is killed at the timeout",
			script: `import os, signal, time
def main():
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    if os.fork() == 0:
        os.setsid()
        while True:
            time.sleep(1)
    while True:
        time.sleep(1)
`,
			want: []string{"timeout"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idle := idleProcesses(t)
			var r testsupport.Response
			start := time.Now()
			peak := watch(func() { r = execute(t, ts, testsupport.NameProcess(resourceName)+tt.script) })
			elapsed := time.Since(start)
			ok := false
			for _, w := range tt.want {
				if (w == "" && r.Status == http.StatusOK) || (w != "" && r.Status == http.StatusBadRequest && r.ErrorType == w) {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("answered %d %s, want one of %q", r.Status, testsupport.Clip(r.Raw), tt.want)
			}
			if r.Status == http.StatusOK && tt.check != nil {
				tt.check(t, r)
			}
			// Generous: the timeout plus a loaded machine's slack.
			if limit := time.Duration(timeout+15) * time.Second; elapsed > limit {
				t.Errorf("took %v, want the timeout to end it within %v", elapsed, limit)
			}
			// The execution's processes above the idle service's, plus a
			// sandbox process and a moment of slack while the tree dies.
			if peak-idle > procs+2 {
				t.Errorf("the service had %d descendant processes at once, %d when idle: want at most %d more", peak, idle, procs+2)
			}
			assertBackToIdle(t, ts, idle, resourceName)
		})
	}
}
