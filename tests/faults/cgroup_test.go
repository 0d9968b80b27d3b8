//go:build integration

package faults

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
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
// service itself does (executor/internal/cgroups/v2.go).
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

// filled says whether the cgroup's memory reached its limit: under cgroup
// v1 its highest usage (its failcnt counts only charges that failed after
// reclaim), under v2 its "max" event count.
func (cg *serviceCgroup) filled(t *testing.T) bool {
	t.Helper()
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(cg.dirs[0], name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(data))
	}
	if len(cg.dirs) > 1 {
		return read("memory.max_usage_in_bytes") == read("memory.limit_in_bytes")
	}
	for _, line := range strings.Split(read("memory.events"), "\n") {
		if n, ok := strings.CutPrefix(line, "max "); ok {
			return n != "0"
		}
	}
	return false
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

// sharedParents are the cgroups the service makes below its own that
// outlive it, empty: its jails' parent, where the cgroups of every instance
// on a host are made, and under cgroup v2 the leaf it moves itself into.
var sharedParents = []string{"pyexec", "pyexec-service"}

// children lists the cgroups below the service's, deepest first, but for
// the empty shared parents.
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
	found = slices.DeleteFunc(found, func(path string) bool {
		shared := slices.Contains(sharedParents, filepath.Base(path)) && slices.Contains(cg.dirs, filepath.Dir(path))
		return shared && !slices.ContainsFunc(found, func(other string) bool { return strings.HasPrefix(other, path+"/") })
	})
	// Deeper paths are longer: removable in this order.
	for i, j := 0, len(found)-1; i < j; i, j = i+1, j-1 {
		found[i], found[j] = found[j], found[i]
	}
	return found
}

// remove fails t if a process or a cgroup of the service is left, then
// removes whatever is.
func (cg *serviceCgroup) remove(t *testing.T) {
	// A process killed a moment ago may still be returning its memory.
	deadline := time.Now().Add(10 * time.Second)
	for len(cg.processes()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if procs := cg.processes(); len(procs) > 0 {
		t.Errorf("processes left in the service's cgroup after it exited: %s", describe(procs))
		for _, pid := range procs {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
	}
	if left := cg.children(); len(left) > 0 {
		t.Errorf("cgroups left below the service's after it exited: %v", left)
	}
	for _, dir := range cg.children() {
		_ = os.Remove(dir)
	}
	for _, dir := range cg.dirs {
		for _, shared := range sharedParents {
			_ = os.Remove(filepath.Join(dir, shared))
		}
		_ = os.Remove(dir)
	}
}

// describe names processes, with their state, for a failure message.
func describe(pids []int) string {
	var parts []string
	for _, pid := range slices.Compact(slices.Sorted(slices.Values(pids))) {
		status, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		state := ""
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "State:") || strings.HasPrefix(line, "PPid:") || strings.HasPrefix(line, "Name:") {
				state += " " + strings.Join(strings.Fields(line), " ")
			}
		}
		parts = append(parts, strconv.Itoa(pid)+state)
	}
	return strings.Join(parts, "; ")
}
