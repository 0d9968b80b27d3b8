package executor

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

// limiter names how memory and process counts are enforced.
type limiter string

const (
	limitCgroupV1 limiter = "cgroup v1"
	limitCgroupV2 limiter = "cgroup v2"
	limitRlimit   limiter = "rlimit"
)

// cgroups creates one cgroup per execution, under a parent owned by this
// process. The per-execution cgroup holds the limit and outlives the
// NSJAIL.<pid> cgroup nsjail creates inside it, so its counters can still be
// read after the jail is gone to tell an out-of-memory kill from other deaths.
type cgroups struct {
	kind limiter
	// v1: the memory and pids hierarchies' mount points and our parent's path
	// relative to them. v2: mount is the unified mount, parent the same.
	memMount, pidsMount string
	parent              string // relative path, e.g. "pyexec" or "<own cgroup>/pyexec"
}

// detectCgroups finds a hierarchy where this process may create cgroups with
// memory and pids limits: v1 first (where those controllers are bound to v1,
// v2 cannot use them), then v2. It returns kind limitRlimit when neither works.
func detectCgroups(root string) cgroups {
	if cg, err := setupV1(root); err == nil {
		return cg
	}
	if cg, err := setupV2(root); err == nil {
		return cg
	}
	return cgroups{kind: limitRlimit}
}

func setupV1(root string) (cgroups, error) {
	mem, pids := filepath.Join(root, "memory"), filepath.Join(root, "pids")
	for _, f := range []string{filepath.Join(mem, "memory.limit_in_bytes"), filepath.Join(pids, "cgroup.procs")} {
		if _, err := os.Stat(f); err != nil {
			return cgroups{}, err
		}
	}
	memSelf, pidsSelf := ownCgroup("memory"), ownCgroup("pids")
	cg := cgroups{kind: limitCgroupV1, memMount: mem, pidsMount: pids, parent: "pyexec"}
	if memSelf != pidsSelf {
		// The two hierarchies place us differently; use their roots.
		memSelf = ""
	}
	cg.parent = strings.TrimPrefix(filepath.Join(memSelf, "pyexec", instanceName()), "/")
	for _, dir := range []string{filepath.Join(mem, cg.parent), filepath.Join(pids, cg.parent)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return cgroups{}, err
		}
	}
	if err := os.WriteFile(filepath.Join(mem, cg.parent, "memory.use_hierarchy"), []byte("1"), 0); err != nil {
		// Already hierarchical on current kernels; the file may be read-only.
		if b, rerr := os.ReadFile(filepath.Join(mem, cg.parent, "memory.use_hierarchy")); rerr != nil || strings.TrimSpace(string(b)) != "1" {
			return cgroups{}, fmt.Errorf("memory cgroup is not hierarchical: %w", err)
		}
	}
	return cg, nil
}

func setupV2(root string) (cgroups, error) {
	controllers, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		return cgroups{}, err
	}
	if !hasWords(string(controllers), "memory", "pids") {
		return cgroups{}, errors.New("cgroup v2 lacks the memory or pids controller")
	}
	self := ownCgroup("")
	selfDir := filepath.Join(root, self)
	// cgroup v2 forbids processes in a cgroup whose controllers are delegated
	// to children, so the service moves itself into a leaf of its own first.
	leaf := filepath.Join(selfDir, "pyexec-service")
	if err := os.MkdirAll(leaf, 0o755); err != nil {
		return cgroups{}, err
	}
	if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return cgroups{}, fmt.Errorf("moving the service into %s: %w", leaf, err)
	}
	jails := filepath.Join(selfDir, "pyexec")
	for _, dir := range []string{selfDir, jails} {
		if dir == jails {
			if err := os.MkdirAll(jails, 0o755); err != nil {
				return cgroups{}, err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory +pids"), 0); err != nil {
			return cgroups{}, fmt.Errorf("enabling memory and pids in %s: %w", dir, err)
		}
	}
	instance := instanceName()
	mine := filepath.Join(jails, instance)
	if err := os.MkdirAll(mine, 0o755); err != nil {
		return cgroups{}, err
	}
	if err := os.WriteFile(filepath.Join(mine, "cgroup.subtree_control"), []byte("+memory +pids"), 0); err != nil {
		return cgroups{}, fmt.Errorf("enabling memory and pids in %s: %w", mine, err)
	}
	rel := strings.TrimPrefix(filepath.Join(self, "pyexec", instance), "/")
	return cgroups{kind: limitCgroupV2, memMount: root, pidsMount: root, parent: rel}, nil
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

// execCgroup is the cgroup of one execution.
type execCgroup struct {
	cg   cgroups
	name string // relative to the mounts, e.g. "pyexec/<id>"
}

// create makes the execution's cgroup with its limits. The memory limit also
// covers swap, so a script cannot page its way past it.
func (c cgroups) create(id string, memBytes int64, procs int) (*execCgroup, error) {
	e := &execCgroup{cg: c, name: filepath.Join(c.parent, id)}
	write := func(dir, file, value string) error {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
			return fmt.Errorf("setting %s: %w", file, err)
		}
		return nil
	}
	mem := strconv.FormatInt(memBytes, 10)
	var err error
	switch c.kind {
	case limitCgroupV1:
		memDir, pidsDir := e.memDir(), filepath.Join(c.pidsMount, e.name)
		if err = os.Mkdir(memDir, 0o755); err == nil {
			err = os.Mkdir(pidsDir, 0o755)
		}
		if err == nil {
			err = write(memDir, "memory.limit_in_bytes", mem)
		}
		if err == nil {
			if _, statErr := os.Stat(filepath.Join(memDir, "memory.memsw.limit_in_bytes")); statErr == nil {
				err = write(memDir, "memory.memsw.limit_in_bytes", mem)
			}
		}
		if err == nil {
			err = write(pidsDir, "pids.max", strconv.Itoa(procs))
		}
	case limitCgroupV2:
		dir := e.memDir()
		if err = os.Mkdir(dir, 0o755); err == nil {
			err = write(dir, "memory.max", mem)
		}
		if err == nil {
			_ = write(dir, "memory.swap.max", "0") // absent where swap accounting is off
			err = write(dir, "pids.max", strconv.Itoa(procs))
		}
		if err == nil {
			err = write(dir, "cgroup.subtree_control", "+memory +pids")
		}
	default:
		return nil, errors.New("no cgroup hierarchy available")
	}
	if err != nil {
		_ = e.remove()
		return nil, fmt.Errorf("creating cgroup %s: %w", e.name, err)
	}
	return e, nil
}

