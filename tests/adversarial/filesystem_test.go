//go:build integration

package adversarial

import (
	"fmt"
	"testing"
	"time"

	"github.com/pyexec/pyexec/harness"
	"github.com/pyexec/pyexec/internal/leakcheck"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// Filesystem: nothing outside the private /tmp (and /dev/shm) is writable;
// the files the jail is built with are read-only and cannot be reached
// through symlinks or hardlinks; /tmp's bytes and inodes are capped, private
// and gone after the execution.
func TestAdversarialFilesystem(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_CONCURRENCY": "4", "PYEXEC_TMP_MB": "16"})

	t.Run("nothing outside tmp is writable", func(t *testing.T) {
		t.Parallel()
		paths := []string{"/x", "/usr/x", "/usr/bin/python3", "/usr/bin/x", "/etc/x", "/etc/passwd", "/etc/ld.so.cache",
			"/pyexec/x", "/pyexec/harness.py", "/opt/x", "/proc/x", "/dev/x", "/lib/x"}
		var got map[string]attemptResult
		runProbe(t, ts, fmt.Sprintf(`
def write(p):
    with open(p, "ab") as f:
        f.write(b"pwned")
def main():
    out = {p: attempt(lambda p=p: write(p)) for p in %s}
    # The interpreter and its trees, bound from the host.
    for name, p in (("interpreter", sys.executable), ("venv", os.path.join(sys.prefix, "x")),
                    ("stdlib", os.path.join(os.path.dirname(os.__file__), "x")), ("stdlib_os", os.__file__)):
        out[name] = attempt(lambda p=p: write(p))
    out["tmp"] = attempt(lambda: write("/tmp/ok"))
    out["shm"] = attempt(lambda: write("/dev/shm/ok"))
    out["chmod_harness"] = attempt(lambda: os.chmod("/pyexec/harness.py", 0o777))
    out["rename_passwd"] = attempt(lambda: os.rename("/etc/passwd", "/tmp/passwd"))
    out["unlink_harness"] = attempt(lambda: os.unlink("/pyexec/harness.py"))
    return out
`, pyLiteral(paths)), &got)
		for _, p := range append(paths, "interpreter", "venv", "stdlib", "stdlib_os", "chmod_harness", "rename_passwd", "unlink_harness") {
			// procfs has no way to create a file: ENOENT there.
			if o := got[p]; !o.failedWith(erofs, eacces, eperm, exdev) && !(p == "/proc/x" && o.failedWith(enoent)) {
				t.Errorf("writing %s %s, want a read-only or permission error", p, o)
			}
		}
		for _, p := range []string{"tmp", "shm"} {
			if o := got[p]; o.OK == nil {
				t.Errorf("writing to %s %s, want it writable", p, o)
			}
		}
	})

	// The CVE-2024-28185 class: a script plants links where the service
	// might write or read later. The service writes no file for a jail (its
	// files come from the configuration, its cgroups live under /sys, which
	// the jail has not); this checks both that the links go nowhere and
	// that the next execution and the host are untouched.
	t.Run("symlinks and hardlinks reach no file of the service", func(t *testing.T) {
		var got map[string]attemptResult
		runProbe(t, ts, `
def main():
    out = {}
    for i, target in enumerate(["/pyexec/harness.py", "/etc/passwd", "/proc/self/fd/4", "/proc/1/root/pyexec/harness.py"]):
        out["hardlink_%d" % i] = attempt(lambda t=target, i=i: os.link(t, "/tmp/hard%d" % i))
    for name in ("harness.py", "report", "config", "nsjail.cfg", "passwd", "group", "cgroup.procs", "memory.limit_in_bytes"):
        for d in ("/tmp", "/dev/shm"):
            os.symlink("/pyexec/harness.py", os.path.join(d, name))
    out["symlink_write"] = attempt(lambda: open("/tmp/harness.py", "ab").write(b"pwned"))
    out["symlink_dir"] = attempt(lambda: os.symlink("/", "/tmp/root") or open("/tmp/root/etc/passwd", "ab").write(b"x"))
    return out
`, &got)
		for i := 0; i < 4; i++ {
			if o := got[fmt.Sprintf("hardlink_%d", i)]; !o.failedWith(exdev, eperm, eacces, enoent) {
				t.Errorf("hardlink %d %s, want EXDEV or a permission error", i, o)
			}
		}
		for _, k := range []string{"symlink_write", "symlink_dir"} {
			if o := got[k]; !o.failedWith(erofs, eacces) {
				t.Errorf("%s %s, want a read-only error", k, o)
			}
		}
		// The next execution has its own fresh /tmp and an intact harness.
		var next struct {
			Tmp     []string `json:"tmp"`
			Shm     []string `json:"shm"`
			Harness string   `json:"harness"`
		}
		runProbe(t, ts, `
def main():
    return {"tmp": os.listdir("/tmp"), "shm": os.listdir("/dev/shm"), "harness": read("/pyexec/harness.py", "r")}
`, &next)
		if len(next.Tmp) != 0 || len(next.Shm) != 0 {
			t.Errorf("the next execution's /tmp holds %v and /dev/shm %v, want both empty", next.Tmp, next.Shm)
		}
		if next.Harness != string(harness.Source) {
			t.Error("the next execution's harness differs from the embedded one")
		}
		// On the host, the only things the service made for the jail are
		// its cgroups, gone once the execution is over.
		testsupport.PollUntil(t, 10*time.Second, "the execution's cgroups to go", func() bool { return len(leakcheck.ExecutorLeftovers(ts.Executor)) == 0 })
	})

	// /tmp is a 16 MiB tmpfs with a bounded inode count here: filling it
	// fails inside the script with ENOSPC (or EFBIG from the file-size
	// rlimit), and the next execution starts empty.
	t.Run("tmp bytes and inodes are capped and private", func(t *testing.T) {
		var got struct {
			Bytes      int64 `json:"bytes"`
			BytesErrno int   `json:"bytes_errno"`
			Files      int   `json:"files"`
			FilesErrno int   `json:"files_errno"`
			ShmBytes   int64 `json:"shm_bytes"`
		}
		runProbe(t, ts, `
def fill(d):
    total, chunk = 0, b"x" * (1 << 20)
    try:
        for i in range(1000):
            with open("%s/fill%d" % (d, i), "wb") as f:
                for _ in range(8):
                    f.write(chunk)
                    f.flush()
                    total += len(chunk)
    except OSError as exc:
        return total, exc.errno
    return total, 0
def main():
    b, be = fill("/tmp")
    shm, _ = fill("/dev/shm")
    for name in os.listdir("/tmp"):
        os.unlink("/tmp/" + name)
    n, fe = 0, 0
    try:
        while n < 100000:
            open("/tmp/i%d" % n, "wb").close()
            n += 1
    except OSError as exc:
        fe = exc.errno
    return {"bytes": b, "bytes_errno": be, "files": n, "files_errno": fe, "shm_bytes": shm}
`, &got)
		const limit = 16 << 20
		if got.BytesErrno != enospc && got.BytesErrno != efbig {
			t.Errorf("filling /tmp ended with errno %d after %d bytes, want ENOSPC or EFBIG", got.BytesErrno, got.Bytes)
		}
		if got.Bytes > limit || got.ShmBytes > limit {
			t.Errorf("wrote %d bytes to /tmp and %d to /dev/shm, want at most %d each", got.Bytes, got.ShmBytes, limit)
		}
		if got.FilesErrno != enospc || got.Files > 16384 {
			t.Errorf("created %d files in /tmp, ending with errno %d; want ENOSPC within 16384 inodes", got.Files, got.FilesErrno)
		}
		var next []string
		runProbe(t, ts, `
def main():
    return os.listdir("/tmp") + os.listdir("/dev/shm")
`, &next)
		if len(next) != 0 {
			t.Errorf("the next execution sees %d files left in /tmp and /dev/shm", len(next))
		}
	})
}
