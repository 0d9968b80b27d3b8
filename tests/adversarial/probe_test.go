//go:build integration

// Package adversarial attacks the real service over HTTP the way hostile
// scripts do, and asserts precisely what containment means for each attack.
// SECURITY.md maps every attack class to its test.
package adversarial

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/leakcheck"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// probePrelude is prepended to probe scripts. attempt runs fn and tells what
// happened in a form the test can compare exactly; sc makes a raw syscall
// through libc and returns its errno (0 on success).
const probePrelude = `
import ctypes, errno, os, sys

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

def sc(nr, *args):
    ctypes.set_errno(0)
    r = _libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return 0 if r != -1 else ctypes.get_errno()

def attempt(fn):
    try:
        value = fn()
    except BaseException as exc:
        return {"error": type(exc).__name__, "errno": getattr(exc, "errno", None) or 0}
    return {"ok": repr(value)[:2000]}

def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()
`

// attemptResult is what attempt() reports.
type attemptResult struct {
	OK    *string `json:"ok"`
	Error string  `json:"error"`
	Errno int     `json:"errno"`
}

func (o attemptResult) String() string {
	if o.OK != nil {
		return "succeeded: " + *o.OK
	}
	return fmt.Sprintf("%s (errno %d)", o.Error, o.Errno)
}

// failedWith tells whether the attempt failed with one of the errnos.
func (o attemptResult) failedWith(errnos ...int) bool {
	if o.OK != nil {
		return false
	}
	for _, e := range errnos {
		if o.Errno == e {
			return true
		}
	}
	return false
}

// Errnos the jail answers with, as Linux numbers them on x86_64.
const (
	eperm   = 1
	enoent  = 2
	esrch   = 3
	eacces  = 13
	exdev   = 18
	enospc  = 28
	erofs   = 30
	efbig   = 27
	einval  = 22
	enosys  = 38
	econnre = 111
)

// asCells: the suite runs every script as the cell of a session of its
// own rather than through POST /execute (PYEXEC_ADVERSARIAL_AS_CELLS=1;
// make test runs the suite both ways), so that a session's process is held
// to what an execution's is.
var asCells = os.Getenv("PYEXEC_ADVERSARIAL_AS_CELLS") == "1"

// execute runs script as asCells says.
func execute(t testing.TB, ts *testsupport.Service, script string) testsupport.Response {
	t.Helper()
	if asCells {
		return ts.RunAsCell(t, script)
	}
	return ts.Execute(t, script)
}

// runProbe runs prelude+script, which must succeed, and decodes its result into
// out. It fails t if the answer is not a 200.
func runProbe(t *testing.T, ts *testsupport.Service, script string, out any) testsupport.Response {
	t.Helper()
	r := execute(t, ts, probePrelude+script)
	if r.Status != http.StatusOK {
		t.Fatalf("probe answered %d %s, want 200", r.Status, testsupport.Clip(r.Raw))
	}
	if out != nil {
		if err := json.Unmarshal(r.Result, out); err != nil {
			t.Fatalf("probe result %s: %v", testsupport.Clip(r.Result), err)
		}
	}
	return r
}

// plantedSecrets are values planted in the service's environment and on the host's
// disk: no response may ever contain one.
type plantedSecrets struct {
	canary    string // in the environment and in every planted file
	credsFile string // a fake service-account key, named by GOOGLE_APPLICATION_CREDENTIALS
	hostFile  string // a plain host file holding the canary
}

// plantSecrets sets fake credentials in the process environment (which is
// the service's: testsupport.StartService runs it in this process) and
// writes files that hold a canary. It must be called before any subtest
// goes parallel.
func plantSecrets(t *testing.T) plantedSecrets {
	t.Helper()
	raw := make([]byte, 12)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	s := plantedSecrets{canary: "PYEXEC-CANARY-" + hex.EncodeToString(raw)}
	dir := t.TempDir()
	s.credsFile = filepath.Join(dir, "service-account.json")
	s.hostFile = filepath.Join(dir, "host-secret.txt")
	creds := fmt.Sprintf(`{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n"}`, s.canary)
	for path, content := range map[string]string{s.credsFile: creds, s.hostFile: s.canary} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", s.credsFile)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIA"+s.canary)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.canary)
	t.Setenv("PYEXEC_TEST_CANARY", s.canary)
	t.Setenv("DATABASE_URL", "postgres://admin:"+s.canary+"@db.internal/prod")
	return s
}

// assertAbsent fails t if the response (body or headers) holds the canary.
func (s plantedSecrets) assertAbsent(t *testing.T, r testsupport.Response) {
	t.Helper()
	if bytes.Contains(r.Raw, []byte(s.canary)) {
		t.Errorf("the response holds the planted canary: %s", testsupport.Clip(r.Raw))
	}
	for name, values := range r.Header {
		if strings.Contains(strings.Join(values, " "), s.canary) {
			t.Errorf("response header %s holds the planted canary", name)
		}
	}
}

// idleProcesses waits until the number of this test process's descendants
// (the service's) holds still and returns it: the count of an idle service.
func idleProcesses(t *testing.T) int {
	t.Helper()
	return testsupport.SettledDescendants(t, os.Getpid())
}

// assertBackToIdle waits until nothing of an execution is left: no process
// called name, no more processes than the idle service had, no execution
// cgroup. It fails t if something stays.
func assertBackToIdle(t *testing.T, ts *testsupport.Service, idle int, name string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		procs := leakcheck.Descendants(os.Getpid())
		named := leakcheck.DescendantsNamed(os.Getpid(), name)
		left := leakcheck.ExecutorLeftovers(ts.Executor)
		if len(procs) <= idle && len(named) == 0 && len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind after the execution: %d processes (idle: %d) [%s], named %s: %v, cgroups %v",
				len(procs), idle, leakcheck.Describe(procs), name, named, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pyLiteral renders v as JSON, which is also a Python literal for strings,
// numbers, and lists and dicts of them.
func pyLiteral(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
