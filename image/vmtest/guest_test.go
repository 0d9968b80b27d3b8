//go:build image

package vmtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyexec/pyexec/image/vm"
	"github.com/pyexec/pyexec/internal/testenv"
)

// Inputs from image/test.sh.
var (
	kernel      = mustEnv("PYEXEC_VM_KERNEL")
	initrd      = mustEnv("PYEXEC_VM_INITRD")
	rootfs      = mustEnv("PYEXEC_VM_ROOTFS")
	imageConfig = mustEnv("PYEXEC_VM_IMAGE_CONFIG")
	workDir     = mustEnv("PYEXEC_VM_WORK")
	examplesDir = mustEnv("PYEXEC_VM_EXAMPLES")
)

func mustEnv(name string) string {
	v := os.Getenv(name)
	if v == "" {
		panic(name + " is not set: run these tests with make test-image")
	}
	return v
}

// containerPort is the port every service listens on inside the guest, as
// Cloud Run sets PORT; the services of one boot each get their own.
const containerPort = 8080

// guest is one booted virtual machine.
type guest struct {
	t       *testing.T
	dir     string // the run's directory: console.log and share/
	share   string
	qemu    *exec.Cmd
	exited  chan struct{} // closed when qemu has exited
	urls    map[string]string
	booted  time.Time
	console string
}

// image is the configuration of the image under test, as podman reports it.
type image struct {
	Entrypoint []string `json:"Entrypoint"`
	Cmd        []string `json:"Cmd"`
	Env        []string `json:"Env"`
	WorkingDir string   `json:"WorkingDir"`
}

func loadImage(t *testing.T) image {
	t.Helper()
	data, err := os.ReadFile(imageConfig)
	if err != nil {
		t.Fatal(err)
	}
	var img image
	if err := json.Unmarshal(data, &img); err != nil {
		t.Fatalf("reading %s: %v", imageConfig, err)
	}
	if len(img.Entrypoint)+len(img.Cmd) == 0 {
		t.Fatalf("%s: the image has neither ENTRYPOINT nor CMD", imageConfig)
	}
	return img
}

// service is the image's entrypoint as Cloud Run would start it for one
// service: the image's environment, then Cloud Run's variables, then the
// test's settings.
func (img image) service(name string, port int, env ...string) vm.Service {
	return vm.Service{
		Name: name,
		Argv: append(append([]string{}, img.Entrypoint...), img.Cmd...),
		Env: append(append(append([]string{}, img.Env...),
			"PORT="+strconv.Itoa(port),
			"K_SERVICE="+name,
			"K_REVISION="+name+"-00001-vm",
			"K_CONFIGURATION="+name,
		), env...),
		Dir: img.WorkingDir,
	}
}

