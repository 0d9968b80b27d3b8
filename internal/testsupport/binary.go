package testsupport

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/testenv"
)

// Binary is cmd/pyexec running as a child process, as Cloud Run runs it: a
// process of its own with its own cgroups, configured by its environment
// and signalled from outside.
type Binary struct {
	// URL is the service's base URL, http://127.0.0.1:PORT.
	URL string
	// Stdout holds what the service wrote to stdout: its log entries, one
	// JSON line each.
	Stdout *Buffer
	// Stderr holds what it wrote to stderr.
	Stderr *Buffer

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // Wait's, once exited is closed
}

// StartBinary starts cmd/pyexec (built once per test binary) on a free
// loopback port, serving Execute with its log on stdout, with env over the
// test's environment (less what would make it think it runs on Cloud
// Run). It returns once the port takes connections; the sandbox self-test
// may still run. At cleanup it sends SIGTERM, as Cloud Run does, and fails
// t unless the service then exits cleanly within 30 s.
func StartBinary(t testing.TB, env map[string]string) *Binary {
	t.Helper()
	return StartBinaryInCgroups(t, env, nil)
}

// StartBinaryInCgroups is StartBinary with the service placed, before it
// runs, in the cgroups whose cgroup.procs files are given (one per
// hierarchy under cgroup v1): the test binary starts, enters them and
// executes the service (Main does), so that every process the service ever
// starts is in them from its first instruction.
func StartBinaryInCgroups(t testing.TB, env map[string]string, procsFiles []string) *Binary {
	t.Helper()
	RequireRuntime(t)
	bin := serviceBinary(t)
	free, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(free)
	cmd := exec.Command(bin)
	if len(procsFiles) > 0 {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(self)
		env = maps.Clone(env)
		if env == nil {
			env = map[string]string{}
		}
		env[enterCgroupsVar] = strings.Join(procsFiles, "\n")
		env[execServiceVar] = bin
	}
	// If the test binary dies (a -timeout panic skips cleanups), the
	// service shuts down with it instead of living on with its jails.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Env = childEnv(map[string]string{
		"FUNCTION_TARGET": "Execute",
		"PORT":            port,
		"PYEXEC_LOG":      "stdout",
	}, env)
	b := &Binary{URL: "http://127.0.0.1:" + port, Stdout: &Buffer{}, Stderr: &Buffer{}, cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = b.Stdout, b.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() { b.err = cmd.Wait(); close(b.exited) }()
	t.Cleanup(func() {
		b.Stop(t)
		if t.Failed() {
			t.Logf("service stdout (last 4 KiB):\n%s\nstderr (last 4 KiB):\n%s", tail(b.Stdout.String(), 4096), tail(b.Stderr.String(), 4096))
		}
	})

	deadline := time.Now().Add(2 * time.Minute)
	for {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			conn.Close()
			return b
		}
		select {
		case <-b.exited:
			t.Fatalf("pyexec exited before it listened: %v\nstderr:\n%s", b.err, b.Stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pyexec did not listen on port %s in time; stderr:\n%s", port, b.Stderr)
		}
	}
}

// Pid is the service process's ID.
func (b *Binary) Pid() int { return b.cmd.Process.Pid }

// Signal sends sig to the service process.
func (b *Binary) Signal(sig os.Signal) error { return b.cmd.Process.Signal(sig) }

// Exited is closed once the service process has exited.
func (b *Binary) Exited() <-chan struct{} { return b.exited }

// Err is how the process ended (nil: exit code 0), once Exited is closed.
func (b *Binary) Err() error {
	<-b.exited
	return b.err
}

// Stop sends SIGTERM, as Cloud Run does, and fails t unless the service
// exits cleanly within 30 s (it is killed then). A service that already
// exited is left as it is.
func (b *Binary) Stop(t testing.TB) {
	t.Helper()
	select {
	case <-b.exited:
		return
	default:
	}
	_ = b.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
		if b.err != nil {
			t.Errorf("pyexec ended with %v after SIGTERM, want a clean exit; stderr:\n%s", b.err, b.Stderr)
		}
	case <-time.After(30 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
		t.Errorf("pyexec did not exit within 30 s of SIGTERM")
	}
}

// Health polls GET /healthz until it answers want, failing t after two
// minutes, and returns the last body.
func (b *Binary) Health(t testing.TB, want int) map[string]any {
	t.Helper()
	var body map[string]any
	PollUntil(t, 2*time.Minute, fmt.Sprintf("/healthz to answer %d", want), func() bool {
		resp, err := http.Get(b.URL + "/healthz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		body = nil
		_ = json.Unmarshal(raw, &body)
		return resp.StatusCode == want
	})
	return body
}

// Entries returns the log entries the service has written so far.
func (b *Binary) Entries(t testing.TB) []map[string]any {
	t.Helper()
	return b.Stdout.Entries(t, false)
}

var (
	buildOnce sync.Once
	buildDir  string
	builtBin  string
	buildErr  error
)

// serviceBinary builds cmd/pyexec once per test binary, unless
// PYEXEC_SERVICE_BINARY names one built already (where there is no Go
// toolchain: the image's own binary, in a virtual machine).
func serviceBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("PYEXEC_SERVICE_BINARY"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("the go command is needed to build cmd/pyexec: %w", err)
			return
		}
		if buildDir, err = os.MkdirTemp("", "pyexec-bin-"); err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(buildDir, "pyexec")
		out, err := exec.Command(goTool, "build", "-o", builtBin, "github.com/pyexec/pyexec/cmd/pyexec").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build cmd/pyexec: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// The variables by which StartBinaryInCgroups has a test binary enter
// cgroups and execute the service.
const (
	enterCgroupsVar = "PYEXEC_TEST_ENTER_CGROUPS"
	execServiceVar  = "PYEXEC_TEST_EXEC_SERVICE"
)

// Main runs a package's tests, then removes the binary StartBinary built.
// Packages that use StartBinary call it from TestMain. Started by
// StartBinaryInCgroups, it instead enters the cgroups and becomes the
// service.
func Main(m *testing.M) {
	if bin := os.Getenv(execServiceVar); bin != "" {
		enterAndExec(bin, strings.Split(os.Getenv(enterCgroupsVar), "\n"))
	}
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// enterAndExec writes this process's pid to each cgroup.procs file and
// executes bin in its place, without the two variables that led here.
func enterAndExec(bin string, procsFiles []string) {
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, f := range procsFiles {
		if err := os.WriteFile(f, pid, 0); err != nil {
			fmt.Fprintf(os.Stderr, "entering the cgroup of %s: %v\n", f, err)
			os.Exit(2)
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != enterCgroupsVar && k != execServiceVar {
			env = append(env, kv)
		}
	}
	err := syscall.Exec(bin, []string{bin}, env)
	fmt.Fprintf(os.Stderr, "executing %s: %v\n", bin, err)
	os.Exit(2)
}

// childEnv is the test's environment without what would make the child
// think it runs on Cloud Run (and look for a metadata server) or serve
// something else, plus the given variables (a later set wins).
func childEnv(sets ...map[string]string) []string {
	drop := map[string]bool{
		"K_SERVICE": true, "K_REVISION": true, "K_CONFIGURATION": true,
		"FUNCTION_TARGET": true, "PORT": true, "PYEXEC_LOG": true, "PYEXEC_RESULT_TOPIC": true,
		"PUBSUB_EMULATOR_HOST": true, "GOOGLE_CLOUD_PROJECT": true,
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			env = append(env, kv)
		}
	}
	// exec.Cmd keeps the last value of a variable set twice.
	for _, set := range sets {
		for k, v := range set {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