func (e *execCgroup) memDir() string { return filepath.Join(e.cg.memMount, e.name) }

// attach moves pid into the execution's cgroup.
func (e *execCgroup) attach(pid int) error {
	var dirs []string
	switch e.cg.kind {
	case limitCgroupV1:
		dirs = []string{e.memDir(), filepath.Join(e.cg.pidsMount, e.name)}
	case limitCgroupV2:
		// The execution's cgroup delegates its controllers, so under v2's
		// no-internal-processes rule the process goes into a leaf.
		leaf := filepath.Join(e.memDir(), "run")
		if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("creating cgroup %s: %w", leaf, err)
		}
		dirs = []string{leaf}
	default:
		return errors.New("no cgroup hierarchy available")
	}
	for _, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("moving the execution into cgroup %s: %w", dir, err)
		}
	}
	return nil
}

// tightenMemoryLimit lowers the memory limit of a cgroup whose processes
// wait for their script, for an execution that asks for memBytes, less than
// the service's limit: to what the cgroup holds now plus memBytes, never
// above the limit it has. What a jail started ahead already holds (an
// interpreter with numpy and pandas imported) is not the script's, as the
// pages a forked process shares with its server are not; the script gets
// memBytes of its own.
func (e *execCgroup) tightenMemoryLimit(memBytes int64) error {
	dir := e.memDir()
	limitFile, usageFile := "memory.limit_in_bytes", "memory.usage_in_bytes"
	if e.cg.kind == limitCgroupV2 {
		limitFile, usageFile = "memory.max", "memory.current"
	}
	usage, err := readInt(filepath.Join(dir, usageFile))
	if err != nil {
		return fmt.Errorf("reading the memory use of cgroup %s: %w", e.name, err)
	}
	target := usage + memBytes
	// v2 writes "max" for no limit, which is no number: then any is lower.
	if limit, err := readInt(filepath.Join(dir, limitFile)); err == nil && limit <= target {
		return nil
	}
	value := strconv.FormatInt(target, 10)
	write := func(file string) error { return os.WriteFile(filepath.Join(dir, file), []byte(value), 0) }
	err = write(limitFile)
	if err == nil && e.cg.kind == limitCgroupV1 {
		// The combined limit may not be below the memory limit, so it
		// follows it down. The peak and the failure count so far were the
		// interpreter's start, not the execution's (hitMemoryLimit reads
		// them); writing 0 resets them.
		if _, statErr := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes")); statErr == nil {
			err = write("memory.memsw.limit_in_bytes")
		}
		if err == nil {
			value = "0"
			err = errors.Join(write("memory.max_usage_in_bytes"), write("memory.failcnt"))
		}
	}
	if err != nil {
		return fmt.Errorf("lowering the memory limit of cgroup %s: %w", e.name, err)
	}
	return nil
}

// hitMemoryLimit tells whether the execution reached its memory limit.
func (e *execCgroup) hitMemoryLimit() bool {
	switch e.cg.kind {
	case limitCgroupV1:
		// The OOM kill's own counter lives in nsjail's child cgroup, gone by
		// now, and current kernels may not count failcnt; the peak usage
		// reaching the limit is what remains.
		dir := e.memDir()
		failed, _ := readInt(filepath.Join(dir, "memory.failcnt"))
		peak, _ := readInt(filepath.Join(dir, "memory.max_usage_in_bytes"))
		limit, err := readInt(filepath.Join(dir, "memory.limit_in_bytes"))
		return failed > 0 || (err == nil && peak >= limit)
	case limitCgroupV2:
		data, err := os.ReadFile(filepath.Join(e.memDir(), "memory.events"))
		if err != nil {
			return false
		}
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) == 2 && (f[0] == "oom_kill" || f[0] == "max") && f[1] != "0" {
				return true
			}
		}
	}
	return false
}

// remove deletes the execution's cgroups, children first. Removal can race
// with the kernel still tearing down the jail's last task ("busy"), so it
// retries briefly.
func (e *execCgroup) remove() error {
	var errs []error
	for _, m := range e.cg.mounts() {
		if err := removeCgroupTree(filepath.Join(m, e.name)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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

// sweep removes what earlier executors left: the cgroups of service
// processes that no longer exist (a crash, or a kill the kernel was slow to
// finish), and any execution cgroup under this executor's own parent.
func (c cgroups) sweep() {
	if c.kind == limitRlimit {
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

// release removes this executor's parent cgroups and everything in them.
func (c cgroups) release() error {
	if c.kind == limitRlimit {
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

func (c cgroups) mounts() []string {
	if c.kind == limitCgroupV1 {
		return []string{c.memMount, c.pidsMount}
	}
	return []string{c.memMount}
}

// leftovers lists this service's execution cgroups that still exist.
func (c cgroups) leftovers() []string {
	if c.kind == limitRlimit {
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

// parents lists this executor's parent cgroups that exist.
func (c cgroups) parents() []string {
	if c.kind == limitRlimit {
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

func readInt(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
}
