// Command pyexec-bench measures pyexec over HTTP: latency percentiles,
// throughput and the CPU time per execution of a few workloads, at
// concurrency 1 and at saturation, for the cold mode (one fresh jail and
// interpreter per execution) and the default mode side by side, the time
// from starting each service to its first answered execution, and checks the
// performance targets, each beside its ratio to cold mode.
//
// It starts both services itself from the built binary, on free loopback
// ports, and never talks to anything but loopback:
//
//	make build && go run ./cmd/pyexec-bench            (or: make bench)
//	go run ./cmd/pyexec-bench -url http://127.0.0.1:8080 -pid 1234   (one running service)
//	go run ./cmd/pyexec-bench -profile DIR -bin bin/pyexec-pprof   (make profile; profile.go)
//	go run ./cmd/pyexec-bench -soak 30m   (make soak; soak.go)
//
// The CPU time per execution is that of the service's whole process tree
// (the service, nsjail, the fork server and every execution's process), read
// from /proc before and after each measurement. Latency and throughput drop
// with any other work on the machine's CPUs; the CPU time per execution
// changes much less, so it is the figure to compare across noisy runs.
//
// On the fork-mode service it also measures sessions (sessions.go): the
// start of a session and a trivial cell beside the one-shot trivial
// execution, and the memory of 100 idle sessions.
//
// The idle memory of a service is the resident set of its whole process tree
// (the service, nsjail, the jails and any warm interpreters), summed from
// /proc. Summed RSS counts pages that forked processes share once per process,
// so it overstates what they cost; PSS, which splits shared pages, is shown
// beside it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pyexec/pyexec/internal/leakcheck"
	"github.com/pyexec/pyexec/internal/load"
	"github.com/pyexec/pyexec/internal/testenv"
)

// The original service's examples, and scripts that fail in each usual way.
const (
	trivialScript = "def main():\n    return 1\n"
	pandasScript  = `import pandas as pd


def main():
    df = pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]})
    return {"sum_a": int(df["a"].sum()), "sum_b": int(df["b"].sum())}
`
	// chartScript draws a line chart of a 1,000-row DataFrame and leaves it
	// open: it comes back as a PNG in the answer's display.
	chartScript = `import numpy as np
import pandas as pd
import matplotlib.pyplot as plt


def main():
    df = pd.DataFrame({"x": np.arange(1000), "y": np.sin(np.arange(1000) / 50)})
    df.plot(x="x", y="y", figsize=(6, 4))
    return len(df)
`
	numpyScript = `import numpy as np


def main():
    values = np.array([1, 2, 3, 4, 5])
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}
`
)

// call is one request of a workload and what a correct answer looks like.
type call struct {
	script string
	status int
	want   string // the result's JSON for a success, the error_type for a failure
}

type workload struct {
	name  string
	calls []call // taken round-robin
}

var workloads = []workload{
	{"trivial", []call{{trivialScript, 200, "1"}}},
	{"pandas", []call{{pandasScript, 200, `{"sum_a":6,"sum_b":15}`}}},
	{"numpy", []call{{numpyScript, 200, `{"mean":3.0,"std":1.4142135623730951}`}}},
	{"chart", []call{{chartScript, 200, "1000"}}},
	{"mix", []call{
		{pandasScript, 200, `{"sum_a":6,"sum_b":15}`},
		{"def main():\n    raise ValueError('no')\n", 400, "exception"},
		{numpyScript, 200, `{"mean":3.0,"std":1.4142135623730951}`},
		{"def main(:\n", 400, "syntax_error"},
		{trivialScript, 200, "1"},
		{"import sys\n\ndef main():\n    sys.exit(3)\n", 400, "exited"},
		{"x = 1\n", 400, "no_main"},
		{"def main():\n    return {1, 2}\n", 400, "invalid_result"},
	}},
}

