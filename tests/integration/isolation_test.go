//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/pyexec/pyexec/internal/pyprobe"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// The security model (README and SECURITY.md): no network, no view of the
// host's files, processes or environment, nothing kept from one execution
// to the next. Each test asks from inside the jail and checks the answer
// from outside.

// isolationService is one service for the isolation tests of a test
// function, with a canary in the service's environment.
func isolationService(t *testing.T) (*testsupport.Service, string) {
	t.Helper()
	canary := "pyexec-canary-" + uuid.NewString()
	t.Setenv("PYEXEC_TEST_CANARY", canary)
	return testsupport.StartService(t, map[string]string{"PYEXEC_QUEUE": "64"}), canary
}

// runner runs a script through one of the entry points.
type runner func(*testsupport.Service, testing.TB, string) testsupport.Response

// runJSON runs script with run, requires success and decodes its result
// into v.
func runJSON(t *testing.T, ts *testsupport.Service, run runner, what, script string, v any) {
	t.Helper()
	r := run(ts, t, script)
	if r.Status != 200 {
		t.Fatalf("%s %s = %d %s, want 200", r.Request, what, r.Status, testsupport.Clip(r.Raw))
	}
	if err := json.Unmarshal(r.Result, v); err != nil {
		t.Fatalf("%s %s: result %s: %v", r.Request, what, r.Result, err)
	}
}

func TestScriptsHaveNoNetwork(t *testing.T) {
	ts, _ := isolationService(t)
	addr4, accepted4, err := testsupport.Listen(t, "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot listen on 127.0.0.1: %v", err)
	}
	targets := []string{fmt.Sprintf("('127.0.0.1', %d)", addr4.(*net.TCPAddr).Port)}
	addr6, accepted6, err := testsupport.Listen(t, "tcp6", "[::1]:0")
	have6 := err == nil
	if have6 {
		targets = append(targets, fmt.Sprintf("('::1', %d)", addr6.(*net.TCPAddr).Port))
	}
	script := `import socket

def attempt(addr):
    family = socket.AF_INET6 if ':' in addr[0] else socket.AF_INET
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
    except OSError as e:
        return 'socket: %s' % e
    try:
        s.settimeout(3)
        s.connect(addr)
        return 'connected'
    except OSError as e:
        return 'connect: %s' % e

def main():
    with open('/proc/net/dev') as f:
        interfaces = sorted(line.split(':')[0].strip() for line in f.readlines()[2:])
    return {
        'interfaces': interfaces,
        'attempts': [attempt(a) for a in [` + strings.Join(targets, ", ") + `]],
    }
`
	for _, via := range entryPoints {
		t.Run(via.name, func(t *testing.T) {
			var got struct {
				Interfaces []string `json:"interfaces"`
				Attempts   []string `json:"attempts"`
			}
			runJSON(t, ts, via.run, "a connect to the host's loopback", script, &got)
			if len(got.Interfaces) != 1 || got.Interfaces[0] != "lo" {
				t.Errorf("network interfaces in the jail = %v, want only lo", got.Interfaces)
			}
			t.Logf("from the jail: %v", got.Attempts)
			for i, a := range got.Attempts {
				if a == "connected" {
					t.Errorf("connect to %s from the jail succeeded, want it to fail", targets[i])
				}
			}
			if n := accepted4.Load(); n != 0 {
				t.Errorf("the listener on 127.0.0.1 accepted %d connections from the jail, want 0", n)
			}
			if have6 {
				if n := accepted6.Load(); n != 0 {
					t.Errorf("the listener on ::1 accepted %d connections from the jail, want 0", n)
				}
			}
		})
	}
}

