//go:build integration

package jail

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor/internal/uids"
)

// The isolation every mode promises, proved with real sandboxes: each mode
// passes the self-test, concurrent executions cannot reach each other, and
// nothing of one execution reaches the next.

var allModes = []Mode{ModeCold, ModePool, ModeFork}

// modeExecutor starts an executor in mode whose self-test must pass, and
// shuts it down at cleanup, failing if it leaves a cgroup behind.
func modeExecutor(t *testing.T, mode Mode) *Engine {
	t.Helper()
	cfg := realConfig(t)
	cfg.Mode = mode
	cfg.Concurrency = 2
	cfg.Queue = 8
	cfg.Timeout = 20 * time.Second
	return startExecutor(t, cfg)
}

func runJSON(t *testing.T, e *Engine, script string, into any) {
	t.Helper()
	res, err := e.Run(context.Background(), Request{Script: script})
	if err != nil {
		t.Fatalf("Run = %v (stdout %q), want success", err, res.Stdout)
	}
	if err := json.Unmarshal(res.Value, into); err != nil {
		t.Fatalf("result %s: %v", res.Value, err)
	}
}

func TestEveryModePassesTheIsolationSelfTest(t *testing.T) {
	for _, mode := range allModes {
		t.Run(string(mode), func(t *testing.T) {
			e := modeExecutor(t, mode)
			h := e.Health()
			if !h.Ready || h.Mode != string(mode) {
				t.Errorf("Health() = ready %v mode %q, want ready in %s mode", h.Ready, h.Mode, mode)
			}
			if !h.Isolation.Seccomp || h.Isolation.UID != uids.JailUID || len(h.Isolation.Namespaces) != 7 {
				t.Errorf("Health().Isolation = %+v, want seccomp, uid %d and seven namespaces", h.Isolation, uids.JailUID)
			}
		})
	}
}

func TestTheDefaultModeIsTheForkServerWhereItWorks(t *testing.T) {
	e := modeExecutor(t, ModeAuto)
	if h := e.Health(); h.Mode != string(ModeFork) || h.Fallback != "" {
		t.Errorf("Health() = mode %q, fallback %q; want fork mode, no fallback", h.Mode, h.Fallback)
	}
}

// victimScript holds secrets in every place a neighbour might look — a
// file in /tmp and in /dev/shm, an abstract unix socket, a SysV shared
// memory segment, its memory and a child process — and reports whether they
// were all still intact after the neighbour's attack.
const victimScript = `
import ctypes, os, signal, socket, subprocess, sys, time

SECRET = "victim-secret-4e1f"

def main():
    received = []
    signal.signal(signal.SIGTERM, lambda *a: received.append("TERM"))
    signal.signal(signal.SIGUSR1, lambda *a: received.append("USR1"))
    with open("/tmp/victim", "w") as f:
        f.write(SECRET)
    with open("/dev/shm/victim", "w") as f:
        f.write(SECRET)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0pyexec-victim")
    listener.listen(1)
    listener.setblocking(False)
    libc = ctypes.CDLL(None, use_errno=True)
    shm = libc.shmget(0x5eC2, 4096, 0o1666)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    memory = bytearray(SECRET.encode() * 1000)
    print("victim ready", flush=True)
    time.sleep(4)
    try:
        listener.accept()
        connected = True
    except BlockingIOError:
        connected = False
    intact = open("/tmp/victim").read() == SECRET and open("/dev/shm/victim").read() == SECRET
    child_alive = child.poll() is None
    child.kill()
    return {"intact": intact, "connected": connected, "shm": shm >= 0, "signals": received,
            "child_alive": child_alive, "memory": memory[:len(SECRET)].decode() == SECRET}
`

