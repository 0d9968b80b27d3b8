//go:build integration

package jail

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor/internal/cgroups"
)

// Fork mode hands a finished execution's cgroup to a later one: the later
// one must find it as new, with its own limits (not a tighter one an
// earlier request set) and no memory_limit of an earlier execution counted.
func TestForkModeReusesCgroupsAsNew(t *testing.T) {
	e := modeExecutor(t, ModeFork)
	allocate := func(mib int) string {
		return fmt.Sprintf("def main():\n    return len(bytearray(%d << 20)) >> 20\n", mib)
	}
	// An execution's cgroup comes back once its process is reaped, and is
	// fresh once the kernel has let go of what it charged; a pause after
	// each execution lets the next warm process take it.
	settle := func() {
		e.teardowns.Wait()
		time.Sleep(200 * time.Millisecond)
	}
	const rounds = 6
	for i := 0; i < rounds; i++ {
		settle()
		_, err := e.Run(context.Background(), Request{Script: allocate(150), MemoryBytes: 48 << 20})
		if TypeOf(err) != api.ErrorTypeMemoryLimit {
			t.Fatalf("round %d: 150 MiB under a request's 48 MiB limit gave %v, want memory_limit", i, err)
		}
		settle()
		res, err := e.Run(context.Background(), Request{Script: allocate(150)})
		if err != nil || string(res.Value) != "150" {
			t.Fatalf("round %d: 150 MiB under the service's limit, after a tighter request, gave %s, %v; want 150", i, res.Value, err)
		}
		settle()
		res, err = e.Run(context.Background(), Request{Script: "def main():\n    return 1\n"})
		if err != nil || string(res.Value) != "1" {
			t.Fatalf("round %d: a trivial script after a memory_limit gave %s, %v; want 1", i, res.Value, err)
		}
	}
	box := e.box.(*forkSandbox)
	made := box.cgroups.Made()
	if executions := 3*rounds + 2; made >= executions {
		t.Errorf("%d cgroups made for %d executions (the self-test's included): none was reused", made, executions)
	}
	t.Logf("%d cgroups made for %d executions", made, 3*rounds+2)
}

// A cgroup back in the pool is handed out again only as new: the limits
// the taker asks for (not a tighter one of the last execution), and the
// counters HitMemoryLimit reads at zero.
func TestAReusedCgroupHasTheTakersLimits(t *testing.T) {
	e := modeExecutor(t, ModeFork)
	pool := cgroups.NewPool(e.groups, "reuse-test", 4)
	t.Cleanup(func() { _ = pool.Close() })
	const service, procs = 256 << 20, 16
	first, err := pool.Take(service, procs)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.TightenMemoryLimit(48 << 20); err != nil {
		t.Fatal(err)
	}
	limitFile, pidsFile := filepath.Join(first.MemDir(), "memory.max"), filepath.Join(first.MemDir(), "pids.max")
	if e.groups.Kind() == cgroups.V1 {
		limitFile, pidsFile = filepath.Join(first.MemDir(), "memory.limit_in_bytes"), filepath.Join(first.PidsDir(), "pids.max")
	}
	if limit, err := readInt(limitFile); err != nil || limit >= service {
		t.Fatalf("limit after tightening = %d, %v; want below %d", limit, err, service)
	}
	if err := first.Release(true); err != nil {
		t.Fatal(err)
	}
	var again *cgroups.Exec
	deadline := time.Now().Add(10 * time.Second)
	for again == nil && time.Now().Before(deadline) {
		c, err := pool.Take(service, procs)
		if err != nil {
			t.Fatal(err)
		}
		if c.Name() == first.Name() {
			again = c
			break
		}
		_ = c.Remove() // a new one: the first was not fresh yet
		time.Sleep(50 * time.Millisecond)
	}
	if again == nil {
		t.Fatalf("cgroup %s was never handed out again", first.Name())
	}
	t.Cleanup(func() { _ = again.Remove() })
	if limit, err := readInt(limitFile); err != nil || limit != service {
		t.Errorf("reused cgroup's memory limit = %d, %v; want %d", limit, err, service)
	}
	if n, err := readInt(pidsFile); err != nil || n != procs {
		t.Errorf("reused cgroup's pids.max = %d, %v; want %d", n, err, procs)
	}
	if again.HitMemoryLimit() {
		t.Error("a reused cgroup reports its memory limit reached before any execution ran")
	}
}

// A burst leaves no more idle cgroups than the pool keeps: the oldest
// beyond its bound are removed as the later ones come back.
func TestTheCgroupPoolKeepsAtMostItsBound(t *testing.T) {
	e := modeExecutor(t, ModeFork)
	const bound = 2
	pool := cgroups.NewPool(e.groups, "bound-test", bound)
	t.Cleanup(func() { _ = pool.Close() })
	var taken []*cgroups.Exec
	for i := 0; i < 5; i++ {
		c, err := pool.Take(64<<20, 16)
		if err != nil {
			t.Fatal(err)
		}
		taken = append(taken, c)
	}
	for _, c := range taken {
		if err := c.Release(true); err != nil {
			t.Fatalf("release %s: %v", c.Name(), err)
		}
	}
	idle := pool.IdleNames()
	if len(idle) != bound {
		t.Errorf("%d idle cgroups %v after five came back, want %d", len(idle), idle, bound)
	}
	for _, c := range taken {
		_, err := os.Stat(c.MemDir())
		if exists := err == nil; exists != idle[c.Name()] {
			t.Errorf("cgroup %s: directory exists %v, idle in the pool %v; want both or neither", c.Name(), exists, idle[c.Name()])
		}
	}
}

// readInt reads a cgroup control file holding one integer, as package
// cgroups reads its own.
func readInt(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
}
