package main

// The soak (make soak): one default-mode service driven at saturation by the
// load package's mix of good, failing and hostile scripts for a long time,
// with what could leak measured at the start and end of each window: the
// resident memory and open file descriptors of the service's process tree,
// and the cgroups it holds. Throughput and p99 are those of each window.

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/pyexec/pyexec/internal/leakcheck"
	"github.com/pyexec/pyexec/internal/load"
)

// soakTimeoutSeconds is the soak service's PYEXEC_TIMEOUT_SECONDS.
const soakTimeoutSeconds = 3

// sample is what could leak, read from /proc and the cgroup hierarchies.
type sample struct {
	rss     int64 // bytes, summed over the process tree
	fds     int   // open file descriptors of the process tree
	procs   int   // processes in the tree
	cgroups int   // cgroups of the service, in every hierarchy
}

func (s sample) String() string {
	return fmt.Sprintf("RSS %4d MiB  fds %4d  processes %3d  cgroups %3d", s.rss>>20, s.fds, s.procs, s.cgroups)
}

func takeSample(pid int) sample {
	tree := append([]int{pid}, leakcheck.Descendants(pid)...)
	s := sample{procs: len(tree), cgroups: countCgroups("/sys/fs/cgroup", pid)}
	for _, p := range tree {
		s.rss += statusKB(p, "VmRSS:") << 10
		s.fds += leakcheck.FDs(p)
	}
	return s
}

// countCgroups counts the cgroup directories the service with pid owns: its
// instance directories, named "<pid>-<n>" under a "pyexec" directory
// (executor/internal/cgroups), and everything below them, in every hierarchy.
func countCgroups(root string, pid int) int {
	instance := regexp.MustCompile(`/pyexec/` + strconv.Itoa(pid) + `-[0-9]+(/|$)`)
	n := 0
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if instance.MatchString(path) {
			n++
		}
		return nil
	})
	return n
}

// runSoak runs the soak: o.soak in windows of o.window, one line per window.
func runSoak(o options) error {
	mix, err := load.ParseMix(o.mix)
	if err != nil {
		return err
	}
	// The hostile scripts that spin run into the execution timeout; at the
	// default 30 s they would hold every slot most of the time, so the soak's
	// service has a short one and turns over many more executions.
	s, err := startService(o, "default", "PYEXEC_TIMEOUT_SECONDS="+strconv.Itoa(soakTimeoutSeconds))
	if err != nil {
		return err
	}
	defer s.stop()
	printMachine([]*service{s})
	fmt.Printf("soak: %v in windows of %v, %d clients, PYEXEC_CONCURRENCY=%d, PYEXEC_TIMEOUT_SECONDS=%d, mix %s\n",
		o.soak, o.window, o.saturation, o.concurrent, soakTimeoutSeconds, o.mix)
	fmt.Printf("every figure of the process tree sums the service, nsjail, the fork server and every live execution\n\n")

	first := takeSample(s.pidOf)
	var all load.Report
	all.ByOutcome = map[string]int{}
	start := time.Now()
	for w := 1; time.Since(start) < o.soak; w++ {
		before := takeSample(s.pidOf)
		fmt.Printf("window %d start  %v\n", w, before)
		rep, err := load.Run(context.Background(), load.Config{
			URL: s.base, Count: 1 << 30, Duration: min(o.window, o.soak-time.Since(start)),
			Concurrency: o.saturation, Mix: mix, Seed: uint64(w),
		})
		if err != nil {
			return err
		}
		fmt.Printf("window %d end    %v\n", w, takeSample(s.pidOf))
		fmt.Printf("window %d load   %d requests in %v: %.1f requests/s, p50 %v, p99 %v, busy %d, mismatches %d\n\n",
			w, rep.Requests, rep.Duration.Round(time.Second), float64(rep.Requests)/rep.Duration.Seconds(),
			rep.Percentile(50).Round(time.Millisecond), rep.Percentile(99).Round(time.Millisecond),
			rep.ByOutcome["503 busy"], len(rep.Mismatches))
		all.Count += rep.Count
		all.Requests += rep.Requests
		all.Duration += rep.Duration
		for k, v := range rep.ByOutcome {
			all.ByOutcome[k] += v
		}
		all.Mismatches = append(all.Mismatches, rep.Mismatches...)
		all.Latencies = append(all.Latencies, rep.Latencies...)
	}
	// Let the last executions' processes go, and their cgroups leave the
	// pool (executor/internal/cgroups/pool.go's idleLimit, 5 s), before the final reading:
	// what remains then is what the service keeps.
	time.Sleep(10 * time.Second)
	idle := takeSample(s.pidOf)
	fmt.Printf("idle after the soak  %v\n", idle)
	fmt.Printf("idle before the soak %v\n", first)
	fmt.Printf("change, start of the first window to idle after: RSS %+.1f%%, fds %+d, processes %+d, cgroups %+d\n",
		pct(first.rss, idle.rss), idle.fds-first.fds, idle.procs-first.procs, idle.cgroups-first.cgroups)
	slices.Sort(all.Latencies)
	fmt.Printf("\nwhole soak: %s", all.String())
	if len(all.Mismatches) > 0 {
		return fmt.Errorf("%d answers a script must not get", len(all.Mismatches))
	}
	return nil
}

func pct(a, b int64) float64 {
	if a == 0 {
		return 0
	}
	return 100 * float64(b-a) / float64(a)
}
