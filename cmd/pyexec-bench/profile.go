package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pyexec/pyexec/internal/testenv"
)

// Profiling (-profile DIR, make profile): one service in the default mode,
// driven at saturation with one workload, while perf samples every CPU with
// call stacks and Go's profiler samples the service. perf's samples are then
// kept for the service's process tree (the service, nsjail, the fork server
// and every execution's process, found from perf's own record of forks) and
// for the kernel's threads, and each sample is given to a phase of an
// execution by its stack. Sampling the whole machine rather than following
// the tree's processes is deliberate: perf loses the samples of a process's
// exit when it follows processes (the teardown of a forked process's address
// space, one of the larger costs), and the kernel's threads do part of the
// work (a network namespace is torn down in a workqueue).

// profilePeriod is the CPU time between two of perf's samples.
const profilePeriod = 500 * time.Microsecond

func runProfile(o options) error {
	if _, err := exec.LookPath("perf"); err != nil {
		return fmt.Errorf("perf not found (Debian: apt-get install linux-perf): %w", err)
	}
	if len(o.workloads) != 1 {
		return fmt.Errorf("profile one workload at a time (-workloads), not %d", len(o.workloads))
	}
	w := o.workloads[0]
	if err := os.MkdirAll(o.profile, 0o755); err != nil {
		return err
	}
	pprofPort, err := testenv.FreePort()
	if err != nil {
		return err
	}
	pprofAddr := fmt.Sprintf("127.0.0.1:%d", pprofPort)
	s, err := startService(o, "default", "PYEXEC_PPROF_ADDR="+pprofAddr)
	if err != nil {
		return err
	}
	defer s.stop()
	printMachine([]*service{s})
	for i := 0; i < 20; i++ {
		_, _ = do(s.base, w.calls[i%len(w.calls)])
	}

	perfData := filepath.Join(o.profile, "perf.data")
	perf := exec.Command("perf", "record", "-a", "-g", "-k", "CLOCK_MONOTONIC",
		"-e", "cpu-clock", "-c", strconv.FormatInt(int64(profilePeriod/time.Nanosecond), 10), "-o", perfData)
	perf.Stdout, perf.Stderr = io.Discard, io.Discard
	if err := perf.Start(); err != nil {
		return fmt.Errorf("starting perf: %w", err)
	}
	time.Sleep(2 * time.Second) // perf records the machine's processes first

	pprofFile := filepath.Join(o.profile, "service.pprof")
	pprofDone := make(chan error, 1)
	go func() { pprofDone <- fetchCPUProfile(pprofAddr, o.duration, pprofFile) }()
	from := monotonic()
	m := measure(s, w, o.saturation, o)
	to := monotonic()
	_ = perf.Process.Signal(syscall.SIGINT)
	perfErr := perf.Wait()
	if err := <-pprofDone; err != nil {
		return err
	}
	// perf writes its data on SIGINT, then ends as killed by it.
	if exitErr, ok := perfErr.(*exec.ExitError); perfErr != nil && !(ok && exitErr.Sys().(syscall.WaitStatus).Signal() == syscall.SIGINT) {
		return fmt.Errorf("perf record: %w", perfErr)
	}
	if m.n == 0 {
		return fmt.Errorf("no execution answered while profiling")
	}

	fmt.Printf("%s, %d clients, %.1f s: %d executions (%.1f/s), %d failed; CPU of the process tree from /proc: %s ms per execution\n\n",
		w.name, o.saturation, time.Duration(to-from).Seconds(), m.n, m.rate, m.failed, ms(m.cpu))
	p, err := readPerf(perfData, s.pidOf, from, to)
	if err != nil {
		return err
	}
	table := p.table(m.n)
	fmt.Print(table)
	if err := os.WriteFile(filepath.Join(o.profile, "phases.txt"), []byte(table), 0o644); err != nil {
		return err
	}

	top, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=25", pprofFile).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof: %v: %s", err, top)
	}
	fmt.Printf("\nthe service's Go CPU profile (%s), the top 25 functions:\n%s", pprofFile, top)
	fmt.Printf("\nperf's samples: %s (perf report -i %s); phases: %s\n", perfData, perfData, filepath.Join(o.profile, "phases.txt"))
	return nil
}

// monotonic is CLOCK_MONOTONIC, the clock perf's samples are stamped with
// (perf record -k CLOCK_MONOTONIC).
func monotonic() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// fetchCPUProfile saves the service's Go CPU profile over d.
func fetchCPUProfile(addr string, d time.Duration, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds()+0.5))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetching the Go profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching the Go profile: %s", resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// perfProfile is perf's samples of the service's tree and the kernel's
// threads, counted by phase.
type perfProfile struct {
	counts map[phaseKey]int
}

type phaseKey struct {
	phase  string
	kernel bool // sampled in the kernel (else in user space)
}

var (
	sampleRE = regexp.MustCompile(`^(.*?)\s+(\d+)/(\d+)\s+(\d+)\.(\d+):\s*$`)
	forkRE   = regexp.MustCompile(`PERF_RECORD_FORK\((\d+):\d+\):\((\d+):\d+\)`)
)

