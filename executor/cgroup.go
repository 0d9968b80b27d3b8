package executor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
	// swapAccounted tells whether v1's memory cgroups account swap
	// (memory.memsw.*), so that a memory limit can cover it.
	swapAccounted bool
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
	_, err := os.Stat(filepath.Join(mem, cg.parent, "memory.memsw.limit_in_bytes"))
	cg.swapAccounted = err == nil
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
	// pool, when set, takes the cgroup back for another execution once no
	// process of this one is left (fork mode); otherwise it is removed.
	pool *cgroupPool
	// The limits last written, so that one unchanged since the last
	// execution is not written again; 0 before the first.
	memBytes int64
	procs    int
	// eventsBase is the sum of v2's cumulative memory.events counters
	// (oom_kill, max) when the cgroup last became as new: what the current
	// execution added is above it.
	eventsBase int64
}

// create makes the execution's cgroup with its limits.
func (c cgroups) create(id string, memBytes int64, procs int) (*execCgroup, error) {
	e := &execCgroup{cg: c, name: filepath.Join(c.parent, id)}
	var err error
	switch c.kind {
	case limitCgroupV1:
		if err = os.Mkdir(e.memDir(), 0o755); err == nil {
			err = os.Mkdir(e.pidsDir(), 0o755)
		}
	case limitCgroupV2:
		if err = os.Mkdir(e.memDir(), 0o755); err == nil {
			_ = writeControl(e.memDir(), "memory.swap.max", "0") // absent where swap accounting is off
			err = writeControl(e.memDir(), "cgroup.subtree_control", "+memory +pids")
		}
	default:
		return nil, errors.New("no cgroup hierarchy available")
	}
	if err == nil {
		err = e.setLimits(memBytes, procs)
	}
	if err != nil {
		_ = e.remove()
		return nil, fmt.Errorf("creating cgroup %s: %w", e.name, err)
	}
	return e, nil
}

// setLimits sets the memory limit of all the execution's processes together
// and how many processes and threads it may have. The memory limit also
// covers swap, so a script cannot page its way past it. A limit that is
// already in place is not written again.
func (e *execCgroup) setLimits(memBytes int64, procs int) error {
	mem := strconv.FormatInt(memBytes, 10)
	if memBytes != e.memBytes {
		var err error
		switch e.cg.kind {
		case limitCgroupV1:
			// v1 keeps memory.limit_in_bytes <= memory.memsw.limit_in_bytes
			// at every step, so a raised limit is written to memsw first.
			files := []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"}
			if e.memBytes != 0 && memBytes > e.memBytes {
				files[0], files[1] = files[1], files[0]
			}
			for _, f := range files {
				if err == nil && (f == "memory.limit_in_bytes" || e.cg.swapAccounted) {
					err = writeControl(e.memDir(), f, mem)
				}
			}
		case limitCgroupV2:
			err = writeControl(e.memDir(), "memory.max", mem)
		}
		if err != nil {
			e.memBytes = 0 // unknown now: written again next time
			return err
		}
		e.memBytes = memBytes
	}
	if procs != e.procs {
		dir := e.memDir()
		if e.cg.kind == limitCgroupV1 {
			dir = e.pidsDir()
		}
		if err := writeControl(dir, "pids.max", strconv.Itoa(procs)); err != nil {
			e.procs = 0
			return err
		}
		e.procs = procs
	}
	return nil
}

func (e *execCgroup) memDir() string  { return filepath.Join(e.cg.memMount, e.name) }
func (e *execCgroup) pidsDir() string { return filepath.Join(e.cg.pidsMount, e.name) }