// attackerScript tries every way to reach another execution: see or signal
// its processes, ptrace them or read their memory, open its files, its
// abstract socket or its SysV shared memory.
const attackerScript = `
import ctypes, errno, os, signal, socket

def main():
    libc = ctypes.CDLL(None, use_errno=True)
    me = os.getpid()
    processes = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    signalable = []
    for pid in range(1, 4096):
        if pid == me:
            continue
        try:
            os.kill(pid, 0)
            signalable.append(pid)
        except OSError:
            pass
    traced = []
    for pid in [1] + processes + list(range(2, 300)):
        if libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH
            traced.append(pid)
    class IOVec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
    buf = ctypes.create_string_buffer(64)
    local = IOVec(ctypes.addressof(buf), 64)
    remote = IOVec(0x400000, 64)
    readable = [pid for pid in range(1, 300)
                if libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) > 0]
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect("\0pyexec-victim")
        connected = True
    except OSError:
        connected = False
    shm = libc.shmget(0x5eC2, 0, 0)
    # Every process this one may signal: none but its own.
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    for pid in range(1, 300):
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
    return {"processes": processes, "signalable": signalable, "traced": traced, "readable": readable,
            "tmp": os.listdir("/tmp"), "shm_dir": os.listdir("/dev/shm"), "connected": connected,
            "shm": shm >= 0, "me": me}
`

func TestConcurrentExecutionsCannotReachEachOther(t *testing.T) {
	for _, mode := range allModes {
		t.Run(string(mode), func(t *testing.T) {
			e := modeExecutor(t, mode)
			var victim struct {
				Intact, Connected, Shm, Memory bool
				ChildAlive                     bool `json:"child_alive"`
				Signals                        []string
			}
			var victimOut string
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := e.Run(context.Background(), Request{Script: victimScript})
				victimOut = res.Stdout
				if err != nil {
					t.Errorf("victim: Run = %v (stdout %q), want success", err, res.Stdout)
					return
				}
				if err := json.Unmarshal(res.Value, &victim); err != nil {
					t.Errorf("victim result %s: %v", res.Value, err)
				}
			}()
			time.Sleep(1500 * time.Millisecond) // the victim is set up
			var attacker struct {
				Processes, Signalable, Traced, Readable []int
				Tmp                                     []string
				ShmDir                                  []string `json:"shm_dir"`
				Connected, Shm                          bool
				Me                                      int
			}
			runJSON(t, e, attackerScript, &attacker)
			wg.Wait()

			if len(attacker.Processes) != 1 || attacker.Processes[0] != attacker.Me {
				t.Errorf("attacker sees processes %v, want only itself (%d)", attacker.Processes, attacker.Me)
			}
			if len(attacker.Signalable) != 0 {
				t.Errorf("attacker can signal pids %v, want none", attacker.Signalable)
			}
			if len(attacker.Traced) != 0 || len(attacker.Readable) != 0 {
				t.Errorf("attacker ptraced %v and read the memory of %v, want none", attacker.Traced, attacker.Readable)
			}
			if len(attacker.Tmp) != 0 || len(attacker.ShmDir) != 0 {
				t.Errorf("attacker sees /tmp %v and /dev/shm %v, want both empty", attacker.Tmp, attacker.ShmDir)
			}
			if attacker.Connected || attacker.Shm {
				t.Errorf("attacker reached the victim's abstract socket (%v) or SysV memory (%v)", attacker.Connected, attacker.Shm)
			}
			if !victim.Intact || victim.Connected || !victim.Shm || !victim.ChildAlive || !victim.Memory || len(victim.Signals) != 0 {
				t.Errorf("victim = %+v (stdout %q), want everything intact, no connection, no signal", victim, victimOut)
			}
		})
	}
}

// polluteScript leaves every trace it can: files, environment, module and
// builtin state, threads, a child process and a SysV segment.
const polluteScript = `
import builtins, json, os, string, subprocess, sys, threading, time, ctypes
import pandas, numpy

def main():
    open("/tmp/left", "w").write("x")
    open("/dev/shm/left", "w").write("x")
    os.environ["PYEXEC_LEFT"] = "1"
    os.chdir("/dev/shm")
    builtins.len = lambda x: 42
    builtins.LEFT = True
    string.ascii_letters = "poisoned"
    pandas.LEFT = True
    numpy.random.seed(7)
    sys.modules["left_module"] = string
    sys.path.insert(0, "/tmp")
    threading.Thread(target=time.sleep, args=(60,)).start()
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ctypes.CDLL(None).shmget(0x1eF7, 4096, 0o1666)
    return "polluted"
`