type options struct {
	bin        string
	url        string
	pid        int
	profile    string
	modes      []string
	workloads  []workload
	duration   time.Duration
	maxCalls   int
	minCalls   int
	saturation int
	concurrent int
	soak       time.Duration
	window     time.Duration
	mix        string
	sessions   bool
}

func main() {
	var o options
	var modes, names string
	flag.StringVar(&o.bin, "bin", "bin/pyexec", "the pyexec binary to start (built from ./cmd/pyexec)")
	flag.StringVar(&o.url, "url", "", "measure this running service instead of starting services (loopback only)")
	flag.IntVar(&o.pid, "pid", 0, "with -url: the service's pid, to measure the CPU of its process tree")
	flag.StringVar(&names, "workloads", "trivial,pandas,numpy,chart,mix", "the workloads to run")
	flag.BoolVar(&o.sessions, "sessions", true, "measure sessions on the fork-mode service (needs the trivial workload for its targets)")
	flag.StringVar(&o.profile, "profile", "", "profile the default mode under one workload at saturation with perf and Go's profiler, writing to this directory (the binary must be built with -tags pprof)")
	flag.StringVar(&modes, "modes", "cold,default", "PYEXEC_MODE values to start and compare; default means unset")
	flag.DurationVar(&o.duration, "duration", 6*time.Second, "time spent on each workload and concurrency")
	flag.IntVar(&o.maxCalls, "max", 2000, "most requests per workload and concurrency")
	flag.IntVar(&o.minCalls, "min", 8, "fewest requests per workload and concurrency, whatever the time")
	flag.IntVar(&o.concurrent, "concurrency", runtime.NumCPU(), "PYEXEC_CONCURRENCY of the services started")
	flag.IntVar(&o.saturation, "clients", 0, "clients at saturation (default 2 x concurrency)")
	flag.DurationVar(&o.soak, "soak", 0, "run the soak instead (make soak): one default-mode service at saturation for this long (soak.go)")
	flag.DurationVar(&o.window, "window", 5*time.Minute, "with -soak: the window at whose start and end the service is measured")
	flag.StringVar(&o.mix, "mix", "good=6,failing=2,hostile=2", "with -soak: the weights of the load's script classes")
	flag.Parse()
	o.modes = strings.Split(modes, ",")
	for _, name := range strings.Split(names, ",") {
		i := slices.IndexFunc(workloads, func(w workload) bool { return w.name == strings.TrimSpace(name) })
		if i < 0 {
			fmt.Fprintf(os.Stderr, "pyexec-bench: no workload %q\n", name)
			os.Exit(2)
		}
		o.workloads = append(o.workloads, workloads[i])
	}
	if o.saturation == 0 {
		o.saturation = 2 * o.concurrent
	}
	command := run
	if o.profile != "" {
		command = runProfile
	}
	if o.soak > 0 {
		command = runSoak
	}
	if err := command(o); err != nil {
		fmt.Fprintf(os.Stderr, "pyexec-bench: %v\n", err)
		os.Exit(1)
	}
}

// measurement is one workload at one concurrency against one service.
type measurement struct {
	mode, workload string
	clients        int
	n, failed      int
	busy           int
	p50, p90, p99  time.Duration
	rate           float64 // executions per second
	// cpu is the CPU time of the service's whole process tree per answered
	// execution (0 when the tree is unknown). Unlike latency and rate, it
	// barely changes with other work on the machine.
	cpu time.Duration
}

type service struct {
	mode   string // as requested: cold or default
	active string // as /healthz reports it
	base   string
	health map[string]any
	pidOf  int   // the service process, when this tool started it or -pid named it
	rss    int64 // idle, bytes, summed over the process tree
	pss    int64
	// chartRSS and chartPSS are the idle footprint once charts have been
	// drawn: in fork mode, with the chart server running.
	chartRSS, chartPSS int64
	// startup is the time from starting the process to the first answered
	// execution (0 when this tool did not start it).
	startup time.Duration
	stop    func()
}

