package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Exec is the cgroup of one execution.
type Exec struct {
	cg   Hierarchy
	name string // relative to the mounts, e.g. "pyexec/<id>"
	// pool, when set, takes the cgroup back for another execution once no
	// process of this one is left (fork mode); otherwise it is removed.
	pool *Pool
	// The limits last written, so that one unchanged since the last
	// execution is not written again; 0 before the first.
	memBytes int64
	procs    int
	// freezable: Attach puts the process where Freeze reaches it.
	freezable bool
	// eventsBase is the sum of v2's cumulative memory.events counters
	// (oom_kill, max) when the cgroup last became as new: what the current
	// execution added is above it.
	eventsBase int64
}

// Create makes the execution's cgroup, named id under the parent, with its
// limits.
func (c Hierarchy) Create(id string, memBytes int64, procs int) (*Exec, error) {
	e := &Exec{cg: c, name: filepath.Join(c.parent, id)}
	var err error
	switch c.kind {
	case V1:
		if err = os.Mkdir(e.MemDir(), 0o755); err == nil {
			err = os.Mkdir(e.PidsDir(), 0o755)
		}
	case V2:
		if err = os.Mkdir(e.MemDir(), 0o755); err == nil {
			_ = writeControl(e.MemDir(), "memory.swap.max", "0") // absent where swap accounting is off
			err = writeControl(e.MemDir(), "cgroup.subtree_control", "+memory +pids")
		}
	default:
		return nil, errors.New("no cgroup hierarchy available")
	}
	if err == nil {
		err = e.setLimits(memBytes, procs)
	}
	if err != nil {
		_ = e.Remove()
		return nil, fmt.Errorf("creating cgroup %s: %w", e.name, err)
	}
	return e, nil
}

// setLimits sets the memory limit of all the execution's processes together
// and how many processes and threads it may have. The memory limit also
// covers swap, so a script cannot page its way past it. A limit that is
// already in place is not written again.
func (e *Exec) setLimits(memBytes int64, procs int) error {
	mem := strconv.FormatInt(memBytes, 10)
	if memBytes != e.memBytes {
		var err error
		switch e.cg.kind {
		case V1:
			// v1 keeps memory.limit_in_bytes <= memory.memsw.limit_in_bytes
			// at every step, so a raised limit is written to memsw first.
			files := []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"}
			if e.memBytes != 0 && memBytes > e.memBytes {
				files[0], files[1] = files[1], files[0]
			}
			for _, f := range files {
				if err == nil && (f == "memory.limit_in_bytes" || e.cg.swapAccounted) {
					err = writeControl(e.MemDir(), f, mem)
				}
			}
		case V2:
			err = writeControl(e.MemDir(), "memory.max", mem)
		}
		if err != nil {
			e.memBytes = 0 // unknown now: written again next time
			return err
		}
		e.memBytes = memBytes
	}
	if procs != e.procs {
		dir := e.MemDir()
		if e.cg.kind == V1 {
			dir = e.PidsDir()
		}
		if err := writeControl(dir, "pids.max", strconv.Itoa(procs)); err != nil {
			e.procs = 0
			return err
		}
		e.procs = procs
	}
	return nil
}

// Name returns the cgroup's path relative to the mounts, e.g.
// "pyexec/<id>".
func (e *Exec) Name() string { return e.name }

// MemDir returns the cgroup's directory in the memory hierarchy (v1), or
// its one directory (v2).
func (e *Exec) MemDir() string { return filepath.Join(e.cg.memMount, e.name) }

// PidsDir returns the cgroup's directory in the pids hierarchy (v1), or its
// one directory (v2).
func (e *Exec) PidsDir() string { return filepath.Join(e.cg.pidsMount, e.name) }

// Attach moves pid into the execution's cgroup.
func (e *Exec) Attach(pid int) error {
	var dirs []string
	switch e.cg.kind {
	case V1:
		dirs = []string{e.MemDir(), e.PidsDir()}
	case V2:
		// The execution's cgroup delegates its controllers, so under v2's
		// no-internal-processes rule the process goes into a leaf.
		leaf := filepath.Join(e.MemDir(), "run")
		if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("creating cgroup %s: %w", leaf, err)
		}
		dirs = []string{leaf}
	default:
		return errors.New("no cgroup hierarchy available")
	}
	for _, dir := range dirs {
		if err := writeControl(dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("moving the execution into cgroup %s: %w", dir, err)
		}
	}
	if e.freezable && e.cg.kind == V1 {
		return e.attachFreezer(pid)
	}
	return nil
}

// TightenMemoryLimit lowers the memory limit of a cgroup whose processes
// wait for their script, for an execution that asks for memBytes, less than
// the service's limit: to what the cgroup holds now plus memBytes, never
// above the limit it has. What a jail started ahead already holds (an
// interpreter with numpy and pandas imported) is not the script's, as the
// pages a forked process shares with its server are not; the script gets
// memBytes of its own.
func (e *Exec) TightenMemoryLimit(memBytes int64) error {
	usageFile := "memory.usage_in_bytes"
	if e.cg.kind == V2 {
		usageFile = "memory.current"
	}
	usage, err := readInt(filepath.Join(e.MemDir(), usageFile))
	if err != nil {
		return fmt.Errorf("reading the memory use of cgroup %s: %w", e.name, err)
	}
	target := usage + memBytes
	if e.memBytes > 0 && e.memBytes <= target {
		return nil
	}
	if err := e.setLimits(target, e.procs); err != nil {
		return fmt.Errorf("lowering the memory limit of cgroup %s: %w", e.name, err)
	}
	// What the counters hold so far was the interpreter's start, not the
	// execution's (HitMemoryLimit reads them).
	switch e.cg.kind {
	case V1:
		// Writing 0 resets the peak and the failure count.
		err = errors.Join(writeControl(e.MemDir(), "memory.max_usage_in_bytes", "0"), writeControl(e.MemDir(), "memory.failcnt", "0"))
	case V2:
		e.eventsBase = e.memoryEvents()
	}
	if err != nil {
		return fmt.Errorf("resetting the memory counters of cgroup %s: %w", e.name, err)
	}
	return nil
}

