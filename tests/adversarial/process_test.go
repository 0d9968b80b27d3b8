//go:build integration

package adversarial

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/leakcheck"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// Processes: a jail sees only its own processes, cannot signal or trace
// anything outside, and cannot read another execution's memory.
func TestAdversarialProcesses(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_CONCURRENCY": "4"})

	// Two executions at once: the first holds a secret in memory; the
	// second, knowing the first's host pid, tries /proc/<pid>/mem, every
	// /proc entry it can see and process_vm_readv, and must find nothing.
	// The holder names its process, so the test finds its host pid.
	t.Run("an execution cannot read another's memory", func(t *testing.T) {
		secret := "HELD-IN-MEMORY-" + fmt.Sprint(time.Now().UnixNano())
		const holderName = "pyexec-holder"
		var holder testsupport.Response
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder = execute(t, ts, testsupport.NameProcess(holderName)+fmt.Sprintf(`
import signal, time
SECRET = %q * 1000
released = []
signal.signal(signal.SIGUSR1, lambda *_: released.append(1))
def main():
    deadline = time.time() + 25
    while not released and time.time() < deadline:
        time.sleep(0.02)
    return {"released": bool(released), "held": len(SECRET)}
`, secret))
		}()
		// The holder's host pid: the process it named.
		var hostPid int
		testsupport.PollUntil(t, 30*time.Second, "the holder to run", func() bool {
			if pids := leakcheck.DescendantsNamed(os.Getpid(), holderName); len(pids) == 1 {
				hostPid = pids[0]
				return true
			}
			return false
		})
		var got map[string]attemptResult
		r := runProbe(t, ts, fmt.Sprintf(`
import ctypes
HOST_PID = %d
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
def vm_read():
    buf = ctypes.create_string_buffer(4096)
    local = iovec(ctypes.cast(buf, ctypes.c_void_p), 4096)
    remote = iovec(0x400000, 4096)
    e = sc(310, HOST_PID, ctypes.addressof(local), 1, ctypes.addressof(remote), 1, 0)
    if e:
        raise OSError(e, os.strerror(e))
    return buf.raw
def main():
    out = {"mem": attempt(lambda: read("/proc/%%d/mem" %% HOST_PID)),
           "maps": attempt(lambda: read("/proc/%%d/maps" %% HOST_PID)),
           "vm_readv": attempt(vm_read)}
    for pid in os.listdir("/proc"):
        if pid.isdigit() and pid != str(os.getpid()):
            out["proc_" + pid] = attempt(lambda: read("/proc/%%s/cmdline" %% pid))
    return out
`, hostPid), &got)
		// Only now may the holder finish: the host releases it.
		if err := syscall.Kill(hostPid, syscall.SIGUSR1); err != nil {
			t.Errorf("releasing the holder (pid %d): %v", hostPid, err)
		}
		wg.Wait()
		if !strings.Contains(string(holder.Result), `"released":true`) {
			t.Errorf("the holder was not alive through the probe: %s", testsupport.Clip(holder.Raw))
		}
		if holder.Status != 200 {
			t.Errorf("the holder answered %d %s", holder.Status, testsupport.Clip(holder.Raw))
		}
		if strings.Contains(string(r.Raw), secret) {
			t.Errorf("the second execution read the first one's secret: %s", testsupport.Clip(r.Raw))
		}
		for _, k := range []string{"mem", "maps"} {
			if o := got[k]; !o.failedWith(enoent) {
				t.Errorf("reading /proc/<holder>/%s %s, want FileNotFoundError (another pid namespace)", k, o)
			}
		}
		if o := got["vm_readv"]; !o.failedWith(eperm) {
			t.Errorf("process_vm_readv of the holder %s, want EPERM", o)
		}
		for k := range got {
			if strings.HasPrefix(k, "proc_") {
				t.Errorf("the second execution sees a process %s besides itself", k)
			}
		}
	})

	t.Run("a jail lists only its own processes", func(t *testing.T) {
		t.Parallel()
		var got struct {
			Before []string `json:"before"`
			During []string `json:"during"`
			Cmds   []string `json:"cmds"`
		}
		runProbe(t, ts, `
import subprocess
def main():
    before = sorted(p for p in os.listdir("/proc") if p.isdigit())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    # Wait for the child's exec, so its command line is its own.
    while b"time.sleep" not in read("/proc/%d/cmdline" % child.pid):
        pass
    during = sorted(p for p in os.listdir("/proc") if p.isdigit())
    cmds = [read("/proc/%s/cmdline" % p).decode(errors="replace") for p in during]
    child.kill(); child.wait()
    return {"before": before, "during": during, "cmds": cmds}
`, &got)
		if strings.Join(got.Before, ",") != "1" {
			t.Errorf("/proc lists %v before any child, want only the jail's own pid 1", got.Before)
		}
		if len(got.During) != 2 {
			t.Errorf("/proc lists %v with one child, want the jail's two processes", got.During)
		}
		for _, c := range got.Cmds {
			if !strings.Contains(c, "python") && !strings.Contains(c, "sleep") {
				t.Errorf("the jail sees a process running %q, not one of its own", c)
			}
		}
	})

	// The jail's pid 1 is the harness; its parent (nsjail) and the service
	// are outside the pid namespace. Signalling their host pids must find
	// nothing, and kill(-1) reaches only the jail's own processes.
	t.Run("signals cannot reach the service or the host", func(t *testing.T) {
		t.Parallel()
		var got struct {
			PPID    int                      `json:"ppid"`
			Kills   map[string]attemptResult `json:"kills"`
			KillAll attemptResult            `json:"kill_all"`
		}
		runProbe(t, ts, fmt.Sprintf(`
import signal
def main():
    kills = {str(pid): attempt(lambda pid=pid: os.kill(pid, signal.SIGKILL)) for pid in %s}
    return {"ppid": os.getppid(), "kills": kills, "kill_all": attempt(lambda: os.kill(-1, signal.SIGKILL))}
`, pyLiteral([]int{os.Getpid(), os.Getppid()})), &got)
		if got.PPID != 0 {
			t.Errorf("the harness's parent pid is %d, want 0 (its parent is outside its pid namespace)", got.PPID)
		}
		for _, pid := range []int{os.Getpid(), os.Getppid()} {
			if o := got.Kills[fmt.Sprint(pid)]; !o.failedWith(esrch) {
				t.Errorf("kill(%d, SIGKILL) of a host pid %s, want ProcessLookupError", pid, o)
			}
		}
		// kill(-1) from the jail's pid 1 signals only its own processes
		// (none here): ESRCH, and the service lives on.
		if o := got.KillAll; !o.failedWith(esrch) {
			t.Errorf("kill(-1, SIGKILL) %s, want ProcessLookupError (nothing else in the jail)", o)
		}
		if r := execute(t, ts, "def main():\n    return 'alive'"); r.Status != 200 {
			t.Errorf("the service after kill attempts answered %d %s", r.Status, r.Raw)
		}
	})

	t.Run("ptrace of the parent, pid 1 or a child is denied", func(t *testing.T) {
		t.Parallel()
		var got map[string]int
		runProbe(t, ts, `
import signal, time
PTRACE_TRACEME, PTRACE_ATTACH, PTRACE_SEIZE = 0, 16, 0x4206
def main():
    out = {"attach_pid1": sc(101, PTRACE_ATTACH, 1, 0, 0),
           "seize_pid1": sc(101, PTRACE_SEIZE, 1, 0, 0),
           "traceme": sc(101, PTRACE_TRACEME, 0, 0, 0)}
    child = os.fork()
    if child == 0:
        time.sleep(5)
        os._exit(0)
    out["attach_child"] = sc(101, PTRACE_ATTACH, child, 0, 0)
    out["vm_readv_child"] = sc(310, child, 0, 0, 0, 0, 0)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    return out
`, &got)
		for _, call := range []string{"attach_pid1", "seize_pid1", "traceme", "attach_child", "vm_readv_child"} {
			if e, ok := got[call]; !ok || e != eperm {
				t.Errorf("%s: errno %d, want EPERM from the seccomp filter", call, e)
			}
		}
	})

}