// readPerf reads perf's samples between from and to (CLOCK_MONOTONIC) and
// keeps those of service's process tree and of kernel threads.
func readPerf(data string, service int, from, to time.Duration) (*perfProfile, error) {
	cmd := exec.Command("perf", "script", "-i", data, "--show-task-events", "-F", "comm,pid,tid,time,ip,sym,dso")
	cmd.Stderr = io.Discard
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf script: %w", err)
	}
	parent := map[int]int{}
	children := map[int]int{} // forks per parent, during the window
	type sample struct {
		pid    int
		comm   string
		frames []string // function names, innermost first; kernel ones end in [k]
	}
	var samples []sample
	var cur *sample
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := forkRE.FindStringSubmatch(line); m != nil {
			child, _ := strconv.Atoi(m[1])
			par, _ := strconv.Atoi(m[2])
			if child != par {
				parent[child] = par
				children[par]++
			}
			continue
		}
		if strings.TrimSpace(line) == "" {
			cur = nil
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			cur = nil
			m := sampleRE.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			sec, _ := strconv.ParseInt(m[4], 10, 64)
			frac, _ := strconv.ParseFloat("0."+m[5], 64)
			at := time.Duration(sec)*time.Second + time.Duration(frac*float64(time.Second))
			if at < from || at > to {
				continue
			}
			pid, _ := strconv.Atoi(m[2])
			samples = append(samples, sample{pid: pid, comm: m[1]})
			cur = &samples[len(samples)-1]
			continue
		}
		if cur == nil {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 3 {
			continue
		}
		name := fields[1]
		if strings.Contains(line, "[kernel.kallsyms]") {
			name += " [k]"
		}
		cur.frames = append(cur.frames, name)
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("perf script: %w", err)
	}

	inTree := func(pid int) bool {
		for p, hops := pid, 0; p > 1 && hops < 64; p, hops = parent[p], hops+1 {
			if p == service {
				return true
			}
		}
		return false
	}
	// The fork server is the process of the tree that forks executions.
	forkServer := 0
	for p, n := range children {
		if inTree(p) && p != service && n > children[forkServer] {
			forkServer = p
		}
	}
	isKernelThread := func(pid int) bool { return pid == 2 || parent[pid] == 2 }
	prof := &perfProfile{counts: map[phaseKey]int{}}
	for _, s := range samples {
		kernel := len(s.frames) > 0 && strings.HasSuffix(s.frames[0], " [k]")
		var phase string
		switch {
		case s.pid == service:
			phase = servicePhase(s.frames)
		case isKernelThread(s.pid):
			phase = kernelThreadPhase(s.frames)
		case !inTree(s.pid):
			continue
		case s.comm == "nsjail":
			phase = "nsjail (the fork server's jail)"
		case s.pid == forkServer:
			phase = forkServerPhase(s.frames)
		default:
			phase = executionPhase(s.frames)
		}
		prof.counts[phaseKey{phase, kernel}]++
	}
	return prof, nil
}

// has tells whether a stack holds a frame named name.
func has(frames []string, names ...string) bool {
	for _, f := range frames {
		for _, n := range names {
			if strings.TrimSuffix(f, " [k]") == n {
				return true
			}
		}
	}
	return false
}

// hasPrefix tells whether a stack holds a frame whose name starts with one of
// prefixes.
func hasPrefix(frames []string, prefixes ...string) bool {
	for _, f := range frames {
		for _, p := range prefixes {
			if strings.HasPrefix(f, p) {
				return true
			}
		}
	}
	return false
}

// syscallOf names the system call a kernel stack is in, or "".
func syscallOf(frames []string) string {
	for _, f := range frames {
		f = strings.TrimSuffix(f, " [k]")
		for _, prefix := range []string{"__x64_sys_", "__do_sys_", "__se_sys_"} {
			if strings.HasPrefix(f, prefix) {
				return strings.TrimPrefix(f, prefix)
			}
		}
	}
	return ""
}

func isFault(frames []string) bool { return has(frames, "asm_exc_page_fault") }

func faultKind(frames []string) string {
	switch {
	case has(frames, "do_wp_page", "do_huge_pmd_wp_page"):
		return "copy-on-write"
	case has(frames, "filemap_map_pages", "do_read_fault", "filemap_fault"):
		return "file pages"
	case has(frames, "do_anonymous_page"):
		return "new pages"
	}
	return "fault handling"
}

func forkServerPhase(frames []string) string {
	switch {
	case has(frames, "copy_net_ns"):
		return "fork server: clone, new network namespace"
	case has(frames, "copy_namespaces"):
		return "fork server: clone, new user, pid, mount, ipc, uts namespaces"
	case has(frames, "dup_mm", "dup_mmap"):
		return "fork server: clone, copying its address space"
	case has(frames, "copy_process"):
		return "fork server: clone, the rest"
	case isFault(frames):
		return "fork server: page faults after forking (" + faultKind(frames) + ")"
	}
	return "fork server: its loop, messages, reaping"
}

