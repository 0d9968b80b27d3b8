// Package leakcheck finds what a test run may leave behind: descendant
// processes of a process, files matching a pattern, and an executor's
// cgroups (ExecutorLeftovers). Tests assert all are empty once everything
// they started has shut down.
package leakcheck

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Descendants lists the PIDs of every live process below pid, zombies
// included (a zombie is an unreaped leftover too).
func Descendants(pid int) []int {
	parents := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(child); ok {
			parents[ppid] = append(parents[ppid], child)
		}
	}
	var found []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range parents[p] {
			found = append(found, c)
			queue = append(queue, c)
		}
	}
	return found
}

// DescendantsNamed lists the processes below root called name. The sandbox
// keeps long-lived processes of its own (a pool, a fork server), so "no
// descendants" is no test that an execution's processes are gone; their
// names are. Pass os.Getpid() for a service in the test's process, 1 for
// the whole host (where the processes of a service that exited went).
func DescendantsNamed(root int, name string) []int {
	var found []int
	for _, pid := range Descendants(root) {
		if Name(pid) == name {
			found = append(found, pid)
		}
	}
	return found
}

// Name is the process's name (its comm), "" once it is gone.
func Name(pid int) string {
	comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	return strings.TrimSpace(string(comm))
}

// FDs counts the process's open file descriptors, 0 once it is gone.
func FDs(pid int) int {
	fds, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	return len(fds)
}

// parentOf reads the PPID field of /proc/<pid>/stat. The command name before
// it may contain spaces and parentheses, so the fields after the last ')'
// are the ones to split.
func parentOf(pid int) (int, bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	s := string(data)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, false
	}
	fields := strings.Fields(s[end+1:])
	if len(fields) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(fields[1])
	return ppid, err == nil
}

// Describe names the processes for a failure message.
func Describe(pids []int) string {
	var parts []string
	for _, p := range pids {
		cmd, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "cmdline"))
		parts = append(parts, strconv.Itoa(p)+":"+strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "))
	}
	return strings.Join(parts, ", ")
}

// Children lists the PIDs of pid's live children.
func Children(pid int) []int {
	var found []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(child); ok && ppid == pid {
			found = append(found, child)
		}
	}
	return found
}
