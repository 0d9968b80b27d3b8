package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// setupV2 makes this executor's parent cgroup in the v2 hierarchy mounted
// at root, with the memory and pids controllers delegated to it.
func setupV2(root string) (Hierarchy, error) {
	controllers, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		return Hierarchy{}, err
	}
	if !hasWords(string(controllers), "memory", "pids") {
		return Hierarchy{}, errors.New("cgroup v2 lacks the memory or pids controller")
	}
	self := ownCgroup("")
	selfDir := filepath.Join(root, self)
	// cgroup v2 forbids processes in a cgroup whose controllers are delegated
	// to children, so the service moves itself into a leaf of its own first.
	leaf := filepath.Join(selfDir, "pyexec-service")
	if err := os.MkdirAll(leaf, 0o755); err != nil {
		return Hierarchy{}, err
	}
	if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return Hierarchy{}, fmt.Errorf("moving the service into %s: %w", leaf, err)
	}
	jails := filepath.Join(selfDir, "pyexec")
	for _, dir := range []string{selfDir, jails} {
		if dir == jails {
			if err := os.MkdirAll(jails, 0o755); err != nil {
				return Hierarchy{}, err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory +pids"), 0); err != nil {
			return Hierarchy{}, fmt.Errorf("enabling memory and pids in %s: %w", dir, err)
		}
	}
	instance := instanceName()
	mine := filepath.Join(jails, instance)
	if err := os.MkdirAll(mine, 0o755); err != nil {
		return Hierarchy{}, err
	}
	if err := os.WriteFile(filepath.Join(mine, "cgroup.subtree_control"), []byte("+memory +pids"), 0); err != nil {
		return Hierarchy{}, fmt.Errorf("enabling memory and pids in %s: %w", mine, err)
	}
	rel := strings.TrimPrefix(filepath.Join(self, "pyexec", instance), "/")
	return Hierarchy{kind: V2, memMount: root, pidsMount: root, parent: rel}, nil
}
