//go:build integration

package faults

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// serviceCgroup is a cgroup of the test's own that one service runs in from
// its first instruction (testsupport.StartBinaryInCgroups): the service's
// memory can be limited as a container's is, and once the service has
// exited, its subtree shows whether any process or cgroup of it is left.
// Under cgroup v1 it is one directory in each of the memory and pids
// hierarchies, at the same path, as a container's are.
type serviceCgroup struct {
	dirs []string
}

const cgroupRoot = "/sys/fs/cgroup"

// newServiceCgroup makes the cgroup, limiting its memory to memBytes unless
// that is 0, and removes it at cleanup, failing t if anything is left in it.
func newServiceCgroup(t *testing.T, memBytes int64) *serviceCgroup {
	t.Helper()
	id := make([]byte, 6)
	_, _ = rand.Read(id)
	name := "pyexec-faults-" + hex.EncodeToString(id)
	cg := &serviceCgroup{}
	memoryFile := "memory.max"
	if _, err := os.Stat(filepath.Join(cgroupRoot, "memory", "memory.limit_in_bytes")); err == nil {
		cg.dirs = []string{filepath.Join(cgroupRoot, "memory", name), filepath.Join(cgroupRoot, "pids", name)}
		memoryFile = "memory.limit_in_bytes"
	} else {
		delegateV2(t)
		cg.dirs = []string{filepath.Join(cgroupRoot, name)}
	}
	for _, dir := range cg.dirs {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("making the service's cgroup: %v", err)
		}
	}
	t.Cleanup(func() { cg.remove(t) })
	if memBytes > 0 {
		limit := []byte(strconv.FormatInt(memBytes, 10))
		if err := os.WriteFile(filepath.Join(cg.dirs[0], memoryFile), limit, 0); err != nil {
			t.Fatalf("limiting the service's cgroup's memory: %v", err)
		}
		// Without swap accounting, or with no swap, this file is absent.
		swap := filepath.Join(cg.dirs[0], "memory.memsw.limit_in_bytes")
		if _, err := os.Stat(swap); err == nil {
			if err := os.WriteFile(swap, limit, 0); err != nil {
				t.Fatalf("limiting the service's cgroup's memory and swap: %v", err)
			}
		}
	}
	return cg
}

var delegated sync.Once

// delegateV2 has the cgroup2 root this test sees give the memory and pids
// controllers to its children, once. cgroup v2 lets only a cgroup without
// processes do that, so the test's process moves into a leaf first, as the
// service itself does (executor/cgroup.go).
func delegateV2(t *testing.T) {
	delegated.Do(func() {
		leaf := filepath.Join(cgroupRoot, "pyexec-faults-runner")
		if err := os.MkdirAll(leaf, 0o755); err != nil {
			t.Fatalf("making the test's own cgroup: %v", err)
		}
		if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			t.Fatalf("moving the test into its own cgroup: %v", err)
		}
		if err := os.WriteFile(filepath.Join(cgroupRoot, "cgroup.subtree_control"), []byte("+memory +pids"), 0); err != nil {
			t.Fatalf("delegating the memory and pids controllers: %v", err)
		}
	})
}

// procsFiles are what the service writes its pid to before it runs.
func (cg *serviceCgroup) procsFiles() []string {
	var files []string
	for _, dir := range cg.dirs {
		files = append(files, filepath.Join(dir, "cgroup.procs"))
	}
	return files
}

// processes lists every process in the cgroup's subtree.
func (cg *serviceCgroup) processes() []int {
	var pids []int
	for _, dir := range cg.dirs {
		_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(path)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// children lists the cgroups below the service's, deepest first.
func (cg *serviceCgroup) children() []string {
	var found []string
	for _, dir := range cg.dirs {
		_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && path != dir {
				found = append(found, path)
			}
			return nil
		})
	}
	// Deeper paths are longer: removable in this order.
	for i, j := 0, len(found)-1; i < j; i, j = i+1, j-1 {
		found[i], found[j] = found[j], found[i]
	}
	return found
}

// remove fails t if a process or a cgroup of the service is left, then
// removes whatever is.
func (cg *serviceCgroup) remove(t *testing.T) {
	if procs := cg.processes(); len(procs) > 0 {
		t.Errorf("processes left in the service's cgroup after it exited: %v", procs)
		for _, pid := range procs {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
	}
	if left := cg.children(); len(left) > 0 {
		t.Errorf("cgroups left below the service's after it exited: %v", left)
	}
	for _, dir := range append(cg.children(), cg.dirs...) {
		_ = os.Remove(dir)
	}
}
