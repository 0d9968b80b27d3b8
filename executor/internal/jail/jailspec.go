package jail

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pyexec/pyexec/executor/internal/cgroups"
	"github.com/pyexec/pyexec/executor/internal/hosttree"
	"github.com/pyexec/pyexec/executor/internal/seccomp"
	"github.com/pyexec/pyexec/executor/internal/uids"
	"github.com/pyexec/pyexec/harness"
)

// Paths inside the jail: the jail's own files, which nsjail writes into it
// from the configuration.
const (
	jailHarness = "/pyexec/harness.py"
	jailZygote  = "/pyexec/zygote.py"  // fork mode's server (mode_fork.go)
	jailSession = "/pyexec/session.py" // sessions' cell loop, fork mode only
)

// The rlimits every execution runs under, whichever sandbox sets them:
// jailConfig for an nsjail per execution, the fork server for its processes
// (zygoteConfig, mode_fork.go).
const (
	rlimitNofile   = 1024
	rlimitStackMiB = 16
)

// cpuSeconds is the CPU-time rlimit: a backstop past the wall-clock limit,
// which the executor enforces itself.
func cpuSeconds(timeout time.Duration) int { return 2*int(timeout/time.Second) + 5 }

// jailSpec is everything that decides one jail's configuration. It is plain
// data so that the configuration can be built and tested without nsjail,
// and it is checked like a container runtime's config: Validate says what
// is wrong with it before any jail starts. Start builds one template per
// executor (baseSpec); every jail's spec is derived from it (derive), which
// validates the result.
type jailSpec struct {
	// Interp is the interpreter and what the jail takes from the host for
	// it: nothing else of the host's filesystem is in the jail.
	Interp hosttree.Interpreter

	Timeout     time.Duration
	MemoryBytes int64
	MaxProcs    int
	TmpBytes    int64
	// IDs are the executor's outside ids (package uids); OutsideUID, the id the
	// jail's nobody maps to, must be one of them.
	IDs        uids.Outside
	OutsideUID int

	Limiter cgroups.Limiter
	// Cgroup placement when Limiter is a cgroup version: nsjail creates its
	// NSJAIL.<pid> cgroup under Parent, which holds the real limit.
	CgroupMemMount, CgroupPidsMount, CgroupParent string

	// Preload makes the harness import numpy and pandas before it reads its
	// script (pool mode, mode_pool.go). MaxIdle is how long such a jail may wait
	// for its script; the time-limit backstop grows by as much.
	Preload bool
	MaxIdle time.Duration

	// Server makes this the outer jail of the fork server (mode_fork.go): a
	// long-lived interpreter that builds a nested sandbox for every
	// execution. Its seccomp policy lets it create those namespaces and
	// mounts, its /proc is writable for their uid maps, and it has no time,
	// CPU or cgroup limit of its own: the nested sandboxes carry the
	// per-execution limits. MaxProcs is then the total for all executions.
	Server bool
	// Files are extra read-only files nsjail creates in the jail.
	Files []jailFile
}

// Jail file descriptors, as passed by the launcher.
const (
	fdScript    = 3
	fdReport    = 4
	fdNsjailLog = 5 // nsjail's own messages; never reaches the jail
	fdConfig    = 6 // this configuration, read by nsjail at start
)

// baseSpec is the template every jail of an executor is derived from: the
// interpreter, the outside ids and the configured limits. It is not yet
// any jail's: it has no outside uid or cgroup, which derive adds.
func baseSpec(interp hosttree.Interpreter, ids uids.Outside, cfg Config, limits cgroups.Limiter) jailSpec {
	return jailSpec{
		Interp:      interp,
		IDs:         ids,
		Timeout:     cfg.Timeout,
		MemoryBytes: cfg.MemoryBytes,
		MaxProcs:    cfg.MaxProcs,
		TmpBytes:    cfg.TmpBytes,
		Limiter:     limits,
	}
}

// derive is the one way a mode or a jail adapts a spec: it returns a copy
// of s with change applied, if the result is valid. change must not modify
// the maps and slices s shares with its template; it may replace them.
func (s jailSpec) derive(change func(*jailSpec)) (jailSpec, error) {
	change(&s)
	if err := s.Validate(); err != nil {
		return jailSpec{}, fmt.Errorf("invalid jail: %w", err)
	}
	return s, nil
}

