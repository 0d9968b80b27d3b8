package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// selfTestScript reports, from inside a jail, the facts the isolation
// promises. The executor compares them with what they must be.
const selfTestScript = `
import os, socket

def main():
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
}

// selfTest runs the isolation check and a memory-limit probe through the
// same path as every execution.
func (e *Executor) selfTest(ctx context.Context) error {
	e.mu.Lock()
	box := e.box
	e.mu.Unlock()
	res, err := e.runIn(ctx, box, Request{ID: "self-test", Script: selfTestScript})
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
	// The memory limit must hold: allocating past it has to fail as a
	// memory_limit, not succeed.
	probe := fmt.Sprintf("def main():\n    block = bytearray(%d)\n    return len(block)\n", e.cfg.MemoryBytes+64<<20)
	_, err = e.runIn(ctx, box, Request{ID: "self-test-memory", Script: probe})
	if TypeOf(err) != TypeMemoryLimit {
		return fmt.Errorf("self-test: allocating past the memory limit gave %v, want a memory_limit failure", err)
	}
	return nil
}

func checkFacts(f selfTestFacts) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if f.UID != jailUID {
		fail("uid %d, want %d", f.UID, jailUID)
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