func run(o options) error {
	var services []*service
	defer func() {
		for _, s := range services {
			if s.stop != nil {
				s.stop()
			}
		}
	}()
	if o.url != "" {
		if err := load.CheckURL(o.url); err != nil {
			return err
		}
		s := &service{mode: "given", base: strings.TrimRight(o.url, "/"), pidOf: o.pid}
		if err := waitHealthy(s, time.Minute); err != nil {
			return err
		}
		services = append(services, s)
	} else {
		for _, mode := range o.modes {
			// Room for the idle sessions measureSessions holds at once,
			// whatever the machine's memory.
			s, err := startService(o, strings.TrimSpace(mode), fmt.Sprintf("PYEXEC_MAX_SESSIONS=%d", 2*idleSessions))
			if err != nil {
				return err
			}
			services = append(services, s)
		}
	}
	printMachine(services)

	var results []measurement
	var sessions *sessionFigures
	for _, s := range services {
		// A few requests warm the service up before anything is measured,
		// then the idle footprint is taken once it has settled. Charts come
		// last: the first starts fork mode's chart server, whose footprint
		// is taken apart.
		var charts *workload
		for _, w := range o.workloads {
			if w.name == "chart" {
				charts = &w
				continue
			}
			for i := 0; i < 3; i++ {
				_, _ = do(s.base, w.calls[i%len(w.calls)])
			}
		}
		time.Sleep(2 * time.Second)
		if s.pidOf != 0 {
			s.rss, s.pss = treeMemory(s)
		}
		if charts != nil {
			// The chart server starts in the background in a second or two;
			// charts drawn meanwhile run in the plain server.
			for i := 0; i < 3; i++ {
				_, _ = do(s.base, charts.calls[0])
				time.Sleep(time.Second)
			}
			time.Sleep(2 * time.Second)
			if s.pidOf != 0 {
				s.chartRSS, s.chartPSS = treeMemory(s)
			}
		}
		for _, w := range o.workloads {
			for _, clients := range []int{1, o.saturation} {
				m := measure(s, w, clients, o)
				fmt.Fprintf(os.Stderr, "  %-8s %-8s c=%-2d n=%-5d p50=%-10v %.1f/s  cpu %s ms/exec\n", s.mode, w.name, clients, m.n, m.p50.Round(10*time.Microsecond), m.rate, ms(m.cpu))
				results = append(results, m)
			}
		}
		if sessions == nil && o.sessions {
			sessions = measureSessions(s)
		}
	}
	missed := report(services, results, o, sessions)
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		// Other work on the machine during the run shows here; it slows
		// both modes.
		fmt.Printf("load average at end: %s\n", strings.Join(strings.Fields(string(load))[:3], " "))
	}
	if missed > 0 {
		return fmt.Errorf("%d target(s) missed", missed)
	}
	return nil
}

// startService starts the binary in mode ("default" leaves PYEXEC_MODE
// unset), with extraEnv added to its environment, and waits until it has
// answered an execution and is healthy.
func startService(o options, mode string, extraEnv ...string) (*service, error) {
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return nil, err
	}
	port, err := testenv.FreePort()
	if err != nil {
		return nil, fmt.Errorf("finding a free port: %w", err)
	}
	cmd := exec.Command(bin)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYEXEC_MODE=") && !strings.HasPrefix(kv, "PORT=") && !strings.HasPrefix(kv, "PYEXEC_CONCURRENCY=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PORT="+strconv.Itoa(port), "FUNCTION_TARGET=Execute", "PYEXEC_LOG=stdout",
		"PYEXEC_CONCURRENCY="+strconv.Itoa(o.concurrent))
	env = append(env, extraEnv...)
	if mode != "default" && mode != "" {
		env = append(env, "PYEXEC_MODE="+mode)
	}
	cmd.Env = env
	// The services log one line per execution; the benchmark does not need
	// them. They go straight to /dev/null: through a pipe, copying them
	// would take CPU from the services being measured.
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	cmd.Stdout, cmd.Stderr = devnull, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	s := &service{mode: mode, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	s.stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	startup, err := firstAnswer(s, started, 3*time.Minute)
	if err == nil {
		err = waitHealthy(s, time.Minute)
	}
	if err != nil {
		s.stop()
		s.stop = nil
		return nil, fmt.Errorf("service in mode %s: %w", mode, err)
	}
	s.startup = startup
	s.pidOf = cmd.Process.Pid
	return s, nil
}