// attach moves pid into the execution's cgroup.
func (e *execCgroup) attach(pid int) error {
	var dirs []string
	switch e.cg.kind {
	case limitCgroupV1:
		dirs = []string{e.memDir(), e.pidsDir()}
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
		if err := writeControl(dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
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
	usageFile := "memory.usage_in_bytes"
	if e.cg.kind == limitCgroupV2 {
		usageFile = "memory.current"
	}
	usage, err := readInt(filepath.Join(e.memDir(), usageFile))
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
	// execution's (hitMemoryLimit reads them).
	switch e.cg.kind {
	case limitCgroupV1:
		// Writing 0 resets the peak and the failure count.
		err = errors.Join(writeControl(e.memDir(), "memory.max_usage_in_bytes", "0"), writeControl(e.memDir(), "memory.failcnt", "0"))
	case limitCgroupV2:
		e.eventsBase = e.memoryEvents()
	}
	if err != nil {
		return fmt.Errorf("resetting the memory counters of cgroup %s: %w", e.name, err)
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
		return failed > 0 || (e.memBytes > 0 && peak >= e.memBytes)
	case limitCgroupV2:
		return e.memoryEvents() > e.eventsBase
	}
	return false
}

// memoryEvents sums v2's memory.events counters that tell of the limit
// being reached: oom_kill and max.
func (e *execCgroup) memoryEvents() int64 {
	data, err := readControl(filepath.Join(e.memDir(), "memory.events"))
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

// release gives the cgroup back to its pool when reaped says every process
// of its execution has been reaped, and removes it otherwise.
func (e *execCgroup) release(reaped bool) error {
	if e.pool != nil && reaped {
		return e.pool.put(e)
	}
	return e.remove()
}

// drain makes sure no process of a cgroup's execution is left and reclaims
// what the execution brought into the page cache: left charged to the
// cgroup, it would lower the next execution's limit (and tell it what this
// one read). It reports false when a process is left.
func (e *execCgroup) drain() bool {
	switch e.cg.kind {
	case limitCgroupV1:
		if n, err := readInt(filepath.Join(e.pidsDir(), "pids.current")); err != nil || n != 0 {
			return false
		}
		// Reclaiming walks the cgroup's memory and costs far more than
		// these reads, so it is done only when pages are charged; kernel
		// objects are not pages in memory.stat.
		if usage, err := readInt(filepath.Join(e.memDir(), "memory.usage_in_bytes")); err == nil && usage != 0 && e.pagesCharged("cache", "rss", "shmem") {
			_ = writeControl(e.memDir(), "memory.force_empty", "0")
		}
		return true
	case limitCgroupV2:
		events, err := readControl(filepath.Join(e.memDir(), "cgroup.events"))
		if err != nil || !strings.Contains(events, "populated 0") {
			return false
		}
		if current, err := readInt(filepath.Join(e.memDir(), "memory.current")); err == nil && current != 0 && e.pagesCharged("anon", "file", "shmem") {
			_ = writeControl(e.memDir(), "memory.reclaim", strconv.FormatInt(current, 10))
		}
		return true
	}
	return false
}

// pagesCharged tells whether memory.stat counts any bytes under one of
// names, or cannot be read.
func (e *execCgroup) pagesCharged(names ...string) bool {
	data, err := readControl(filepath.Join(e.memDir(), "memory.stat"))
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
func (e *execCgroup) fresh() bool {
	switch e.cg.kind {
	case limitCgroupV1:
		if usage, err := readInt(filepath.Join(e.memDir(), "memory.usage_in_bytes")); err != nil || usage != 0 {
			return false
		}
		return writeControl(e.memDir(), "memory.max_usage_in_bytes", "0") == nil &&
			writeControl(e.memDir(), "memory.failcnt", "0") == nil
	case limitCgroupV2:
		if current, err := readInt(filepath.Join(e.memDir(), "memory.current")); err != nil || current != 0 {
			return false
		}
		e.eventsBase = e.memoryEvents()
		return true
	}
	return false
}

// cgroupPool keeps the cgroups of executions whose processes are gone for
// the next executions: reusing one costs a few reads and writes where
// making one and removing it costs a directory in each hierarchy (with its
// control files) and a removal that waits for the kernel to let go of the
// last process. A cgroup is reused only once nothing is charged to it any
// more; one idle for idleLimit is removed, and the pool keeps at most
// maxIdle, so that it holds what the executions of the last moments needed,
// not what a burst did.
type cgroupPool struct {
	groups  cgroups
	prefix  string // of the names of its cgroups
	maxIdle int    // the most idle cgroups it keeps

	mu       sync.Mutex
	idle     []idleCgroup // oldest first
	made     int
	trimming *time.Timer // pending trim, if any
	closed   bool
}

type idleCgroup struct {
	e     *execCgroup
	since time.Time
}

// idleLimit is how long a cgroup may stay idle in the pool.
const idleLimit = 5 * time.Second

// freshTries is how many of the oldest idle cgroups a take checks.
const freshTries = 4

// newCgroupPool makes a pool that keeps at most maxIdle idle cgroups.
func newCgroupPool(groups cgroups, prefix string, maxIdle int) *cgroupPool {
	return &cgroupPool{groups: groups, prefix: prefix, maxIdle: maxIdle}
}

// take returns a cgroup with no process and nothing charged to it, with the
// given limits: an idle one that is fresh again, or a new one.
func (p *cgroupPool) take(memBytes int64, procs int) (*execCgroup, error) {
	p.mu.Lock()
	// The oldest idle cgroups are the likeliest to be fresh. One can stay
	// charged for a while (the kernel frees what a network namespace held
	// in a work queue of its own), so a few are tried, not only the first.
	var ready *execCgroup
	for i := 0; i < min(len(p.idle), freshTries); i++ {
		if p.idle[i].e.fresh() {
			ready = p.idle[i].e
			p.idle = slices.Delete(p.idle, i, i+1)
			break
		}
	}
	if ready == nil {
		p.made++
	}
	id := fmt.Sprintf("%s-%d", p.prefix, p.made)
	p.mu.Unlock()
	if ready != nil {
		if err := ready.setLimits(memBytes, procs); err != nil {
			return nil, errors.Join(fmt.Errorf("setting the limits of cgroup %s: %w", ready.name, err), ready.remove())
		}
		return ready, nil
	}
	e, err := p.groups.create(id, memBytes, procs)
	if err != nil {
		return nil, err
	}
	e.pool = p
	return e, nil
}

// put takes back a cgroup whose execution's processes have all been reaped,
// or removes it if a process is left or the pool is closed.
func (p *cgroupPool) put(e *execCgroup) error {
	if !e.drain() {
		return e.remove()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return e.remove()
	}
	p.idle = append(p.idle, idleCgroup{e, time.Now()})
	var excess *execCgroup
	if len(p.idle) > p.maxIdle {
		// A burst made more than the pool keeps: the oldest goes.
		excess, p.idle = p.idle[0].e, p.idle[1:]
	}
	if p.trimming == nil {
		p.trimming = time.AfterFunc(idleLimit, p.trim)
	}
	p.mu.Unlock()
	if excess != nil {
		return excess.remove()
	}
	return nil
}

// trim removes the cgroups idle for idleLimit, and comes back for the rest
// when the oldest of them will be.
func (p *cgroupPool) trim() {
	p.mu.Lock()
	var old []*execCgroup
	for len(p.idle) > 0 && time.Since(p.idle[0].since) >= idleLimit {
		old = append(old, p.idle[0].e)
		p.idle = p.idle[1:]
	}
	p.trimming = nil
	if len(p.idle) > 0 && !p.closed {
		p.trimming = time.AfterFunc(idleLimit-time.Since(p.idle[0].since), p.trim)
	}
	p.mu.Unlock()
	for _, e := range old {
		_ = e.remove() // one that cannot be removed shows in Leftovers
	}
}

// idleNames names the idle cgroups: they belong to the next executions, so
// they are not left over.
func (p *cgroupPool) idleNames() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := map[string]bool{}
	for _, c := range p.idle {
		names[c.e.name] = true
	}
	return names
}

// close removes the idle cgroups; those still in use are removed when they
// come back.
func (p *cgroupPool) close() error {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	if p.trimming != nil {
		p.trimming.Stop()
		p.trimming = nil
	}
	p.mu.Unlock()
	var errs []error
	for _, c := range idle {
		errs = append(errs, c.e.remove())
	}
	return errors.Join(errs...)
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
	data, err := readControl(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(data), 10, 64)
}

// writeControl writes value to a cgroup control file in one write. Raw
// system calls rather than os.WriteFile: a control file gains nothing from
// Go's poller, which would register and unregister it on every write.
func writeControl(dir, file, value string) error {
	path := filepath.Join(dir, file)
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("setting %s: %w", path, err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(value)); err != nil {
		return fmt.Errorf("setting %s to %s: %w", path, value, err)
	}
	return nil
}

// readControl reads a cgroup control file.
func readControl(path string) (string, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	var data []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", path, err)
		}
		if n == 0 {
			return string(data), nil
		}
		data = append(data, buf[:n]...)
	}
}