func TestScriptsCannotSeeTheHost(t *testing.T) {
	ts, canary := isolationService(t)

	// A marker in the test's temporary directory, and the repository's
	// go.mod, which is not under /tmp.
	marker := filepath.Join(t.TempDir(), "host-marker")
	if err := os.WriteFile(marker, []byte(canary), 0o644); err != nil {
		t.Fatal(err)
	}
	wd := testsupport.RepoRoot(t)
	hostFile := filepath.Join(wd, "go.mod")

	for _, via := range entryPoints {
		t.Run(via.name, func(t *testing.T) {
			t.Run("host files are invisible", func(t *testing.T) {
				t.Parallel()
				script := fmt.Sprintf(`import os

def main():
    seen = [p for p in [%q, %q, %q, '/etc/shadow', '/etc/hostname', '/root', '/home', '/var', '/sys/kernel', '/run'] if os.path.exists(p)]
    return {'seen': seen, 'etc': sorted(os.listdir('/etc')), 'root': sorted(os.listdir('/'))}
`, marker, hostFile, wd)
				var got struct {
					Seen []string `json:"seen"`
					Etc  []string `json:"etc"`
					Root []string `json:"root"`
				}
				runJSON(t, ts, via.run, "looking for host files", script, &got)
				if len(got.Seen) != 0 {
					t.Errorf("the jail sees host paths %v, want none", got.Seen)
				}
				for _, name := range got.Etc {
					switch name {
					case "passwd", "group", "ld.so.cache", "alternatives", "localtime":
					default:
						t.Errorf("/etc in the jail holds %q, want only what the interpreter needs (all: %v)", name, got.Etc)
					}
				}
				for _, name := range got.Root {
					if name == "home" || name == "root" || name == "var" || name == "sys" || name == "work" {
						t.Errorf("/ in the jail holds %q (all: %v)", name, got.Root)
					}
				}
			})

			t.Run("host processes are invisible", func(t *testing.T) {
				t.Parallel()
				script := `import os

def main():
    procs = {}
    for p in os.listdir('/proc'):
        if p.isdigit():
            try:
                with open('/proc/%s/cmdline' % p, 'rb') as f:
                    procs[p] = f.read().replace(b'\0', b' ').decode(errors='replace')
            except OSError:
                procs[p] = ''
    return {'pid': os.getpid(), 'procs': procs}
`
				var got struct {
					PID   int               `json:"pid"`
					Procs map[string]string `json:"procs"`
				}
				runJSON(t, ts, via.run, "listing processes", script, &got)
				if _, ok := got.Procs[fmt.Sprint(got.PID)]; !ok || len(got.Procs) > 2 {
					t.Errorf("the jail (pid %d) sees processes %v, want only its own", got.PID, got.Procs)
				}
				for pid, cmd := range got.Procs {
					if !strings.Contains(cmd, "python") {
						t.Errorf("the jail sees process %s %q, which is not the script's interpreter", pid, cmd)
					}
				}
			})

			t.Run("the service's environment is invisible", func(t *testing.T) {
				t.Parallel()
				script := `import os

def main():
    with open('/proc/self/environ', 'rb') as f:
        raw = f.read().decode(errors='replace')
    with open('/proc/1/environ', 'rb') as f:
        init = f.read().decode(errors='replace')
    return {'environ': dict(os.environ), 'raw': raw, 'init': init}
`
				var got struct {
					Environ map[string]string `json:"environ"`
					Raw     string            `json:"raw"`
					Init    string            `json:"init"`
				}
				runJSON(t, ts, via.run, "reading the environment", script, &got)
				all := fmt.Sprint(got.Environ) + got.Raw + got.Init
				if strings.Contains(all, canary) || strings.Contains(all, "PYEXEC_TEST_CANARY") {
					t.Errorf("the canary of the service's environment is visible in the jail: %v", got.Environ)
				}
				for _, name := range []string{"PYEXEC_NSJAIL", "PYEXEC_PYTHON", "PYEXEC_RUNTIME", "GOPATH", "USER", "PWD"} {
					if _, ok := got.Environ[name]; ok {
						t.Errorf("the service's %s is visible in the jail", name)
					}
				}
			})

			t.Run("the script runs unprivileged", func(t *testing.T) {
				t.Parallel()
				script := pyprobe.ProcStatus + `import os

def main():
    status = proc_status()
    return {'uid': os.getuid(), 'euid': os.geteuid(), 'gid': os.getgid(), 'groups': os.getgroups(),
            'CapEff': status['CapEff'], 'CapPrm': status['CapPrm'], 'CapAmb': status['CapAmb'],
            'NoNewPrivs': status['NoNewPrivs'], 'Seccomp': status['Seccomp']}
`
				var got struct {
					UID, EUID, GID         int
					Groups                 []int
					CapEff, CapPrm, CapAmb string
					NoNewPrivs, Seccomp    string
				}
				runJSON(t, ts, via.run, "asking who it is", script, &got)
				const none = "0000000000000000"
				if got.UID != 65534 || got.EUID != 65534 || got.GID != 65534 {
					t.Errorf("uid/euid/gid in the jail = %d/%d/%d, want 65534", got.UID, got.EUID, got.GID)
				}
				if got.CapEff != none || got.CapPrm != none || got.CapAmb != none {
					t.Errorf("capabilities in the jail: CapEff %s CapPrm %s CapAmb %s, want none", got.CapEff, got.CapPrm, got.CapAmb)
				}
				if got.NoNewPrivs != "1" || got.Seccomp != "2" {
					t.Errorf("NoNewPrivs %s Seccomp %s, want 1 and 2 (filter)", got.NoNewPrivs, got.Seccomp)
				}
			})

			t.Run("writes outside /tmp fail", func(t *testing.T) {
				t.Parallel()
				script := `import os, sys

def main():
    written = []
    for d in ['/', '/etc', '/usr', '/pyexec', '/proc', os.path.dirname(os.__file__), sys.prefix, '/dev']:
        p = os.path.join(d, 'pyexec-write-test')
        try:
            with open(p, 'w') as f:
                f.write('x')
            written.append(p)
        except OSError:
            pass
    for p in ['/etc/passwd', '/pyexec/harness.py', os.__file__]:
        try:
            with open(p, 'a') as f:
                f.write('x')
            written.append(p)
        except OSError:
            pass
    with open('/tmp/ok', 'w') as f:
        f.write('ok')
    return written
`
				var written []string
				runJSON(t, ts, via.run, "writing outside /tmp", script, &written)
				if len(written) != 0 {
					t.Errorf("the jail could write %v, want only /tmp writable", written)
				}
			})
		})
	}
}

