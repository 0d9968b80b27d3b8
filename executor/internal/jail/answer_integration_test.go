//go:build integration

package jail

import (
	"context"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/leakcheck"
)

// lingerScript starts a process that holds none of the execution's
// channels and would sleep on for a minute, and returns once it runs: its
// report is whole while a process of it still lives.
const lingerScript = `
import ctypes, os, time

def main():
    r, w = os.pipe()
    if os.fork() == 0:
        ctypes.CDLL(None).prctl(15, b"pyexec-linger", 0, 0, 0)  # PR_SET_NAME
        os.write(w, b"x")
        os.closerange(0, 1024)
        time.sleep(60)
        os._exit(0)
    os.close(w)
    return len(os.read(r, 1))
`

// lingering lists the processes named by lingerScript, anywhere on the host.
func lingering() []int { return leakcheck.DescendantsNamed(1, "pyexec-linger") }

// An execution may be answered as soon as its report is whole, before its
// processes have ended: then nothing of it may outlive the answer's
// aftermath, and its slot stays taken while any of it still runs.
func TestAnAnsweredExecutionLeavesNoProcessAndHoldsItsSlotUntilNone(t *testing.T) {
	if left := lingering(); len(left) > 0 {
		t.Fatalf("processes named pyexec-linger run before the test: %v", left)
	}
	for _, mode := range allModes {
		t.Run(string(mode), func(t *testing.T) {
			e := modeExecutor(t, mode)
			for i := 0; i < 3; i++ {
				start := time.Now()
				res, err := e.Run(context.Background(), Request{Script: lingerScript})
				alive, free := lingering(), len(e.slots)
				if err != nil || string(res.Value) != "1" {
					t.Fatalf("Run = %s, %v; want 1", res.Value, err)
				}
				if took := time.Since(start); took > 15*time.Second {
					t.Errorf("the answer took %v: it waited for the lingering process", took)
				}
				if len(alive) > 0 && free == e.cfg.Concurrency {
					t.Errorf("every slot was free while the execution's process %v still ran", alive)
				}
				e.teardowns.Wait()
				if left := lingering(); len(left) > 0 {
					t.Fatalf("after the execution was torn down, its process %v still runs", left)
				}
				if free := len(e.slots); free != e.cfg.Concurrency {
					t.Errorf("%d of %d slots free after the teardown, want all", free, e.cfg.Concurrency)
				}
			}
		})
	}
}