// boot starts a guest running cfg's services and stops it when the test
// ends. Each service's PORT is forwarded from a free loopback port of the
// host; nothing else of the guest is reachable, and the guest reaches
// nothing. files (a name in the shared directory to a host path) are
// copied into the shared directory first, for cfg.Install.
func boot(t *testing.T, name string, cfg vm.Config, files ...map[string]string) *guest {
	t.Helper()
	dir := filepath.Join(workDir, name)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	g := &guest{t: t, dir: dir, share: filepath.Join(dir, "share"), exited: make(chan struct{}), urls: map[string]string{}}
	g.console = filepath.Join(dir, "console.log")
	if err := os.MkdirAll(g.share, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(g.share, vm.ConfigFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, set := range files {
		for name, from := range set {
			data, err := os.ReadFile(from)
			if err == nil {
				err = os.WriteFile(filepath.Join(g.share, name), data, 0o755)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	netdev := "user,id=net,restrict=on"
	for _, s := range cfg.Services {
		port := envPort(t, s.Env)
		host, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", host, port)
		g.urls[s.Name] = fmt.Sprintf("http://127.0.0.1:%d", host)
	}
	console, err := os.Create(g.console)
	if err != nil {
		t.Fatal(err)
	}
	g.qemu = exec.Command("qemu-system-x86_64",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		// Nested KVM hangs at kernel start on the machines this runs on; TCG
		// is slower but works everywhere.
		"-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "2048",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 quiet loglevel=4",
		"-serial", "stdio", "-monitor", "none",
		"-drive", fmt.Sprintf("file=%s,if=virtio,format=raw,readonly=on", rootfs),
		// multidevs=remap: the shared directory is one file system today, but
		// inode numbers must stay unique if it ever spans several.
		"-virtfs", fmt.Sprintf("local,path=%s,mount_tag=%s,security_model=passthrough,multidevs=remap", g.share, vm.ShareTag),
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=net",
	)
	g.qemu.Stdout, g.qemu.Stderr = console, console
	// A guest must not outlive an interrupted test run.
	g.qemu.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	g.booted = time.Now()
	if err := g.qemu.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = g.qemu.Wait()
		console.Close()
		close(g.exited)
	}()
	t.Logf("%s: booting (console: %s)", name, g.console)
	t.Cleanup(g.powerOff)
	return g
}

func envPort(t *testing.T, env []string) int {
	port := containerPort
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PORT="); ok {
			p, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("PORT=%q", v)
			}
			port = p
		}
	}
	return port
}

// powerOff asks the guest to power off and kills qemu if it has not within
// a few seconds. On failure the end of the console is logged.
func (g *guest) powerOff() {
	_ = os.WriteFile(filepath.Join(g.share, vm.PowerOffFile), nil, 0o644)
	select {
	case <-g.exited:
	case <-time.After(15 * time.Second):
		_ = g.qemu.Process.Kill()
		<-g.exited
	}
	if g.t.Failed() {
		g.t.Logf("last lines of %s:\n%s", g.console, tail(g.console, 60))
	}
}

func tail(path string, lines int) string {
	data, _ := os.ReadFile(path)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// failures returns the lines of a go test -v log that say what failed: each
// "--- FAIL" line and each message a test wrote (file:line: text), so that a
// failure deep in a long log is seen where the log is cut to its end.
func failures(path string) string {
	data, _ := os.ReadFile(path)
	var kept []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "--- FAIL") || testMessage.MatchString(line) {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n")
}

// testMessage matches a message of t.Log or t.Error in go test -v output.
var testMessage = regexp.MustCompile(`\w+_test\.go:\d+: `)

// waitFile waits for the guest to create path in the shared directory and
// returns when the host saw it.
func (g *guest) waitFile(path string, limit time.Duration) time.Time {
	g.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if _, err := os.Stat(path); err == nil {
			return time.Now()
		}
		select {
		case <-g.exited:
			g.t.Fatalf("the guest powered off before %s appeared; console:\n%s", filepath.Base(path), tail(g.console, 60))
		default:
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("%s did not appear within %v; console:\n%s", filepath.Base(path), limit, tail(g.console, 60))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// response is an answer of the service, decoded as far as it is JSON.
type response struct {
	Status    int
	Raw       string
	Result    json.RawMessage `json:"result"`
	Stdout    *string         `json:"stdout"`
	Error     string          `json:"error"`
	ErrorType string          `json:"error_type"`
}

var client = &http.Client{Timeout: 2 * time.Minute}

// execute posts script to the service's /execute.
func (g *guest) execute(service, script string) (response, error) {
	body, _ := json.Marshal(map[string]string{"script": script})
	resp, err := client.Post(g.urls[service]+"/execute", "application/json", bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	return decode(resp)
}

func decode(resp *http.Response) (response, error) {
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Raw: string(data)}
	if err != nil {
		return r, err
	}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &r); err != nil {
			return r, fmt.Errorf("answer is not JSON: %w", err)
		}
	}
	return r, nil
}

// health is what /healthz says.
type health struct {
	Status    string `json:"status"`
	Reason    string `json:"reason"`
	Mode      string `json:"mode"`
	Fallback  string `json:"fallback"`
	Isolation struct {
		Limits      string `json:"limits"`
		OutsideUIDs string `json:"outside_uids"`
	} `json:"isolation"`
	Raw string `json:"-"`
}

func (g *guest) health(service string) (int, health, error) {
	var h health
	resp, err := client.Get(g.urls[service] + "/healthz")
	if err != nil {
		return 0, h, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	h.Raw = string(data)
	if err == nil {
		err = json.Unmarshal(data, &h)
	}
	return resp.StatusCode, h, err
}

// waitReady waits for the service's process to start, then for its first
// successful execution of the hello example, and returns the time between
// the two as the host saw them.
func (g *guest) waitReady(service string, limit time.Duration) time.Duration {
	g.t.Helper()
	started := g.waitFile(vm.StartedFile(g.share, service), limit)
	g.t.Logf("%s: process started %.1f s after qemu", service, started.Sub(g.booted).Seconds())
	hello := readExample(g.t, "hello.py")
	deadline := started.Add(limit)
	var last string
	for time.Now().Before(deadline) {
		r, err := g.execute(service, hello)
		switch {
		case err == nil && r.Status == http.StatusOK:
			return time.Since(started)
		case err != nil:
			last = err.Error()
		default:
			last = fmt.Sprintf("%d %s", r.Status, r.Raw)
		}
		if _, err := os.Stat(vm.ExitFile(g.share, service)); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, h, _ := g.health(service)
	g.t.Fatalf("%s: no successful execution within %v of its start; last answer: %s; /healthz: %s", service, limit, last, h.Raw)
	return 0
}

func readExample(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(examplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// exit waits for the service's exit file.
func (g *guest) exit(service string, limit time.Duration) vm.Exit {
	g.t.Helper()
	path := vm.ExitFile(g.share, service)
	g.waitFile(path, limit)
	var e vm.Exit
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, &e)
	}
	if err != nil {
		g.t.Fatalf("reading %s: %v", path, err)
	}
	return e
}

// logEntries returns the JSON lines the service has written so far.
func (g *guest) logEntries(service string) []map[string]any {
	data, err := os.ReadFile(vm.LogFile(g.share, service))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		g.t.Fatal(err)
	}
	var entries []map[string]any
	for _, line := range strings.Split(string(data), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			entries = append(entries, m)
		}
	}
	return entries
}

// call sends body (nil: none) to the service's path with method and decodes
// the answer into v, returning its status.
func (g *guest) call(service, method, path string, body any, v any) (int, string, error) {
	var reader io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, g.urls[service]+path, reader)
	if err != nil {
		return 0, "", err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil && v != nil && len(data) > 0 {
		err = json.Unmarshal(data, v)
	}
	return resp.StatusCode, string(data), err
}