func TestNothingPersistsBetweenExecutions(t *testing.T) {
	ts, _ := isolationService(t)
	// What one entry point's script leaves, no later script sees, through
	// either.
	for _, writer := range entryPoints {
		t.Run("written through "+writer.name, func(t *testing.T) {
			name := "left-by-" + uuid.NewString()
			write := fmt.Sprintf(`import os

def main():
    for d in ['/tmp', '/dev/shm']:
        with open(os.path.join(d, %q), 'w') as f:
            f.write('left behind')
    return sorted(os.listdir('/tmp')) + sorted(os.listdir('/dev/shm'))
`, name)
			var listed []string
			runJSON(t, ts, writer.run, "writing to /tmp", write, &listed)
			if len(listed) != 2 {
				t.Errorf("a fresh /tmp and /dev/shm held %v, want only the files just written", listed)
			}
			check := fmt.Sprintf(`import os

def main():
    return [p for p in ['/tmp/%s', '/dev/shm/%s'] if os.path.exists(p)] + os.listdir('/tmp') + os.listdir('/dev/shm')
`, name, name)
			for i := 0; i < 2; i++ {
				for _, reader := range entryPoints {
					var found []string
					runJSON(t, ts, reader.run, "looking for the last execution's files", check, &found)
					if len(found) != 0 {
						t.Errorf("execution %d through %s after the writer sees %v, want an empty /tmp and /dev/shm", i+1, reader.name, found)
					}
				}
			}
		})
	}
}

func TestTmpIsSizeCapped(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_TMP_MB": "4"})
	r := ts.Execute(t, `def main():
    block = b'x' * (1 << 20)
    written = 0
    try:
        with open('/tmp/big', 'wb') as f:
            for _ in range(64):
                f.write(block)
                f.flush()
                written += 1
    except OSError as e:
        return {'mib': written, 'error': type(e).__name__}
    return {'mib': written, 'error': None}
`)
	var got struct {
		MiB   int     `json:"mib"`
		Error *string `json:"error"`
	}
	if r.Status != 200 || json.Unmarshal(r.Result, &got) != nil {
		t.Fatalf("POST /execute filling /tmp = %d %s, want 200", r.Status, testsupport.Clip(r.Raw))
	}
	if got.Error == nil || got.MiB > 4 {
		t.Errorf("writing 64 MiB to a 4 MiB /tmp wrote %d MiB (error %v), want it stopped at the cap", got.MiB, deref(got.Error))
	}
}