// Validate reports every problem of the spec at once: what would make
// nsjail fail, or the jail less isolated than it promises.
func (s jailSpec) Validate() error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	// What the jail takes from the host: read-only binds and symlinks, none
	// exposing a directory the jail replaces, and nothing mounted where
	// something else is.
	mounts := map[string]string{}
	mountAt := func(dst, what string) {
		if other, taken := mounts[dst]; taken {
			fail("%s and %s are both mounted at %s", other, what, dst)
		}
		mounts[dst] = what
	}
	for _, dst := range append([]string{"/", "/proc", "/tmp", "/dev/shm"}, jailDevices...) {
		mountAt(dst, "the jail's own "+dst)
	}
	for _, f := range append(jailFiles(), s.Files...) {
		if !filepath.IsAbs(f.path) || filepath.Clean(f.path) != f.path {
			fail("jail file %q is not a clean absolute path", f.path)
		}
		mountAt(f.path, "the jail file "+f.path)
	}
	// Binds at real paths, none inside another (nsjail could not make its
	// mount point in a read-only bind), and the symlinks on the way to them,
	// none inside a bind (which brings the host's own).
	var fromHost []string
	if len(s.Interp.Binds) == 0 {
		fail("no interpreter paths to bind")
	}
	for i, p := range s.Interp.Binds {
		if why := hosttree.PathRefused(p, false); why != "" {
			fail("host bind %s", why)
		}
		for _, other := range s.Interp.Binds[:i] {
			if hosttree.Under(p, other) || hosttree.Under(other, p) {
				fail("host binds %s and %s lie one inside the other", other, p)
			}
		}
		mountAt(p, "the host bind "+p)
		fromHost = append(fromHost, p)
	}
	for _, link := range slices.Sorted(maps.Keys(s.Interp.Links)) {
		if why := hosttree.PathRefused(link, true); why != "" {
			fail("host symlink %s", why)
		}
		for _, p := range s.Interp.Binds {
			if hosttree.Under(link, p) {
				fail("host symlink %s lies inside the bind %s", link, p)
			}
		}
		mountAt(link, "the symlink "+link)
		if s.Interp.Links[link] == "" {
			fail("host symlink %s has no target", link)
		}
		fromHost = append(fromHost, link)
	}
	exe := s.Interp.Executable
	reachable := false
	for _, p := range fromHost {
		reachable = reachable || hosttree.Under(exe, p)
	}
	if !filepath.IsAbs(exe) || !reachable {
		fail("interpreter %q is not an absolute path inside what the jail takes from the host", exe)
	}

	// Limits. nsjail takes sizes in MiB, so less than one is none at all.
	if s.Timeout <= 0 {
		fail("timeout %v is not positive", s.Timeout)
	}
	if s.MemoryBytes < 1<<20 {
		fail("memory limit of %d bytes is under 1 MiB", s.MemoryBytes)
	}
	if s.TmpBytes < 1<<20 {
		fail("/tmp size of %d bytes is under 1 MiB", s.TmpBytes)
	}
	if s.MaxProcs < 1 {
		fail("process limit %d is not positive", s.MaxProcs)
	}
	if s.MaxIdle < 0 || (s.MaxIdle > 0 && !s.Preload) {
		fail("idle time %v is for jails started ahead (preload) only", s.MaxIdle)
	}
	if err := s.IDs.Check(s.OutsideUID); err != nil {
		fail("%v", err)
	}

	// Cgroup placement: each execution's jail in a cgroup of its own; the
	// fork server's jail in none (its executions' processes get theirs).
	placed := s.CgroupMemMount != "" || s.CgroupPidsMount != "" || s.CgroupParent != ""
	switch {
	case s.Limiter != cgroups.V1 && s.Limiter != cgroups.V2 && s.Limiter != cgroups.Rlimit:
		fail("unknown limiter %q", s.Limiter)
	case s.Server || s.Limiter == cgroups.Rlimit:
		if placed {
			fail("a cgroup placement for a jail that is not limited by its cgroup")
		}
	default:
		parent := s.CgroupParent
		if parent == "" || filepath.IsAbs(parent) || filepath.Clean(parent) != parent || strings.HasPrefix(parent, "..") {
			fail("cgroup %q is not a clean relative path below the mount", parent)
		}
		if !filepath.IsAbs(s.CgroupMemMount) || (s.Limiter == cgroups.V1 && !filepath.IsAbs(s.CgroupPidsMount)) {
			fail("cgroup mounts %q and %q are not absolute paths", s.CgroupMemMount, s.CgroupPidsMount)
		}
	}

	if s.Server {
		if s.Preload {
			fail("the fork server's jail preloads by itself")
		}
		if _, ok := mounts[jailZygote]; !ok {
			fail("the fork server's jail lacks %s", jailZygote)
		}
	}
	return errors.Join(errs...)
}