// HitMemoryLimit tells whether the execution reached its memory limit.
func (e *Exec) HitMemoryLimit() bool {
	switch e.cg.kind {
	case V1:
		// The OOM kill's own counter lives in nsjail's child cgroup, gone by
		// now, and current kernels may not count failcnt; the peak usage
		// reaching the limit is what remains.
		dir := e.MemDir()
		failed, _ := readInt(filepath.Join(dir, "memory.failcnt"))
		peak, _ := readInt(filepath.Join(dir, "memory.max_usage_in_bytes"))
		return failed > 0 || (e.memBytes > 0 && peak >= e.memBytes)
	case V2:
		return e.memoryEvents() > e.eventsBase
	}
	return false
}

// memoryEvents sums v2's memory.events counters that tell of the limit
// being reached: oom_kill and max.
func (e *Exec) memoryEvents() int64 {
	data, err := readControl(filepath.Join(e.MemDir(), "memory.events"))
	if err != nil {
		return 0
	}
	var sum int64
	for _, line := range strings.Split(data, "\n") {
		if f := strings.Fields(line); len(f) == 2 && (f[0] == "oom_kill" || f[0] == "max") {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			sum += n
		}
	}
	return sum
}

// Release gives the cgroup back to its pool when reaped says every process
// of its execution has been reaped, and removes it otherwise.
func (e *Exec) Release(reaped bool) error {
	if e.pool != nil && reaped {
		return e.pool.put(e)
	}
	return e.Remove()
}

// drain makes sure no process of a cgroup's execution is left and reclaims
// what the execution brought into the page cache: left charged to the
// cgroup, it would lower the next execution's limit (and tell it what this
// one read). It reports false when a process is left.
func (e *Exec) drain() bool {
	switch e.cg.kind {
	case V1:
		if n, err := readInt(filepath.Join(e.PidsDir(), "pids.current")); err != nil || n != 0 {
			return false
		}
		// Reclaiming walks the cgroup's memory and costs far more than
		// these reads, so it is done only when pages are charged; kernel
		// objects are not pages in memory.stat.
		if usage, err := readInt(filepath.Join(e.MemDir(), "memory.usage_in_bytes")); err == nil && usage != 0 && e.pagesCharged("cache", "rss", "shmem") {
			_ = writeControl(e.MemDir(), "memory.force_empty", "0")
		}
		return true
	case V2:
		events, err := readControl(filepath.Join(e.MemDir(), "cgroup.events"))
		if err != nil || !strings.Contains(events, "populated 0") {
			return false
		}
		if current, err := readInt(filepath.Join(e.MemDir(), "memory.current")); err == nil && current != 0 && e.pagesCharged("anon", "file", "shmem") {
			_ = writeControl(e.MemDir(), "memory.reclaim", strconv.FormatInt(current, 10))
		}
		return true
	}
	return false
}

// pagesCharged tells whether memory.stat counts any bytes under one of
// names, or cannot be read.
func (e *Exec) pagesCharged(names ...string) bool {
	data, err := readControl(filepath.Join(e.MemDir(), "memory.stat"))
	if err != nil {
		return true
	}
	for _, line := range strings.Split(data, "\n") {
		if f := strings.Fields(line); len(f) == 2 && slices.Contains(names, f[0]) && f[1] != "0" {
			return true
		}
	}
	return false
}

// fresh makes a drained cgroup as new for the next execution, and reports
// whether it could: nothing may be charged to it any more. The kernel
// frees some objects of an ended process (its seccomp filter among them)
// only after an RCU grace period, so a cgroup can be drained and still
// hold a few KiB for a while; it is not fresh until they are gone.
func (e *Exec) fresh() bool {
	switch e.cg.kind {
	case V1:
		if usage, err := readInt(filepath.Join(e.MemDir(), "memory.usage_in_bytes")); err != nil || usage != 0 {
			return false
		}
		return writeControl(e.MemDir(), "memory.max_usage_in_bytes", "0") == nil &&
			writeControl(e.MemDir(), "memory.failcnt", "0") == nil
	case V2:
		if current, err := readInt(filepath.Join(e.MemDir(), "memory.current")); err != nil || current != 0 {
			return false
		}
		e.eventsBase = e.memoryEvents()
		return true
	}
	return false
}

// Remove deletes the execution's cgroups, children first. Removal can race
// with the kernel still tearing down the jail's last task ("busy"), so it
// retries briefly.
func (e *Exec) Remove() error {
	var errs []error
	for _, m := range e.cg.mounts() {
		if err := removeCgroupTree(filepath.Join(m, e.name)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