// firstAnswer sends a trivial execution until one is answered correctly and
// returns the time since the process was started: the instance start a
// client of a fresh instance waits for. The service holds an execution that
// arrives during its self-test until the test has passed; before it listens,
// the connection is refused and the request sent again at once.
func firstAnswer(s *service, started time.Time, limit time.Duration) (time.Duration, error) {
	var last error
	for time.Since(started) < limit {
		_, err := do(s.base, call{trivialScript, 200, "1"})
		if err == nil {
			return time.Since(started), nil
		}
		last = err
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("no execution answered within %v: %v", limit, last)
}

func waitHealthy(s *service, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.base + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				_ = json.Unmarshal(body, &s.health)
				s.active, _ = s.health["mode"].(string)
				return nil
			}
			last = strings.TrimSpace(string(body))
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("not healthy after %v: %s", limit, last)
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 2 * time.Minute}

// do sends one execution and checks the answer.
func do(base string, c call) (int, error) {
	body, _ := json.Marshal(map[string]string{"script": c.script})
	resp, err := client.Post(base+"/execute", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != c.status {
		return resp.StatusCode, fmt.Errorf("status %d, want %d: %s", resp.StatusCode, c.status, data)
	}
	var got struct {
		Result    json.RawMessage `json:"result"`
		ErrorType string          `json:"error_type"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		return resp.StatusCode, err
	}
	if c.status == 200 && string(got.Result) != c.want || c.status != 200 && got.ErrorType != c.want {
		return resp.StatusCode, fmt.Errorf("answer %s, want %s", data, c.want)
	}
	return resp.StatusCode, nil
}

func measure(s *service, w workload, clients int, o options) measurement {
	m := measurement{mode: s.mode, workload: w.name, clients: clients}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		next      int
		wg        sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	cpuBefore := treeCPU(s.pidOf)
	start := time.Now()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= o.maxCalls || (ctx.Err() != nil && next >= o.minCalls) {
					mu.Unlock()
					return
				}
				c := w.calls[next%len(w.calls)]
				next++
				mu.Unlock()
				t := time.Now()
				status, err := do(s.base, c)
				d := time.Since(t)
				mu.Lock()
				switch {
				case status == http.StatusServiceUnavailable:
					m.busy++
				case err != nil:
					m.failed++
					if m.failed <= 3 {
						fmt.Fprintf(os.Stderr, "  %s %s: %v\n", s.mode, w.name, err)
					}
				default:
					latencies = append(latencies, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(latencies)
	m.n = len(latencies)
	m.p50, m.p90, m.p99 = percentile(latencies, 50), percentile(latencies, 90), percentile(latencies, 99)
	m.rate = float64(m.n) / elapsed.Seconds()
	if ran := m.n + m.failed; s.pidOf != 0 && ran > 0 {
		// As many warm processes wait at the end as at the start, so the
		// work of forking them ahead balances out.
		m.cpu = (treeCPU(s.pidOf) - cpuBefore) / time.Duration(ran)
	}
	return m
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// treeCPU is the CPU time (user and system) the process tree below pid has
// used so far: each live process's own, plus that of the children it has
// reaped. Every process of an execution is reaped inside the tree (by the
// fork server, nsjail or the service), so its CPU is counted once it has
// ended and while it runs. Kernel work done on the tree's behalf in kernel
// threads (the deferred teardown of a network namespace) is not counted.
func treeCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	var ticks int64
	for _, p := range append([]int{pid}, leakcheck.Descendants(pid)...) {
		data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "stat"))
		if err != nil {
			continue
		}
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 15 {
			continue
		}
		// utime, stime, cutime and cstime: fields 14 to 17 of stat(5).
		for _, f := range fields[11:15] {
			n, _ := strconv.ParseInt(f, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// clockTicks is the unit of /proc's CPU times (USER_HZ), 100 on Linux.
const clockTicks = 100

// treeMemory sums RSS and PSS over the service and all its descendants.
func treeMemory(s *service) (rss, pss int64) {
	for _, pid := range append([]int{s.pidOf}, leakcheck.Descendants(s.pidOf)...) {
		rss += statusKB(pid, "VmRSS:") << 10
		pss += rollupKB(pid, "Pss:") << 10
	}
	return rss, pss
}

func statusKB(pid int, field string) int64 {
	return fieldKB(filepath.Join("/proc", strconv.Itoa(pid), "status"), field)
}

func rollupKB(pid int, field string) int64 {
	return fieldKB(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup"), field)
}

func fieldKB(path, field string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}

func printMachine(services []*service) {
	var uts syscall.Utsname
	_ = syscall.Uname(&uts)
	kernel := utsString(uts.Release[:])
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	mem := fieldKB("/proc/meminfo", "MemTotal:") >> 10
	fmt.Printf("machine: %d CPUs (%s), %d MiB RAM, Linux %s, %s/%s\n", runtime.NumCPU(), model, mem, kernel, runtime.GOOS, runtime.GOARCH)
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average at start: %s\n", strings.Join(strings.Fields(string(load))[:3], " "))
	}
	if len(services) > 0 {
		if v, ok := services[0].health["versions"].(map[string]any); ok {
			fmt.Printf("runtime: Python %v, pandas %v, numpy %v, nsjail %v\n", v["python"], v["pandas"], v["numpy"], v["nsjail"])
		}
	}
	for _, s := range services {
		fmt.Printf("service %q: mode %q\n", s.mode, s.active)
	}
	fmt.Println()
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

// report prints the table, the ratios and the targets, and returns how many
// targets were missed.
func report(services []*service, results []measurement, o options, sessions *sessionFigures) int {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tworkload\tclients\tn\tfailed\tbusy\tp50 ms\tp90 ms\tp99 ms\texec/s\tCPU ms/exec\t")
	for _, m := range results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%.1f\t%s\t\n", m.mode, m.workload, m.clients, m.n, m.failed, m.busy, ms(m.p50), ms(m.p90), ms(m.p99), m.rate, ms(m.cpu))
	}
	_ = tw.Flush()
	fmt.Println()
	for _, s := range services {
		if s.pidOf != 0 {
			fmt.Printf("idle memory of %q (mode %s), whole process tree: RSS %d MiB, PSS %d MiB\n", s.mode, s.active, s.rss>>20, s.pss>>20)
			if s.chartRSS != 0 {
				fmt.Printf("  once charts have been drawn (fork mode: the chart server running): RSS %d MiB, PSS %d MiB\n", s.chartRSS>>20, s.chartPSS>>20)
			}
		}
	}
	for _, s := range services {
		if s.startup != 0 {
			fmt.Printf("instance start of %q (mode %s), process start to first answered execution: %s ms\n", s.mode, s.active, ms(s.startup))
		}
	}

	find := func(mode, workload string, clients int) (measurement, bool) {
		for _, m := range results {
			if m.mode == mode && m.workload == workload && m.clients == clients {
				return m, true
			}
		}
		return measurement{}, false
	}
	var cold, fast *service
	for _, s := range services {
		switch {
		case s.mode == "cold":
			cold = s
		case fast == nil:
			fast = s
		}
	}
	// ratio is how many times cold's figure is the fast mode's; 0 when
	// either is missing.
	ratio := func(w string, clients int, of func(m measurement) float64) float64 {
		if cold == nil || fast == nil {
			return 0
		}
		c, ok1 := find(cold.mode, w, clients)
		f, ok2 := find(fast.mode, w, clients)
		if !ok1 || !ok2 || of(c) == 0 || of(f) == 0 {
			return 0
		}
		return of(c) / of(f)
	}
	p50 := func(m measurement) float64 { return float64(m.p50) }
	perExec := func(m measurement) float64 {
		if m.rate == 0 {
			return 0
		}
		return 1 / m.rate
	}
	cpu := func(m measurement) float64 { return float64(m.cpu) }
	if cold != nil && fast != nil {
		fmt.Println()
		tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "cold / %s\tclients\tp50 ratio\tthroughput ratio\tCPU ratio\t\n", fast.mode)
		for _, w := range o.workloads {
			for _, clients := range []int{1, o.saturation} {
				if ratio(w.name, clients, p50) == 0 {
					continue
				}
				fmt.Fprintf(tw, "%s\t%d\t%.1fx\t%.1fx\t%.1fx\t\n", w.name, clients, ratio(w.name, clients, p50), ratio(w.name, clients, perExec), ratio(w.name, clients, cpu))
			}
		}
		_ = tw.Flush()
	}
	if fast == nil {
		return 0
	}

	fmt.Println()
	fmt.Printf("targets (%s mode, %d CPUs; beside each, how it compares with cold mode in this run):\n", fast.active, runtime.NumCPU())
	failed := 0
	target := func(ok bool, format string, args ...any) {
		verdict := "PASS"
		if !ok {
			verdict = "FAIL"
			failed++
		}
		fmt.Printf("  %s  %s\n", verdict, fmt.Sprintf(format, args...))
	}
	vsCold := func(r float64) string {
		if r == 0 {
			return ""
		}
		return fmt.Sprintf("  (%.1fx faster than cold)", r)
	}
	// Each workload target, when its workload ran.
	if m, ok := find(fast.mode, "pandas", o.saturation); ok {
		target(m.failed == 0 && m.rate >= 300, "pandas, %d clients: %.1f executions/s >= 300%s",
			o.saturation, m.rate, vsCold(ratio("pandas", o.saturation, perExec)))
	}
	if m, ok := find(fast.mode, "pandas", 1); ok {
		target(m.failed == 0 && m.n > 0 && m.p50 <= 4*time.Millisecond, "pandas, 1 client: p50 %s ms <= 4 ms%s",
			ms(m.p50), vsCold(ratio("pandas", 1, p50)))
	}
	if m, ok := find(fast.mode, "trivial", o.saturation); ok {
		target(m.failed == 0 && m.rate >= 400, "trivial, %d clients: %.1f executions/s >= 400%s",
			o.saturation, m.rate, vsCold(ratio("trivial", o.saturation, perExec)))
	}
	if m, ok := find(fast.mode, "chart", 1); ok {
		target(m.failed == 0 && m.n > 0 && m.p50 <= 150*time.Millisecond, "chart of 1,000 rows, 1 client: p50 %s ms <= 150 ms%s",
			ms(m.p50), vsCold(ratio("chart", 1, p50)))
	}
	if fast.pidOf != 0 {
		target(fast.rss > 0 && fast.rss>>20 <= 208, "idle service with its warm processes: RSS %d MiB <= 208 MiB", fast.rss>>20)
	}
	if fast.startup != 0 {
		target(fast.startup <= time.Second, "instance start, process start to first answered execution: %s ms <= 1000 ms", ms(fast.startup))
	}
	if sessions != nil {
		if m, ok := find(fast.mode, "trivial", 1); ok {
			reportSessions(sessions, m.p50, target)
		}
	}
	errs := 0
	for _, m := range results {
		errs += m.failed
	}
	target(errs == 0, "every answer correct (%d wrong)", errs)
	if runtime.NumCPU() != 2 {
		fmt.Printf("  note: the targets are set for 2 CPUs; this machine has %d\n", runtime.NumCPU())
	}
	if failed == 0 {
		fmt.Println("all targets met")
	}
	return failed
}