// jailConfig renders spec as an nsjail configuration (protobuf text format).
func jailConfig(s jailSpec) string {
	var b strings.Builder
	kv := func(key string, value any) {
		switch v := value.(type) {
		case string:
			fmt.Fprintf(&b, "%s: %s\n", key, quote(v))
		default:
			fmt.Fprintf(&b, "%s: %v\n", key, v)
		}
	}
	kv("name", "pyexec")
	b.WriteString("mode: ONCE\n")
	kv("hostname", "pyexec")
	kv("cwd", "/tmp")
	// Backstop only: the executor kills the jail at Timeout itself and
	// reports the timeout; nsjail's limit catches the executor failing to.
	if s.Server {
		kv("time_limit", 0)
	} else {
		kv("time_limit", int((s.Timeout+5*time.Second+s.MaxIdle)/time.Second))
	}
	kv("log_fd", fdNsjailLog)
	b.WriteString("log_level: INFO\n")
	kv("keep_env", false)
	for _, e := range jailEnv() {
		kv("envar", e)
	}
	kv("pass_fd", fdScript) // the fork server's control socket
	if !s.Server {
		kv("pass_fd", fdReport)
	}

	// Every namespace, including user: root in the jail is nobody outside.
	for _, ns := range []string{"net", "user", "ns", "pid", "ipc", "uts", "cgroup"} {
		kv("clone_new"+ns, true)
	}
	fmt.Fprintf(&b, "uidmap { inside_id: %q outside_id: %q count: 1 }\n", strconv.Itoa(uids.JailUID), strconv.Itoa(s.OutsideUID))
	fmt.Fprintf(&b, "gidmap { inside_id: %q outside_id: %q count: 1 }\n", strconv.Itoa(uids.JailUID), strconv.Itoa(s.OutsideUID))
	kv("keep_caps", false)
	kv("disable_no_new_privs", false)

	// rlimits. nproc and stack default to type SOFT, which ignores the
	// number, hence the explicit VALUE types.
	if s.Server {
		b.WriteString("rlimit_cpu_type: INF\n")
	} else {
		kv("rlimit_cpu", cpuSeconds(s.Timeout))
		b.WriteString("rlimit_cpu_type: VALUE\n")
	}
	kv("rlimit_fsize", s.TmpBytes>>20)
	kv("rlimit_nofile", rlimitNofile)
	kv("rlimit_nproc", s.MaxProcs)
	b.WriteString("rlimit_nproc_type: VALUE\n")
	kv("rlimit_stack", rlimitStackMiB)
	b.WriteString("rlimit_stack_type: VALUE\n")
	kv("rlimit_core", 0)
	if s.Limiter == cgroups.Rlimit && !s.Server {
		// Without a cgroup, the address space is the only memory limit; it
		// makes an oversized allocation a MemoryError. This is its ceiling:
		// before any user code runs, the harness lowers it to what the
		// interpreter holds (its libraries' mappings, which a jail started
		// ahead has made already) plus the execution's limit (job.RlimitAS).
		kv("rlimit_as", (s.MemoryBytes+addressSpaceHeadroom)>>20)
	} else {
		// With a cgroup, the cgroup limits memory. An address-space limit
		// would count reservations (thread stacks, allocator arenas) rather
		// than memory and break numpy's threads.
		b.WriteString("rlimit_as_type: INF\n")
	}
	limiter := s.Limiter
	if s.Server {
		limiter = cgroups.Rlimit
	}
	switch limiter {
	case cgroups.V1:
		// nsjail's own limit sits above the parent's, so it is the parent
		// (which outlives the jail) that records hitting the limit.
		kv("cgroup_mem_max", s.MemoryBytes+16<<20)
		kv("cgroup_mem_memsw_max", s.MemoryBytes+16<<20)
		kv("cgroup_mem_mount", s.CgroupMemMount)
		kv("cgroup_mem_parent", s.CgroupParent)
		kv("cgroup_pids_max", s.MaxProcs)
		kv("cgroup_pids_mount", s.CgroupPidsMount)
		kv("cgroup_pids_parent", s.CgroupParent)
	case cgroups.V2:
		kv("use_cgroupv2", true)
		kv("cgroupv2_mount", filepath.Join(s.CgroupMemMount, s.CgroupParent))
		kv("cgroup_mem_max", s.MemoryBytes+16<<20)
		kv("cgroup_pids_max", s.MaxProcs)
	}

	if s.Server {
		kv("seccomp_string", seccomp.ServerPolicy())
	} else {
		kv("seccomp_string", seccomp.Policy())
	}

	// The filesystem: an empty read-only root holding only what the
	// interpreter needs, read-only, plus private writable /tmp and /dev/shm.
	mount := func(fields string) { fmt.Fprintf(&b, "mount { %s }\n", fields) }
	// The root holds mount points and symlinks only; nothing on it may be
	// run, nor act as a device or a setuid program.
	mount(`dst: "/" fstype: "tmpfs" rw: false options: "size=1m,mode=755" nosuid: true nodev: true noexec: true`)
	for _, p := range s.Interp.Binds {
		mount(fmt.Sprintf("src: %s dst: %s is_bind: true rw: false nosuid: true nodev: true", quote(p), quote(p)))
	}
	for _, link := range slices.Sorted(maps.Keys(s.Interp.Links)) {
		mount(fmt.Sprintf("src: %s dst: %s is_symlink: true", quote(s.Interp.Links[link]), quote(link)))
	}
	// The jail's own files are written by nsjail from the configuration into
	// a private tmpfs, never from a host directory: no host path shows in the
	// jail's mountinfo, and there is no host file a script could aim a
	// symlink or hardlink trick at.
	for _, f := range append(jailFiles(), s.Files...) {
		mount(fmt.Sprintf("dst: %q src_content: %s rw: false", f.path, quote(f.content)))
	}
	for _, dev := range jailDevices {
		mount(fmt.Sprintf("src: %q dst: %q is_bind: true rw: true nosuid: true", dev, dev))
	}
	// The fork server writes the uid maps of its nested user namespaces
	// through /proc; a script never sees this /proc, only its own.
	mount(fmt.Sprintf(`dst: "/proc" fstype: "proc" rw: %t nosuid: true nodev: true noexec: true`, s.Server))
	tmpOpts := fmt.Sprintf("size=%d,nr_inodes=16384,mode=1777", s.TmpBytes)
	mount(fmt.Sprintf(`dst: "/tmp" fstype: "tmpfs" rw: true options: %q nosuid: true nodev: true noexec: true`, tmpOpts))
	mount(fmt.Sprintf(`dst: "/dev/shm" fstype: "tmpfs" rw: true options: %q nosuid: true nodev: true noexec: true`, tmpOpts))
	return b.String()
}