// checkScript reports every trace polluteScript could have left.
const checkScript = `
import builtins, os, string, sys, threading, ctypes

def main():
    import pandas, numpy
    return {
        "tmp": os.listdir("/tmp"), "shm": os.listdir("/dev/shm"),
        "env": "PYEXEC_LEFT" in os.environ, "cwd": os.getcwd(),
        "len": len([1, 2]), "builtin": hasattr(builtins, "LEFT"),
        "letters": string.ascii_letters[:3], "pandas": hasattr(pandas, "LEFT"),
        "modules": "left_module" in sys.modules, "path": "/tmp" in sys.path,
        "threads": threading.active_count(),
        "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "sysv": ctypes.CDLL(None).shmget(0x1eF7, 0, 0) >= 0,
        "random": numpy.random.randint(0, 1 << 30),
    }
`

func TestNothingOfOneExecutionReachesTheNext(t *testing.T) {
	for _, mode := range allModes {
		t.Run(string(mode), func(t *testing.T) {
			e := modeExecutor(t, mode)
			res, err := e.Run(context.Background(), Request{Script: polluteScript})
			if err != nil || string(res.Value) != `"polluted"` {
				t.Fatalf("pollute: Run = %s, %v; want \"polluted\"", res.Value, err)
			}
			// Enough executions to go through every sandbox started ahead
			// of the polluting one, and some started after it.
			randoms := map[int]bool{}
			for i := 0; i < 5; i++ {
				var got struct {
					Tmp, Shm                                  []string
					Env, Builtin, Pandas, Modules, Path, Sysv bool
					Cwd, Letters                              string
					Len, Threads, Random                      int
					Processes                                 []int
				}
				runJSON(t, e, checkScript, &got)
				if len(got.Tmp) != 0 || len(got.Shm) != 0 || got.Env || got.Cwd != "/tmp" {
					t.Errorf("run %d: /tmp %v, /dev/shm %v, env leaked %v, cwd %q; want a fresh state", i, got.Tmp, got.Shm, got.Env, got.Cwd)
				}
				if got.Len != 2 || got.Builtin || got.Letters != "abc" || got.Pandas || got.Modules || got.Path {
					t.Errorf("run %d: interpreter state leaked: %+v", i, got)
				}
				if got.Threads != 1 || len(got.Processes) != 1 || got.Sysv {
					t.Errorf("run %d: %d threads, processes %v, SysV segment %v; want one thread, one process, none", i, got.Threads, got.Processes, got.Sysv)
				}
				randoms[got.Random] = true
			}
			if len(randoms) < 4 {
				t.Errorf("numpy's global random state repeats across executions: %v", randoms)
			}
		})
	}
}

// A request's tighter memory limit holds in every mode, however small,
// counted from what a jail started ahead already holds (pool mode's
// preloaded interpreter, which alone is above this one): a small script
// runs, a larger allocation is a memory_limit that states the request's
// limit. Its timeout holds too.
func TestARequestsTighterLimitsHoldInEveryMode(t *testing.T) {
	for _, mode := range allModes {
		t.Run(string(mode), func(t *testing.T) {
			e := modeExecutor(t, mode)
			ctx := context.Background()
			small := "def main():\n    return len(bytearray(4 << 20))\n"
			if res, err := e.Run(ctx, Request{Script: small, MemoryBytes: 32 << 20}); err != nil || string(res.Value) != "4194304" {
				t.Errorf("%s mode: 4 MiB under a 32 MiB limit = %s, %v; want 4194304", mode, res.Value, err)
			}
			large := "def main():\n    return len(bytearray(48 << 20))\n"
			_, err := e.Run(ctx, Request{Script: large, MemoryBytes: 32 << 20})
			if TypeOf(err) != api.ErrorTypeMemoryLimit || !strings.Contains(err.Error(), "Memory limit exceeded (32 MB)") {
				t.Errorf("%s mode: 48 MiB under a 32 MiB limit = %v, want memory_limit (32 MB)", mode, err)
			}
			start := time.Now()
			_, err = e.Run(ctx, Request{Script: "import time\ndef main():\n    time.sleep(30)\n", Timeout: 500 * time.Millisecond})
			if TypeOf(err) != api.ErrorTypeTimeout || !strings.Contains(err.Error(), "Execution timed out after 0.5 seconds") || time.Since(start) > 10*time.Second {
				t.Errorf("%s mode: a 0.5 s limit = %v after %v, want a timeout stating 0.5 seconds, promptly", mode, err, time.Since(start))
			}
		})
	}
}
