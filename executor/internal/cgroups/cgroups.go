// Package cgroups limits the memory and the processes of each execution:
// it finds a cgroup hierarchy this process may create cgroups in (v1, else
// v2, else none, where the rlimits the jail sets are the only limits),
// creates one cgroup per execution under a parent of its own, keeps fork
// mode's finished cgroups for reuse (Pool), and removes what earlier
// executors left.
package cgroups

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Limiter names how memory and process counts are enforced.
type Limiter string

// The limiters: a cgroup version, or rlimits alone where no hierarchy lets
// this process create cgroups with memory and pids limits.
const (
	V1     Limiter = "cgroup v1"
	V2     Limiter = "cgroup v2"
	Rlimit Limiter = "rlimit"
)

// Hierarchy creates one cgroup per execution, under a parent owned by this
// process. The per-execution cgroup holds the limit and outlives the
// NSJAIL.<pid> cgroup nsjail creates inside it, so its counters can still be
// read after the jail is gone to tell an out-of-memory kill from other deaths.
type Hierarchy struct {
	kind Limiter
	// v1: the memory and pids hierarchies' mount points and our parent's path
	// relative to them. v2: mount is the unified mount, parent the same.
	memMount, pidsMount string
	parent              string // relative path, e.g. "pyexec" or "<own cgroup>/pyexec"
	// swapAccounted tells whether v1's memory cgroups account swap
	// (memory.memsw.*), so that a memory limit can cover it.
	swapAccounted bool
	// freezerMount is v1's freezer hierarchy, where sessions are frozen
	// between cells; "" where it is not mounted.
	freezerMount string
}

// Kind returns how this hierarchy limits memory and process counts.
func (c Hierarchy) Kind() Limiter { return c.kind }

// MemMount returns the memory hierarchy's mount point (v1), or the unified
// mount (v2).
func (c Hierarchy) MemMount() string { return c.memMount }

// PidsMount returns the pids hierarchy's mount point (v1), or the unified
// mount (v2).
func (c Hierarchy) PidsMount() string { return c.pidsMount }

// Detect finds a hierarchy where this process may create cgroups with
// memory and pids limits: v1 first (where those controllers are bound to v1,
// v2 cannot use them), then v2. It returns kind Rlimit when neither works.
func Detect(root string) Hierarchy {
	if cg, err := setupV1(root); err == nil {
		return cg
	}
	if cg, err := setupV2(root); err == nil {
		return cg
	}
	return Hierarchy{kind: Rlimit}
}

// ownCgroup returns this process's cgroup path for a v1 controller, or the
// v2 path when controller is "".
func ownCgroup(controller string) string {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if controller == "" && parts[0] == "0" && parts[1] == "" {
			return parts[2]
		}
		if controller != "" && hasWords(strings.ReplaceAll(parts[1], ",", " "), controller) {
			return parts[2]
		}
	}
	return ""
}

func hasWords(list string, words ...string) bool {
	have := map[string]bool{}
	for _, w := range strings.Fields(list) {
		have[w] = true
	}
	for _, w := range words {
		if !have[w] {
			return false
		}
	}
	return true
}

func removeCgroupTree(dir string) error {
	var last error
	// Up to about a second: the last task of a killed jail can take a while
	// to leave, and a fork mode process stays a zombie until it is reaped.
	for attempt := 0; attempt < 500; attempt++ {
		entries, _ := os.ReadDir(dir)
		for _, entry := range entries {
			if entry.IsDir() {
				_ = removeCgroupTree(filepath.Join(dir, entry.Name()))
			}
		}
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		last = err
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("removing cgroup %s: %w", dir, last)
}

// instanceCount numbers the executors of this process.
var instanceCount atomic.Int64

// instanceName names one executor's cgroup parent: "<pid>-<n>". Each
// executor has a parent of its own, so one executor's sweep or shutdown never
// touches another's cgroups, even in the same process.
func instanceName() string {
	return fmt.Sprintf("%d-%d", os.Getpid(), instanceCount.Add(1))
}

// Sweep removes what earlier executors left: the cgroups of service
// processes that no longer exist (a crash, or a kill the kernel was slow to
// finish), and any execution cgroup under this executor's own parent.
func (c Hierarchy) Sweep() {
	if c.kind == Rlimit {
		return
	}
	for _, m := range c.mounts() {
		own := filepath.Join(m, c.parent)
		entries, _ := os.ReadDir(own)
		for _, e := range entries {
			if e.IsDir() {
				_ = removeCgroupTree(filepath.Join(own, e.Name()))
			}
		}
		instances, _ := os.ReadDir(filepath.Dir(own))
		for _, s := range instances {
			pid, err := strconv.Atoi(strings.SplitN(s.Name(), "-", 2)[0])
			if err != nil || !s.IsDir() || pid == os.Getpid() {
				continue
			}
			if syscall.Kill(pid, 0) == syscall.ESRCH {
				_ = removeCgroupTree(filepath.Join(filepath.Dir(own), s.Name()))
			}
		}
	}
}

// Release removes this executor's parent cgroups and everything in them.
func (c Hierarchy) Release() error {
	if c.kind == Rlimit {
		return nil
	}
	var errs []error
	for _, m := range c.mounts() {
		if err := removeCgroupTree(filepath.Join(m, c.parent)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c Hierarchy) mounts() []string {
	if c.kind == V1 && c.freezerMount != "" {
		return []string{c.memMount, c.pidsMount, c.freezerMount}
	}
	if c.kind == V1 {
		return []string{c.memMount, c.pidsMount}
	}
	return []string{c.memMount}
}

// Leftovers lists this service's execution cgroups that still exist.
func (c Hierarchy) Leftovers() []string {
	if c.kind == Rlimit {
		return nil
	}
	var found []string
	for _, m := range c.mounts() {
		entries, _ := os.ReadDir(filepath.Join(m, c.parent))
		for _, e := range entries {
			if e.IsDir() {
				found = append(found, filepath.Join(m, c.parent, e.Name()))
			}
		}
	}
	return found
}

// Parents lists this executor's parent cgroups that exist.
func (c Hierarchy) Parents() []string {
	if c.kind == Rlimit {
		return nil
	}
	var found []string
	for _, m := range c.mounts() {
		if _, err := os.Stat(filepath.Join(m, c.parent)); err == nil {
			found = append(found, filepath.Join(m, c.parent))
		}
	}
	return found
}