// jailDevices are the device nodes a jail has, bound from the host: a user
// namespace cannot mknod.
var jailDevices = []string{"/dev/null", "/dev/zero", "/dev/urandom"}

// jailFile is a file nsjail creates in the jail, read-only.
type jailFile struct{ path, content string }

// jailFiles are the harness and the jail's /etc/passwd and /etc/group.
func jailFiles() []jailFile {
	return []jailFile{
		{"/etc/passwd", "nobody:x:65534:65534:nobody:/tmp:/usr/sbin/nologin\n"},
		{"/etc/group", "nogroup:x:65534:\n"},
		{jailHarness, string(harness.Source)},
	}
}

// addressSpaceHeadroom is what a jail's address-space ceiling allows beyond
// the memory limit, under the rlimit fallback: room for the mappings of
// the interpreter and its preloaded libraries (pandas with pyarrow maps
// about 250 MiB), which the harness's own, lower limit counts from.
const addressSpaceHeadroom = 1 << 30

// jailMatplotlibDir is matplotlib's configuration and cache directory in a
// jail: under /dev/shm, a private tmpfs of each execution like /tmp, so
// that the working directory stays as empty as the request left it.
const jailMatplotlibDir = "/dev/shm/matplotlib"

// jailEnv is the whole environment a script sees: nothing of the service's.
func jailEnv() []string {
	return []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=/tmp",
		"TMPDIR=/tmp",
		"LANG=C.UTF-8",
		// One BLAS thread: more would only contend for the execution's CPU
		// share, and OpenBLAS threads can hang exit under memory limits.
		"OPENBLAS_NUM_THREADS=1",
		"OMP_NUM_THREADS=1",
		"MKL_NUM_THREADS=1",
		"NUMEXPR_NUM_THREADS=1",
		// matplotlib draws to files and buffers only, and keeps its cache
		// in the execution's own tmpfs, where the harness links the font
		// list built at install: nothing of it is shared between executions.
		"MPLBACKEND=Agg",
		// pyarrow's allocator (which pandas loads) would start a thread of
		// its own at import to return memory in the background: a process
		// the script did not start, and address space it did not ask for.
		"JE_ARROW_MALLOC_CONF=background_thread:false",
		"MPLCONFIGDIR=" + jailMatplotlibDir,
	}
}

// jailArgv is the command nsjail runs: the interpreter, isolated from any
// PYTHON* variable and user site, unbuffered so that output printed before a
// timeout or a kill still reaches the executor, running the harness (or, in
// the fork server's jail, the server).
func jailArgv(s jailSpec) []string {
	if s.Server {
		return []string{s.Interp.Executable, "-I", "-B", "-u", jailZygote}
	}
	argv := []string{s.Interp.Executable, "-I", "-B", "-u", jailHarness}
	if s.Preload {
		argv = append(argv, "--preload")
	}
	return argv
}

// quote renders a protobuf text-format string, writing every byte outside
// printable ASCII as an octal escape, which the text format reads back as
// that very byte whatever its encoding.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