func executionPhase(frames []string) string {
	if isFault(frames) {
		return "execution: page faults (" + faultKind(frames) + ")"
	}
	if has(frames, "do_exit") {
		if has(frames, "__mmput", "exit_mmap") {
			return "execution: exit, address space teardown"
		}
		return "execution: exit, namespaces and the rest"
	}
	switch syscallOf(frames) {
	case "mount", "umount", "umount2":
		return "execution: set-up, mounts (/tmp, /dev/shm, /proc)"
	case "seccomp", "prctl", "capset":
		return "execution: set-up, capabilities and seccomp"
	case "unshare", "sethostname", "setrlimit", "prlimit64", "chdir":
		return "execution: set-up, cgroup namespace, hostname, rlimits"
	case "":
		if len(frames) > 0 && strings.HasSuffix(frames[0], " [k]") {
			return "execution: kernel, other (scheduling, interrupts)"
		}
		return "execution: Python (set-up, harness, script)"
	}
	return "execution: other system calls (pipes, uid map, status socket, files)"
}

func servicePhase(frames []string) string {
	kernel := len(frames) > 0 && strings.HasSuffix(frames[0], " [k]")
	cgroupFuncs := []string{"github.com/pyexec/pyexec/executor/internal/cgroups.Hierarchy.", "github.com/pyexec/pyexec/executor/internal/cgroups.(*Exec)", "github.com/pyexec/pyexec/executor/internal/cgroups.removeCgroupTree", "github.com/pyexec/pyexec/executor/internal/cgroups.(*Pool)"}
	switch {
	case kernel && (hasPrefix(frames, "cgroup_", "kernfs_", "mem_cgroup_css", "css_") || syscallOf(frames) == "mkdir" || syscallOf(frames) == "rmdir"):
		return "service: cgroup create, limits, attach, remove"
	case hasPrefix(frames, cgroupFuncs...):
		return "service: cgroup create, limits, attach, remove"
	case hasPrefix(frames, "runtime.gcBgMarkWorker", "runtime.gcAssist", "runtime.bgsweep", "runtime.bgscavenge", "runtime.gcStart", "runtime.markroot", "runtime.scanobject"):
		return "service: Go garbage collector"
	case hasPrefix(frames, "encoding/json."):
		return "service: JSON"
	case hasPrefix(frames, "github.com/pyexec/pyexec/execlog.", "github.com/pyexec/pyexec/server.executionEntry"):
		return "service: logging"
	case hasPrefix(frames, "github.com/pyexec/pyexec/executor.", "github.com/pyexec/pyexec/executor/internal/"):
		return "service: executor (pipes, fork server messages, judging)"
	case hasPrefix(frames, "net/http.", "net.", "bufio.", "github.com/GoogleCloudPlatform/", "github.com/pyexec/pyexec/server."):
		return "service: HTTP"
	case kernel && hasPrefix(frames, "tcp_", "inet_", "sock_", "__sock_", "ip_", "__tcp"):
		return "service: HTTP"
	case hasPrefix(frames, "runtime.", "internal/runtime/"):
		return "service: Go runtime (scheduler, allocation, timers)"
	}
	return "service: other"
}

func kernelThreadPhase(frames []string) string {
	if has(frames, "cleanup_net") {
		return "kernel threads: network namespace teardown (shared with the rest of the machine)"
	}
	return "kernel threads: other (RCU, workqueues, interrupts; shared with the rest of the machine)"
}

// table prints the CPU per execution of each phase, split into user and
// kernel time, largest first within each part.
func (p *perfProfile) table(executions int) string {
	type row struct {
		phase        string
		user, kernel time.Duration
	}
	rows := map[string]*row{}
	var total time.Duration
	for k, n := range p.counts {
		r := rows[k.phase]
		if r == nil {
			r = &row{phase: k.phase}
			rows[k.phase] = r
		}
		d := time.Duration(n) * profilePeriod / time.Duration(executions)
		if k.kernel {
			r.kernel += d
		} else {
			r.user += d
		}
		total += d
	}
	var list []*row
	for _, r := range rows {
		list = append(list, r)
	}
	part := func(phase string) string { return strings.SplitN(phase, ":", 2)[0] }
	order := map[string]int{"fork server": 0, "execution": 1, "nsjail (the fork server's jail)": 2, "service": 3, "kernel threads": 4}
	sort.Slice(list, func(i, j int) bool {
		pi, pj := order[part(list[i].phase)], order[part(list[j].phase)]
		if pi != pj {
			return pi < pj
		}
		return list[i].user+list[i].kernel > list[j].user+list[j].kernel
	})
	var b strings.Builder
	fmt.Fprintf(&b, "CPU per execution by phase, from perf's samples (one per %v of CPU):\n", profilePeriod)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\tuser ms\tkernel ms\ttotal ms\tshare\t")
	usec := func(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }
	for _, r := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f%%\t\n", r.phase, usec(r.user), usec(r.kernel), usec(r.user+r.kernel), 100*float64(r.user+r.kernel)/float64(total))
	}
	fmt.Fprintf(tw, "total\t\t\t%s\t\t\n", usec(total))
	_ = tw.Flush()
	return b.String()
}
