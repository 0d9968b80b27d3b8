package jail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor/internal/uids"
	"github.com/pyexec/pyexec/internal/pyprobe"
)

// selfTestScript reports, from inside a jail, the facts the isolation
// promises. The executor compares them with what they must be.
const selfTestScript = pyprobe.ProcStatus + `
import ctypes, os, socket

def main():
    status = proc_status()
    libc = ctypes.CDLL(None, use_errno=True)
    # A user namespace needs no privilege to create, so only the seccomp
    # filter can refuse it; mount needs privilege in some namespace.
    unshare = libc.unshare(0x10000000) == 0
    mounted = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) == 0
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        inet = True
    except OSError:
        inet = False
    try:
        open("/usr/.pyexec-self-test", "w")
        usr_writable = True
    except OSError:
        usr_writable = False
    with open("/proc/net/dev") as f:
        interfaces = sorted(line.split(":")[0].strip() for line in f.readlines()[2:])
    return {
        "uid": os.getuid(),
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "interfaces": interfaces,
        "env": sorted(os.environ),
        "inet": inet,
        "usr_writable": usr_writable,
        "processes": sorted(p for p in os.listdir("/proc") if p.isdigit()),
        "capabilities": [status.get(k, "") for k in ("CapEff", "CapPrm", "CapInh", "CapAmb")],
        "no_new_privs": status.get("NoNewPrivs", ""),
        "seccomp": status.get("Seccomp", ""),
        "unshare": unshare,
        "mount": mounted,
        "tmp": os.listdir("/tmp"),
    }
`

type selfTestFacts struct {
	UID         int      `json:"uid"`
	PID         int      `json:"pid"`
	Hostname    string   `json:"hostname"`
	Interfaces  []string `json:"interfaces"`
	Env         []string `json:"env"`
	Inet        bool     `json:"inet"`
	USRWritable bool     `json:"usr_writable"`
	Processes   []string `json:"processes"`
	Caps        []string `json:"capabilities"`
	NoNewPrivs  string   `json:"no_new_privs"`
	Seccomp     string   `json:"seccomp"`
	Unshare     bool     `json:"unshare"`
	Mount       bool     `json:"mount"`
	Tmp         []string `json:"tmp"`
}

// selfTestTimeout is the wall-clock limit of each self-test script, whatever
// the service's own: the scripts are the service's, and on a loaded machine
// a tight service limit must not fail the self-test (or pass it for the
// wrong reason, as a probe killed by the clock before its memory limit).
const selfTestTimeout = time.Minute

// selfTestMemoryLimit is the most the self-test's memory probe may fill
// before its limit stops it.
const selfTestMemoryLimit = 48 << 20

// selfTest runs the isolation check and the memory-limit probe through the
// same path as every execution.
func (e *Engine) selfTest(ctx context.Context, box sandbox) error {
	return e.selfTestWith(ctx, func(ctx context.Context, req Request) (Result, error) {
		return e.runIn(ctx, box, req, false)
	})
}

// selfTestWith is the self-test, each of its scripts run by run.
func (e *Engine) selfTestWith(ctx context.Context, run func(context.Context, Request) (Result, error)) error {
	res, err := run(ctx, Request{ID: "self-test", Script: selfTestScript, Timeout: selfTestTimeout})
	if err != nil {
		return fmt.Errorf("self-test script failed: %w", err)
	}
	var facts selfTestFacts
	if err := json.Unmarshal(res.Value, &facts); err != nil {
		return fmt.Errorf("self-test result: %w", err)
	}
	if err := checkFacts(facts); err != nil {
		return fmt.Errorf("self-test: %w", err)
	}
	// A memory limit must hold: allocating past it has to fail as a
	// memory_limit, not succeed. The probe asks for a limit of its own,
	// far below the service's, and allocates half way between the two: only
	// the request's limit can stop it, so the probe proves both that the
	// kernel enforces the execution's cgroup (or rlimit) and that a
	// request's limit reaches it. The service's own limit is written into
	// every execution's cgroup by the same code at creation (a refused write
	// fails the execution); exceeding it here would cost start-up a
	// fault per page of it, about half a second for 512 MiB.
	probeLimit := min(e.cfg.MemoryBytes/2, selfTestMemoryLimit)
	allocate := probeLimit + (e.cfg.MemoryBytes-probeLimit)/2
	script := fmt.Sprintf("def main():\n    block = bytearray(%d)\n    return len(block)\n", allocate)
	req := Request{ID: "self-test-memory", Script: script, Timeout: selfTestTimeout, MemoryBytes: probeLimit}
	_, err = run(ctx, req)
	if TypeOf(err) != api.ErrorTypeMemoryLimit || !strings.Contains(err.Error(), memoryLimitMessage(limits{memoryBytes: probeLimit})) {
		return fmt.Errorf("self-test: allocating %d MiB under a %d MiB memory limit gave %v, want a memory_limit failure stating that limit",
			allocate>>20, probeLimit>>20, err)
	}
	return nil
}

func checkFacts(f selfTestFacts) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if f.UID != uids.JailUID {
		fail("uid %d, want %d", f.UID, uids.JailUID)
	}
	if f.PID != 1 || !slices.Equal(f.Processes, []string{"1"}) {
		fail("pid %d seeing processes %v, want a pid namespace of its own", f.PID, f.Processes)
	}
	if f.Hostname != "pyexec" {
		fail("hostname %q, want a uts namespace of its own", f.Hostname)
	}
	if !slices.Equal(f.Interfaces, []string{"lo"}) {
		fail("network interfaces %v, want only lo", f.Interfaces)
	}
	if f.Inet {
		fail("an AF_INET socket could be created despite seccomp")
	}
	if f.USRWritable {
		fail("/usr is writable")
	}
	for _, c := range f.Caps {
		if strings.Trim(c, "0") != "" || c == "" {
			fail("capabilities %v, want none", f.Caps)
			break
		}
	}
	if f.NoNewPrivs != "1" {
		fail("no_new_privs is %q, want 1", f.NoNewPrivs)
	}
	if f.Seccomp != "2" {
		fail("seccomp mode %q, want 2 (filter)", f.Seccomp)
	}
	if f.Unshare {
		fail("a new user namespace could be created despite seccomp")
	}
	if f.Mount {
		fail("a file system could be mounted")
	}
	if len(f.Tmp) != 0 {
		fail("/tmp holds %v, want a fresh empty /tmp", f.Tmp)
	}
	allowed := map[string]bool{}
	for _, kv := range jailEnv() {
		allowed[strings.SplitN(kv, "=", 2)[0]] = true
	}
	for _, name := range f.Env {
		// LC_CTYPE is set by Python itself when it coerces the C locale.
		if !allowed[name] && name != "LC_CTYPE" {
			fail("environment variable %s leaked into the jail", name)
		}
	}
	return errors.Join(errs...)
}
