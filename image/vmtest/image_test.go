//go:build image

package vmtest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyexec/pyexec/image/vm"
	"github.com/pyexec/pyexec/internal/testenv"
)

// timeoutSeconds is the services' wall-time limit: the default, because
// the self-test's probes run under it too, and in a TCG guest on a loaded
// machine the memory probe (which fills the 512 MiB limit) of fork mode has
// taken over 20 s.
const timeoutSeconds = 30

// startLimit bounds a boot up to the first successful execution: a TCG
// guest on a loaded two-core machine takes minutes, not seconds.
const startLimit = 4 * time.Minute

// settings are what every service here runs with beyond the image's own:
// logs as JSON lines on stdout (where Cloud Run collects them; there is no
// Cloud Logging API to reach) and the wall-time limit.
func settings(timeout int, more ...string) []string {
	return append([]string{"PYEXEC_LOG=stdout", "PYEXEC_TIMEOUT_SECONDS=" + strconv.Itoa(timeout)}, more...)
}

// TestCgroupV2 is the normal second-generation case: a cgroup2-only
// hierarchy whose root the container may write. Both functions of the image
// run, as the two Cloud Run services do; the second starts once the first
// has been checked, as on Cloud Run each has CPUs of its own.
func TestCgroupV2(t *testing.T) {
	img := loadImage(t)
	events := img.service("events", containerPort+1, settings(timeoutSeconds, "FUNCTION_TARGET=ExecuteEvent")...)
	events.Held = true
	g := boot(t, "cgroup-v2", vm.Config{Services: []vm.Service{
		img.service("execute", containerPort, settings(timeoutSeconds, "FUNCTION_TARGET=Execute")...),
		events,
	}})
	first := g.waitReady("execute", startLimit)
	t.Logf("execute: first successful execution %.1f s after the process started", first.Seconds())

	t.Run("healthz reports cgroup v2 and fork mode", func(t *testing.T) {
		checkHealth(t, g, "execute", "cgroup v2", "fork")
	})
	t.Run("the examples answer as documented", func(t *testing.T) { checkExamples(t, g, "execute") })
	t.Run("the jail sees no nsjail, source, build file or service binary", func(t *testing.T) { checkJailView(t, g, "execute") })
	t.Run("limits hold", func(t *testing.T) { checkLimits(t, g, "execute") })
	t.Run("a session keeps state and is frozen between cells", func(t *testing.T) { checkSessions(t, g, "execute") })
	t.Run("an ExecuteEvent delivery is logged with its result", func(t *testing.T) {
		if err := os.WriteFile(vm.StartFile(g.share, "events"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		checkEvent(t, g, "events")
	})
	t.Run("SIGTERM drains and exits", func(t *testing.T) { checkDrain(t, g, "execute") })
}

// TestCgroupReadOnly: a container that may not write its cgroup file system
// falls back to rlimits, says so, and still runs scripts.
//
// Without cgroups fork mode is out, and the modes left start a fresh
// interpreter per execution, whose import of pandas takes tens of seconds in
// a TCG guest on a loaded machine: the limit is longer here (no check waits
// for it), and one execution slot keeps the pool's warm interpreters from
// sharing the guest's two CPUs four ways.
func TestCgroupReadOnly(t *testing.T) {
	img := loadImage(t)
	g := boot(t, "cgroup-read-only", vm.Config{CgroupReadOnly: true, Services: []vm.Service{
		img.service("execute", containerPort, settings(90, "FUNCTION_TARGET=Execute", "PYEXEC_CONCURRENCY=1")...),
	}})
	first := g.waitReady("execute", startLimit)
	t.Logf("execute: first successful execution %.1f s after the process started", first.Seconds())
	t.Run("healthz reports the rlimit fallback", func(t *testing.T) {
		checkHealth(t, g, "execute", "rlimit", "")
	})
	t.Run("the examples answer as documented", func(t *testing.T) { checkExamples(t, g, "execute") })
	t.Run("a memory bomb meets the memory limit", func(t *testing.T) { checkMemoryBomb(t, g, "execute") })
	t.Run("sessions are refused, saying they need fork mode", func(t *testing.T) {
		var f struct {
			Error     string `json:"error"`
			ErrorType string `json:"error_type"`
		}
		status, raw, err := g.call("execute", http.MethodPost, "/sessions", map[string]any{}, &f)
		if err != nil || status != 400 || f.ErrorType != "invalid_request" || !strings.Contains(f.Error, "fork mode") {
			t.Errorf("POST /sessions without cgroups = %d %s (%v), want 400 invalid_request saying sessions need fork mode", status, raw, err)
		}
	})
	t.Run("the jail sees no nsjail, source, build file or service binary", func(t *testing.T) { checkJailView(t, g, "execute") })
}

// TestUserNamespace: the container's root is root of a user namespace in
// which only uids and gids 0-65535 exist, as Cloud Run runs jobs and worker
// pools. The sandbox must still work there.
func TestUserNamespace(t *testing.T) {
	img := loadImage(t)
	g := boot(t, "user-namespace", vm.Config{
		UserNamespace: &vm.IDMap{Inside: 0, Outside: 0, Count: 65536},
		Services: []vm.Service{
			img.service("execute", containerPort, settings(timeoutSeconds, "FUNCTION_TARGET=Execute")...),
		},
	})
	first := g.waitReady("execute", startLimit)
	t.Logf("execute: first successful execution %.1f s after the process started", first.Seconds())
	t.Run("healthz reports cgroup v2", func(t *testing.T) { checkHealth(t, g, "execute", "cgroup v2", "") })
	t.Run("the examples answer as documented", func(t *testing.T) { checkExamples(t, g, "execute") })
}

// checkHealth checks /healthz is ready and names the limits in force and,
// unless wantMode is "", the mode.
func checkHealth(t *testing.T, g *guest, service, wantLimits, wantMode string) {
	status, h, err := g.health(service)
	if err != nil || status != http.StatusOK || h.Status != "ok" {
		t.Fatalf("GET /healthz = %d %s (%v), want 200 status ok", status, h.Raw, err)
	}
	t.Logf("GET /healthz: %s", h.Raw)
	if h.Isolation.Limits != wantLimits {
		t.Errorf("/healthz isolation.limits = %q, want %q", h.Isolation.Limits, wantLimits)
	}
	if wantMode != "" && h.Mode != wantMode {
		t.Errorf("/healthz mode = %q (fallback %q), want %q", h.Mode, h.Fallback, wantMode)
	}
}

// checkExamples runs examples/*.py and compares the answers with README's
// Examples table.
func checkExamples(t *testing.T, g *guest, service string) {
	tests := []struct {
		file       string
		wantStatus int
		wantResult string // JSON, compared as values; "" for no result
		wantStdout string
		wantType   string
	}{
		{"hello.py", 200, `{"answer": 4}`, "Calculating...", ""},
		{"pandas_sum.py", 200, `{"sum_a": 6, "sum_b": 15}`, "", ""},
		{"numpy_stats.py", 200, `{"mean": 3.0, "std": 1.4142135623730951}`, "", ""},
		{"os_info.py", 200, "", "", ""},
		{"no_main.py", 400, "", "", "no_main"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r, err := g.execute(service, readExample(t, tt.file))
			if err != nil {
				t.Fatalf("POST /execute %s: %v", tt.file, err)
			}
			if r.Status != tt.wantStatus || r.ErrorType != tt.wantType || r.Stdout == nil || *r.Stdout != tt.wantStdout {
				t.Fatalf("POST /execute %s = %d %s, want %d error_type %q stdout %q", tt.file, r.Status, r.Raw, tt.wantStatus, tt.wantType, tt.wantStdout)
			}
			switch {
			case tt.file == "os_info.py":
				var got struct {
					Platform string `json:"platform"`
					CPUCount int    `json:"cpu_count"`
				}
				if err := json.Unmarshal(r.Result, &got); err != nil || got.Platform != "posix" || got.CPUCount < 1 {
					t.Errorf("os_info.py result = %s, want platform posix and a positive cpu_count", r.Result)
				}
			case tt.wantResult != "":
				if !testenv.SameJSON(r.Result, []byte(tt.wantResult)) {
					t.Errorf("%s result = %s, want %s", tt.file, r.Result, tt.wantResult)
				}
			}
		})
	}
}

// checkJailView walks the file system as a script sees it and lists every
// name with nsjail in it, the service's binary (a file named pyexec), Go
// source and build files: the jail binds only the interpreter and the
// scripts' venv, which hold none of them.
func checkJailView(t *testing.T, g *guest, service string) {
	r, err := g.execute(service, `import os

def main():
    found, seen = [], 0
    for root, dirs, files in os.walk("/"):
        if root == "/proc":
            dirs[:] = []
            continue
        for name in dirs + files:
            seen += 1
            low = name.lower()
            if ("nsjail" in low or low.endswith(".go") or (name in files and low == "pyexec")
                    or low in ("dockerfile", "cloudbuild.yaml", "go.mod", "go.sum", "install-runtime.sh")):
                found.append(os.path.join(root, name))
    return {"seen": seen, "found": found}
`)
	var got struct {
		Seen  int      `json:"seen"`
		Found []string `json:"found"`
	}
	if err != nil || r.Status != 200 || json.Unmarshal(r.Result, &got) != nil {
		t.Fatalf("POST /execute the file system walk = %d %s (%v), want 200", r.Status, r.Raw, err)
	}
	// The walk must have covered the interpreter's tree, or finding
	// nothing proves nothing.
	if got.Seen < 1000 {
		t.Errorf("the walk saw %d names, want the interpreter's thousands", got.Seen)
	}
	if len(got.Found) > 0 {
		t.Errorf("readable from inside the jail: %v", got.Found)
	}
	t.Logf("the walk saw %d names", got.Seen)
}

// checkLimits: memory, processes and time are capped per execution, and the
// service answers normally after each.
func checkLimits(t *testing.T, g *guest, service string) {
	t.Run("a memory bomb meets the memory limit", func(t *testing.T) { checkMemoryBomb(t, g, service) })
	t.Run("a fork bomb is contained", func(t *testing.T) {
		r, err := g.execute(service, `import os

def main():
    print('forking')
    while True:
        try:
            os.fork()
        except OSError:
            pass
`)
		// However it ends (the time limit or the process cap), it is a
		// failure of the script, not of the service.
		if err != nil || r.Status != 400 || r.ErrorType == "internal" || r.Stdout == nil || !strings.HasPrefix(*r.Stdout, "forking") {
			t.Errorf("POST /execute a fork bomb = %d %s (%v), want a 400 script failure with its stdout", r.Status, r.Raw, err)
		}
		t.Logf("a fork bomb answered %d %s", r.Status, r.Raw)
		checkRecovered(t, g, service)
	})
	t.Run("the process cap holds", func(t *testing.T) {
		// The image's default PYEXEC_MAX_PROCS is 64: the 64th process of
		// an execution (the script itself is one) cannot start.
		r, err := g.execute(service, `import os, time

def main():
    children = []
    try:
        for _ in range(200):
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
    except OSError as e:
        return {"children": len(children), "error": e.errno}
    return {"children": len(children), "error": None}
`)
		var got struct {
			Children int  `json:"children"`
			Error    *int `json:"error"`
		}
		if err != nil || r.Status != 200 || json.Unmarshal(r.Result, &got) != nil {
			t.Fatalf("POST /execute = %d %s (%v), want 200 with the count of children", r.Status, r.Raw, err)
		}
		if got.Error == nil || got.Children < 1 || got.Children >= 64 {
			t.Errorf("the script forked %d children (error %v), want fewer than 64 and then EAGAIN", got.Children, got.Error)
		}
		checkRecovered(t, g, service)
	})
	t.Run("the wall-time limit ends a busy loop", func(t *testing.T) {
		start := time.Now()
		r, err := g.execute(service, "def main():\n    print('looping')\n    while True:\n        pass\n")
		if err != nil || r.Status != 400 || r.ErrorType != "timeout" || r.Stdout == nil || *r.Stdout != "looping" {
			t.Errorf("POST /execute a busy loop = %d %s (%v), want 400 timeout with stdout \"looping\"", r.Status, r.Raw, err)
		}
		if d := time.Since(start); d < timeoutSeconds*time.Second {
			t.Errorf("a busy loop answered after %v, before the %d s limit", d, timeoutSeconds)
		}
		checkRecovered(t, g, service)
	})
}

func checkMemoryBomb(t *testing.T, g *guest, service string) {
	start := time.Now()
	r, err := g.execute(service, "def main():\n    print('growing')\n    keep = []\n    while True:\n        keep.append(bytearray(16 << 20))\n")
	if err != nil || r.Status != 400 || r.ErrorType != "memory_limit" {
		t.Errorf("POST /execute a memory bomb = %d %s (%v), want 400 memory_limit", r.Status, r.Raw, err)
	}
	t.Logf("a memory bomb answered %s after %.1f s", r.ErrorType, time.Since(start).Seconds())
	checkRecovered(t, g, service)
}

// checkRecovered fails t unless the service answers an ordinary script.
func checkRecovered(t *testing.T, g *guest, service string) {
	t.Helper()
	r, err := g.execute(service, "def main():\n    print('fine')\n    return {'ok': True}\n")
	if err != nil || r.Status != 200 || !testenv.SameJSON(r.Result, []byte(`{"ok": true}`)) {
		t.Errorf("the next ordinary script = %d %s (%v), want 200 {\"ok\": true}", r.Status, r.Raw, err)
	}
}

// checkEvent delivers examples/pubsub-event.json (hello.py, id demo-1) as
// Eventarc does, in binary mode, redelivering while the service answers 503
// as Pub/Sub would, and finds the outcome in the service's log.
func checkEvent(t *testing.T, g *guest, service string) {
	event, err := os.ReadFile(examplesDir + "/pubsub-event.json")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(startLimit)
	for {
		req, _ := http.NewRequest(http.MethodPost, g.urls[service]+"/", bytes.NewReader(event))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("ce-id", "1000000000000001")
		req.Header.Set("ce-specversion", "1.0")
		req.Header.Set("ce-type", "google.cloud.pubsub.topic.v1.messagePublished")
		req.Header.Set("ce-source", "//pubsub.googleapis.com/projects/demo/topics/scripts")
		resp, err := client.Do(req)
		status := 0
		if err == nil {
			status = resp.StatusCode
			resp.Body.Close()
		}
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivering the event: %d (%v), want 200 before %v", status, err, startLimit)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The outcome is logged before the delivery is answered, and reaches the
	// shared directory through the guest's copy of the service's stdout a
	// moment later. Entries before it are the redeliveries answered 503.
	var last map[string]any
	for wait := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		last = nil
		for _, e := range g.logEntries(service) {
			if e["id"] == "demo-1" {
				last = e
			}
		}
		if (last != nil && last["retry"] != true) || time.Now().After(wait) {
			break
		}
	}
	if last == nil {
		t.Fatalf("no log entry with id demo-1 in %s", vm.LogFile(g.share, service))
	}
	result, _ := json.Marshal(last["result"])
	if last["status"] != "ok" || last["stdout"] != "Calculating..." || !testenv.SameJSON(result, []byte(`{"answer": 4}`)) || last["message_id"] != "1000000000000001" {
		t.Errorf("log entry of the delivery = %v, want status ok, result {\"answer\": 4}, stdout Calculating..., message_id 1000000000000001", last)
	}
}

// checkSessions runs cells of one session: state carries over, and under
// cgroup v2's freezer a thread a cell left spinning does not run between
// cells (its counter barely moves while the session idles for 2 s, against
// how far it moves in 0.3 s of a cell), then resumes with the next cell.
func checkSessions(t *testing.T, g *guest, service string) {
	var s struct {
		ID string `json:"session_id"`
	}
	if status, raw, err := g.call(service, http.MethodPost, "/sessions", map[string]any{}, &s); err != nil || status != 201 {
		t.Fatalf("POST /sessions = %d %s (%v), want 201", status, raw, err)
	}
	cell := func(code string) json.RawMessage {
		t.Helper()
		var a struct {
			Result json.RawMessage `json:"result"`
		}
		status, raw, err := g.call(service, http.MethodPost, "/sessions/"+s.ID+"/execute", map[string]string{"code": code}, &a)
		if err != nil || status != 200 {
			t.Fatalf("cell %q = %d %s (%v), want 200", code, status, raw, err)
		}
		return a.Result
	}
	cell("import threading, time\nspins = [0]\ndef spin():\n    while True:\n        spins[0] += 1\nthreading.Thread(target=spin, daemon=True).start()\ntime.sleep(0.3)")
	before := cell("spins[0]")
	time.Sleep(2 * time.Second)
	var idle, busy int64
	_ = json.Unmarshal(cell("n = spins[0]\nn"), &idle)
	_ = json.Unmarshal(cell("m = spins[0]\ntime.sleep(0.3)\nspins[0] - m"), &busy)
	var start int64
	_ = json.Unmarshal(before, &start)
	idle -= start
	if busy <= 0 || idle*2 > busy {
		t.Errorf("the thread counted %d while the session idled 2 s, and %d in 0.3 s of a cell: want it frozen while idle", idle, busy)
	}
	var st struct {
		MemoryBytes int64 `json:"memory_bytes"`
		Cells       int   `json:"cells"`
	}
	if status, raw, err := g.call(service, http.MethodGet, "/sessions/"+s.ID, nil, &st); err != nil || status != 200 || st.MemoryBytes <= 0 || st.Cells != 4 {
		t.Errorf("GET /sessions/{id} = %d %s (%v), want its memory and 4 cells", status, raw, err)
	}
	if status, raw, _ := g.call(service, http.MethodDelete, "/sessions/"+s.ID, nil, nil); status != 204 {
		t.Errorf("DELETE /sessions/{id} = %d %s, want 204", status, raw)
	}
	if status, raw, _ := g.call(service, http.MethodGet, "/sessions/"+s.ID, nil, nil); status != 404 {
		t.Errorf("GET after DELETE = %d %s, want 404", status, raw)
	}
}

// checkDrain sends the service SIGTERM while an execution runs: the
// execution is answered, and the process exits 0 within its grace period.
func checkDrain(t *testing.T, g *guest, service string) {
	var wg sync.WaitGroup
	var r response
	var err error
	wg.Add(1)
	go func() {
		defer wg.Done()
		r, err = g.execute(service, "import time\n\ndef main():\n    time.sleep(3)\n    return 'drained'\n")
	}()
	time.Sleep(time.Second) // the execution is under way
	if err := os.WriteFile(vm.StopFile(g.share, service), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err != nil || r.Status != 200 || !testenv.SameJSON(r.Result, []byte(`"drained"`)) {
		t.Errorf("the execution running at SIGTERM = %d %s (%v), want 200 \"drained\"", r.Status, r.Raw, err)
	}
	e := g.exit(service, 30*time.Second)
	if e.Code != 0 || e.AfterStopMS <= 0 || e.AfterStopMS > 12000 {
		t.Errorf("after SIGTERM the service exited %+v, want code 0 within the 10 s grace period", e)
	}
	t.Logf("exited %d ms after SIGTERM", e.AfterStopMS)
}

// TestFaults runs the fault suite (tests/faults) in a cgroup-v2 guest, as a
// container of the image would run it: the suite's test binary, installed in
// the container's root, starts the image's own service binary for each
// fault, in cgroups it makes under its container's, and breaks its sandbox.
// Everything in an emulated guest takes several times longer, so the
// suite's bounds are scaled (PYEXEC_FAULTS_TIME_SCALE); the service's own
// are not. PYEXEC_FAULTS_RUN, if set, picks the faults to try (-test.run).
func TestFaults(t *testing.T) {
	img := loadImage(t)
	bin := filepath.Join(t.TempDir(), "faults.test")
	build := exec.Command("go", "test", "-c", "-tags", "integration", "-o", bin, "./tests/faults")
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the fault suite: %v\n%s", err, out)
	}
	const installed = "/opt/pyexec-faults/faults.test"
	argv := []string{installed, "-test.v", "-test.count=1", "-test.timeout=80m"}
	if run := os.Getenv("PYEXEC_FAULTS_RUN"); run != "" {
		argv = append(argv, "-test.run="+run)
	}
	suite := vm.Service{
		Name: "faults",
		Argv: argv,
		Env:  append(append([]string{}, img.Env...), "PYEXEC_SERVICE_BINARY="+img.Entrypoint[0], "PYEXEC_FAULTS_TIME_SCALE=4"),
		Dir:  "/",
	}
	g := boot(t, "faults", vm.Config{
		Install:  []vm.File{{From: "faults.test", To: installed}},
		Services: []vm.Service{suite},
	}, map[string]string{"faults.test": bin})
	exit := g.exit("faults", 85*time.Minute)
	log := vm.LogFile(g.share, "faults")
	t.Logf("the fault suite in the guest (last lines of %s):\n%s", log, tail(log, 60))
	if exit.Code != 0 || exit.Signal != "" || exit.Error != "" {
		t.Fatalf("the fault suite failed in the guest: exit %+v; its failures:\n%s", exit, failures(log))
	}
}
