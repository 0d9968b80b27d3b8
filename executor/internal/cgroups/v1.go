package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// setupV1 makes this executor's parent cgroup in the v1 memory and pids
// hierarchies mounted under root.
func setupV1(root string) (Hierarchy, error) {
	mem, pids := filepath.Join(root, "memory"), filepath.Join(root, "pids")
	for _, f := range []string{filepath.Join(mem, "memory.limit_in_bytes"), filepath.Join(pids, "cgroup.procs")} {
		if _, err := os.Stat(f); err != nil {
			return Hierarchy{}, err
		}
	}
	memSelf, pidsSelf := ownCgroup("memory"), ownCgroup("pids")
	cg := Hierarchy{kind: V1, memMount: mem, pidsMount: pids, parent: "pyexec"}
	if memSelf != pidsSelf {
		// The two hierarchies place us differently; use their roots.
		memSelf = ""
	}
	cg.parent = strings.TrimPrefix(filepath.Join(memSelf, "pyexec", instanceName()), "/")
	for _, dir := range []string{filepath.Join(mem, cg.parent), filepath.Join(pids, cg.parent)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return Hierarchy{}, err
		}
	}
	if err := os.WriteFile(filepath.Join(mem, cg.parent, "memory.use_hierarchy"), []byte("1"), 0); err != nil {
		// Already hierarchical on current kernels; the file may be read-only.
		if b, rerr := os.ReadFile(filepath.Join(mem, cg.parent, "memory.use_hierarchy")); rerr != nil || strings.TrimSpace(string(b)) != "1" {
			return Hierarchy{}, fmt.Errorf("memory cgroup is not hierarchical: %w", err)
		}
	}
	_, err := os.Stat(filepath.Join(mem, cg.parent, "memory.memsw.limit_in_bytes"))
	cg.swapAccounted = err == nil
	// The freezer is optional: without it sessions are held by signals.
	freezer := filepath.Join(root, "freezer")
	if _, err := os.Stat(filepath.Join(freezer, "cgroup.procs")); err == nil && os.MkdirAll(filepath.Join(freezer, cg.parent), 0o755) == nil {
		cg.freezerMount = freezer
	}
	return cg, nil
}
