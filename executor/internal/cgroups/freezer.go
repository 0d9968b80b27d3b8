package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A session's processes are frozen between its cells, so that an idle
// session uses no CPU whatever its cells left running. v2 freezes a cgroup
// in place (cgroup.freeze); v1 has a hierarchy of its own for it, where a
// session gets a cgroup beside its memory and pids ones.

// CanFreeze tells whether the hierarchy can freeze an execution's
// processes.
func (c Hierarchy) CanFreeze() bool {
	return c.kind == V2 || (c.kind == V1 && c.freezerMount != "")
}

// freezerDir is the execution's cgroup in the hierarchy that freezes it.
func (e *Exec) freezerDir() string {
	if e.cg.kind == V1 {
		return filepath.Join(e.cg.freezerMount, e.name)
	}
	return e.MemDir()
}

// Freezable makes Attach put the execution's process, and so every
// process it starts, where Freeze reaches it: on v1 a cgroup of the freezer
// hierarchy too, on v2 the execution's own cgroup, where it goes anyway.
func (e *Exec) Freezable() { e.freezable = true }

// attachFreezer moves pid into the execution's v1 freezer cgroup.
func (e *Exec) attachFreezer(pid int) error {
	if e.cg.kind != V1 || e.cg.freezerMount == "" {
		return errors.New("no cgroup v1 freezer available")
	}
	dir := e.freezerDir()
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating freezer cgroup %s: %w", dir, err)
	}
	if err := writeControl(dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
		return fmt.Errorf("moving the session into freezer cgroup %s: %w", dir, err)
	}
	return nil
}

// freezeTimeout bounds how long freezing or thawing may take: the kernel
// stops each task at its next return to user space, which a task in a
// long system call reaches late.
const freezeTimeout = 5 * time.Second

// Freeze stops every process of the execution and returns once all are
// stopped.
func (e *Exec) Freeze() error { return e.setFrozen(true) }

// Thaw lets every process of the execution run again.
func (e *Exec) Thaw() error { return e.setFrozen(false) }

func (e *Exec) setFrozen(frozen bool) error {
	dir := e.freezerDir()
	var file, value string
	var done func() bool
	switch {
	case e.cg.kind == V2:
		file, value = "cgroup.freeze", map[bool]string{true: "1", false: "0"}[frozen]
		want := "frozen " + value
		done = func() bool {
			events, err := readControl(filepath.Join(dir, "cgroup.events"))
			return err == nil && strings.Contains(events, want)
		}
	case e.cg.kind == V1 && e.cg.freezerMount != "":
		file, value = "freezer.state", map[bool]string{true: "FROZEN", false: "THAWED"}[frozen]
		done = func() bool {
			state, err := readControl(filepath.Join(dir, "freezer.state"))
			return err == nil && strings.TrimSpace(state) == value
		}
	default:
		return errors.New("no cgroup freezer available")
	}
	if err := writeControl(dir, file, value); err != nil {
		return fmt.Errorf("writing %s of cgroup %s: %w", file, e.name, err)
	}
	for deadline := time.Now().Add(freezeTimeout); !done(); {
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: %s=%s did not take effect within %s", e.name, file, value, freezeTimeout)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// MemoryBytes is the memory the execution's processes use together, as
// its cgroup counts it.
func (e *Exec) MemoryBytes() int64 {
	usageFile := "memory.usage_in_bytes"
	if e.cg.kind == V2 {
		usageFile = "memory.current"
	}
	n, _ := readInt(filepath.Join(e.MemDir(), usageFile))
	return n
}
