//go:build integration

package adversarial

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyexec/pyexec/internal/pyprobe"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// Kernel surfaces, capabilities, setuid binaries, terminals and inherited
// file descriptors: what a script could use to attack the kernel or climb
// out of the jail.
func TestAdversarialKernelSurfaces(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_CONCURRENCY": "4"})

	t.Run("proc sys and dev are closed", func(t *testing.T) {
		t.Parallel()
		var got map[string]attemptResult
		runProbe(t, ts, `
def write(path, data=b"1"):
    with open(path, "wb") as f:
        f.write(data)
def main():
    return {
        "proc_sys_write": attempt(lambda: write("/proc/sys/kernel/hostname", b"x")),
        "proc_sysrq": attempt(lambda: write("/proc/sysrq-trigger", b"b")),
        "proc_core_pattern": attempt(lambda: write("/proc/sys/kernel/core_pattern", b"|/tmp/x")),
        "sys": attempt(lambda: os.listdir("/sys")),
        "sys_cgroup": attempt(lambda: os.listdir("/sys/fs/cgroup")),
        "kmsg": attempt(lambda: read("/dev/kmsg")),
        "mem": attempt(lambda: read("/dev/mem")),
        "tty": attempt(lambda: read("/dev/tty")),
        "vda": attempt(lambda: read("/dev/vda")),
        "mknod_char": attempt(lambda: os.mknod("/tmp/null2", 0o020666, os.makedev(1, 3))),
        "mknod_block": attempt(lambda: os.mknod("/tmp/disk", 0o060666, os.makedev(254, 0))),
        "dev_list": attempt(lambda: sorted(os.listdir("/dev"))),
    }
`, &got)
		for name, errnos := range map[string][]int{
			"proc_sys_write": {erofs, eacces}, "proc_sysrq": {erofs, eacces, enoent}, "proc_core_pattern": {erofs, eacces},
			"sys": {enoent}, "sys_cgroup": {enoent}, "kmsg": {enoent}, "mem": {enoent}, "tty": {enoent}, "vda": {enoent},
			"mknod_char": {eperm}, "mknod_block": {eperm},
		} {
			if o := got[name]; !o.failedWith(errnos...) {
				t.Errorf("%s %s, want errno in %v", name, o, errnos)
			}
		}
		if o := got["dev_list"]; o.OK == nil || *o.OK != "['null', 'shm', 'urandom', 'zero']" {
			t.Errorf("/dev lists %s, want only null, shm, urandom, zero", o)
		}
	})

	// Raw syscalls through ctypes, by x86_64 number. The seccomp filter
	// answers EPERM (clone3: ENOSYS, so glibc falls back to clone).
	t.Run("dangerous syscalls are denied by number", func(t *testing.T) {
		t.Parallel()
		calls := map[string]string{
			"mount":           "sc(165, 0, 0, 0, 0, 0)",
			"umount2":         "sc(166, 0, 0)",
			"pivot_root":      "sc(155, 0, 0)",
			"chroot":          "sc(161, 0)",
			"unshare_user":    "sc(272, 0x10000000)",
			"unshare_ns":      "sc(272, 0x00020000)",
			"setns":           "sc(308, 0, 0)",
			"clone_newuser":   "sc(56, 0x10000000 | 17, 0, 0, 0, 0)",
			"clone_newnet":    "sc(56, 0x40000000 | 17, 0, 0, 0, 0)",
			"bpf":             "sc(321, 0, 0, 0)",
			"keyctl":          "sc(250, 0, 0, 0, 0, 0)",
			"add_key":         "sc(248, 0, 0, 0, 0, 0)",
			"request_key":     "sc(249, 0, 0, 0, 0)",
			"io_uring_setup":  "sc(425, 1, 0)",
			"io_uring_enter":  "sc(426, 0, 0, 0, 0, 0, 0)",
			"perf_event_open": "sc(298, 0, 0, -1, -1, 0)",
			"userfaultfd":     "sc(323, 0)",
			"init_module":     "sc(175, 0, 0, 0)",
			"finit_module":    "sc(313, 0, 0, 0)",
			"kexec_load":      "sc(246, 0, 0, 0, 0)",
			"open_tree":       "sc(428, -100, 0, 0)",
			"fsopen":          "sc(430, 0, 0)",
			"move_mount":      "sc(429, 0, 0, 0, 0, 0)",
			"syslog":          "sc(103, 3, 0, 0)",
			"iopl":            "sc(172, 3)",
			"ioperm":          "sc(173, 0, 1, 1)",
			"sethostname":     "sc(170, 0, 0)",
			"settimeofday":    "sc(164, 0, 0)",
			"reboot":          "sc(169, 0, 0, 0, 0)",
			"name_to_handle":  "sc(303, 0, 0, 0, 0, 0)",
			"open_by_handle":  "sc(304, 0, 0, 0)",
			"fanotify_init":   "sc(300, 0, 0)",
			"process_vm_rd":   "sc(310, 1, 0, 0, 0, 0, 0)",
			"process_vm_wr":   "sc(311, 1, 0, 0, 0, 0, 0)",
			"clone3":          "sc(435, 0, 0)",
		}
		var b strings.Builder
		b.WriteString("def main():\n    return {\n")
		for name, call := range calls {
			fmt.Fprintf(&b, "        %q: %s,\n", name, call)
		}
		b.WriteString("    }\n")
		var got map[string]int
		runProbe(t, ts, b.String(), &got)
		for name := range calls {
			want := eperm
			if name == "clone3" {
				want = enosys
			}
			if e, ok := got[name]; !ok || e != want {
				t.Errorf("%s: errno %d, want %d from the seccomp filter", name, e, want)
			}
		}
	})

	// The 32-bit entry points. int 0x80 (the i386 ABI) fails the filter's
	// architecture check: the process is killed with SIGSYS. x32 calls
	// (bit 30 set in the number) report x86_64; the filter answers them
	// EPERM, which a kernel without x32 (ENOSYS) would never give, so the
	// test proves the filter and not the kernel stopped them.
	t.Run("32-bit syscall entry points are closed", func(t *testing.T) {
		t.Parallel()
		var got struct {
			Int80  []any          `json:"int80"`
			X32    map[string]int `json:"x32"`
			Native int            `json:"native_getpid"`
		}
		runProbe(t, ts, `
import subprocess
INT80 = r'''
import ctypes, mmap
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
# mov eax, 20 (i386 getpid); int 0x80; ret
m.write(bytes([0xb8, 0x14, 0, 0, 0, 0xcd, 0x80, 0xc3]))
f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
print("returned", f())
'''
X32 = 0x40000000
def main():
    p = subprocess.run([sys.executable, "-c", INT80], capture_output=True, text=True, timeout=20)
    x32 = {
        "getpid": sc(X32 | 39),
        "mount": sc(X32 | 165, 0, 0, 0, 0, 0),
        "unshare": sc(X32 | 272, 0x10000000),
        "socket_inet": sc(X32 | 41, 2, 1, 0),
        "bpf": sc(X32 | 321, 0, 0, 0),
        "ptrace": sc(X32 | 521, 16, 1, 0, 0),
        "ioctl_tiocsti": sc(X32 | 514, 0, 0x5412, 0),
        "keyctl": sc(X32 | 250, 0, 0, 0, 0, 0),
    }
    return {"int80": [p.returncode, p.stdout], "x32": x32, "native_getpid": sc(39)}
`, &got)
		if len(got.Int80) != 2 || fmt.Sprint(got.Int80[0]) != "-31" || got.Int80[1] != "" {
			t.Errorf("int 0x80 getpid gave %v, want the process killed by SIGSYS (-31) before it returned", got.Int80)
		}
		if got.Native != 0 {
			t.Errorf("native getpid failed with errno %d: the probe is broken", got.Native)
		}
		if len(got.X32) == 0 {
			t.Fatal("the x32 probe returned nothing")
		}
		for name, e := range got.X32 {
			if e != eperm {
				t.Errorf("x32 %s: errno %d, want EPERM from the seccomp filter", name, e)
			}
		}
	})

	t.Run("no capabilities and setuid binaries give none", func(t *testing.T) {
		t.Parallel()
		var got struct {
			Status  map[string]string `json:"status"`
			Nosuid  bool              `json:"usr_nosuid"`
			Mount   []any             `json:"mount"`
			Su      []any             `json:"su"`
			Setuid  int               `json:"setuid0"`
			Setgid  int               `json:"setgid0"`
			SetRes  int               `json:"setresuid"`
			Capset  attemptResult     `json:"chown"`
			Suidbin []string          `json:"suid_binaries"`
		}
		runProbe(t, ts, pyprobe.ProcStatus+`
import stat, subprocess
def main():
    status = {k: v for k, v in proc_status().items() if k.startswith("Cap") or k in ("NoNewPrivs", "Seccomp", "Uid", "Gid")}
    suid = [p for p in ("/usr/bin/su", "/usr/bin/passwd", "/usr/bin/mount", "/usr/bin/newgrp", "/usr/bin/chsh", "/usr/bin/sudo")
            if os.path.exists(p) and os.stat(p).st_mode & stat.S_ISUID]
    def run(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            return [p.returncode, p.stdout + p.stderr]
        except OSError as exc:
            return [-1000, repr(exc)]
    return {
        "status": status,
        "usr_nosuid": bool(os.statvfs("/usr").f_flag & os.ST_NOSUID),
        "mount": run(["/usr/bin/mount", "-t", "tmpfs", "none", "/tmp"]),
        "su": run(["/usr/bin/su", "-c", "id -u"]),
        "setuid0": sc(105, 0), "setgid0": sc(106, 0), "setresuid": sc(117, 0, 0, 0),
        "chown": attempt(lambda: os.chown("/tmp", 0, 0)),
        "suid_binaries": suid,
    }
`, &got)
		for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
			if got.Status[k] != "0000000000000000" {
				t.Errorf("%s = %q, want no capabilities", k, got.Status[k])
			}
		}
		if got.Status["NoNewPrivs"] != "1" || got.Status["Seccomp"] != "2" {
			t.Errorf("NoNewPrivs %q Seccomp %q, want 1 and 2 (filter mode)", got.Status["NoNewPrivs"], got.Status["Seccomp"])
		}
		if !got.Nosuid {
			t.Error("/usr is mounted without nosuid in the jail")
		}
		if len(got.Suidbin) == 0 {
			t.Log("no setuid binary in the jail; the setuid runs below prove less")
		}
		for name, res := range map[string][]any{"mount": got.Mount, "su": got.Su} {
			if len(res) != 2 || fmt.Sprint(res[0]) == "0" {
				t.Errorf("running setuid %s succeeded: %v", name, res)
			}
		}
		for name, e := range map[string]int{"setuid(0)": got.Setuid, "setgid(0)": got.Setgid, "setresuid(0)": got.SetRes} {
			// EINVAL: uid and gid 0 are not mapped in the jail's user
			// namespace, so there is no root to become.
			if e != eperm && e != einval {
				t.Errorf("%s: errno %d, want EPERM or EINVAL", name, e)
			}
		}
		if !got.Capset.failedWith(eperm, einval) {
			t.Errorf("chown(/tmp, root) %s, want PermissionError or EINVAL (root is unmapped)", got.Capset)
		}
	})

	// TIOCSTI pushes bytes into a terminal's input. The filter denies it on
	// every descriptor, also with junk in the upper half of the 64-bit
	// argument (the kernel reads cmd as 32 bits); and there is no terminal.
	t.Run("TIOCSTI is denied", func(t *testing.T) {
		t.Parallel()
		var got map[string]int
		runProbe(t, ts, `
import ctypes
def main():
    c = ctypes.create_string_buffer(b"x")
    out = {}
    for fd in (0, 1, 2):
        out["fd%d" % fd] = sc(16, fd, 0x5412, ctypes.addressof(c))
        out["fd%d_high_bits" % fd] = sc(16, fd, 0x100005412, ctypes.addressof(c))
    try:
        os.open("/dev/tty", os.O_RDWR)
        out["dev_tty"] = 0
    except OSError as exc:
        out["dev_tty"] = exc.errno
    return out
`, &got)
		for name, e := range got {
			want := eperm
			if name == "dev_tty" {
				want = enoent
			}
			if e != want {
				t.Errorf("TIOCSTI %s: errno %d, want %d", name, e, want)
			}
		}
		if len(got) != 7 {
			t.Errorf("probe returned %v, want 7 entries", got)
		}
	})

	// Descriptors 0..1023: every open one must be stdin (/dev/null), a
	// pipe the executor made, or what the interpreter opened itself; none
	// may be a host file or directory (an open directory outside the jail
	// is a classic escape through openat).
	t.Run("no inherited descriptor leads outside", func(t *testing.T) {
		t.Parallel()
		var got map[string][]any
		runProbe(t, ts, `
import stat
def main():
    out = {}
    for fd in range(1024):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        try:
            target = os.readlink("/proc/self/fd/%d" % fd)
        except OSError as exc:
            target = "unreadable: %r" % exc
        out[str(fd)] = [target, stat.S_ISDIR(st.st_mode), stat.S_ISREG(st.st_mode)]
    return out
`, &got)
		if _, ok := got["0"]; !ok {
			t.Fatalf("the probe saw no descriptor 0: %v", got)
		}
		for fd, v := range got {
			target, isDir, isReg := fmt.Sprint(v[0]), v[1] == true, v[2] == true
			switch {
			case fd == "0" && target != "/dev/null":
				t.Errorf("stdin is %q, want /dev/null", target)
			case isDir:
				t.Errorf("descriptor %s is an open directory %q", fd, target)
			case isReg:
				t.Errorf("descriptor %s is an open regular file %q", fd, target)
			case target == "/dev/null", strings.HasPrefix(target, "pipe:["):
			case asCells && fd == "3" && strings.HasPrefix(target, "socket:["):
				// A session's control socket, on which the executor hands
				// it each cell; its peer reads only "done" from it.
			default:
				t.Errorf("descriptor %s refers to %q, want /dev/null or a pipe", fd, target)
			}
		}
	})

	// Unix sockets work inside the jail (multiprocessing needs them), but
	// no host socket is reachable: not a path-named one (the host's
	// filesystem is not there) and not an abstract one (abstract names
	// belong to the network namespace).
	t.Run("unix sockets reach nothing on the host", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		path := filepath.Join(dir, "host.sock")
		_, pathAccepted, err := testsupport.Listen(t, "unix", path)
		if err != nil {
			t.Fatal(err)
		}
		abstract := fmt.Sprintf("@pyexec-adversarial-%d", os.Getpid())
		_, absAccepted, err := testsupport.Listen(t, "unix", abstract)
		if err != nil {
			t.Fatal(err)
		}

		var got map[string]attemptResult
		runProbe(t, ts, fmt.Sprintf(`
import socket
def connect(addr):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(addr)
    s.sendall(b"hello from the jail")
def pair():
    a, b = socket.socketpair()
    a.sendall(b"x")
    return b.recv(1)
def main():
    return {"path": attempt(lambda: connect(%q)),
            "abstract": attempt(lambda: connect("\0" + %q)),
            "docker": attempt(lambda: connect("/var/run/docker.sock")),
            "pair": attempt(pair)}
`, path, strings.TrimPrefix(abstract, "@")), &got)
		if o := got["pair"]; o.OK == nil || *o.OK != "b'x'" {
			t.Errorf("a socketpair inside the jail %s, want it to work", o)
		}
		if o := got["path"]; !o.failedWith(enoent) {
			t.Errorf("connecting to the host socket %s %s, want FileNotFoundError", path, o)
		}
		if o := got["abstract"]; !o.failedWith(econnre) {
			t.Errorf("connecting to the host's abstract socket %s %s, want ConnectionRefusedError", abstract, o)
		}
		if o := got["docker"]; !o.failedWith(enoent) {
			t.Errorf("connecting to docker.sock %s, want FileNotFoundError", o)
		}
		if n := pathAccepted.Load() + absAccepted.Load(); n != 0 {
			t.Errorf("the host's unix listeners accepted %d connections from the jail", n)
		}
	})
}
