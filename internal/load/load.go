// Package load drives a running pyexec service with a mix of good, failing
// and hostile scripts, checks every answer against what its script must get,
// and summarises statuses and latencies. It talks to loopback only.
package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Script is one kind of request and the answers it may get. Busy (503) is
// acceptable for every script: the load runs above the service's limits.
type Script struct {
	Name   string
	Class  string // good, failing or hostile
	Source string
	// Want lists acceptable answers as "200" or "400 <error_type>".
	Want []string
}

// Scripts is the mix. Hostile scripts are ones that end quickly (the load
// must not be all timeouts), plus one spin that runs into the timeout.
var Scripts = []Script{
	{"hello", "good", "def main():\n    print('Calculating...')\n    return {'answer': 2 + 2}\n", []string{"200"}},
	{"pandas", "good", "import pandas as pd\ndef main():\n    df = pd.DataFrame({'a': [1, 2, 3]})\n    return {'sum': int(df['a'].sum())}\n", []string{"200"}},
	{"numpy", "good", "import numpy as np\ndef main():\n    return float(np.arange(10).mean())\n", []string{"200"}},
	{"async", "good", "import asyncio\nasync def main():\n    await asyncio.sleep(0.01)\n    return [1, 2]\n", []string{"200"}},
	{"exception", "failing", "def main():\n    raise ValueError('boom')\n", []string{"400 exception"}},
	{"syntax", "failing", "def main(:\n    return 1\n", []string{"400 syntax_error"}},
	{"no_main", "failing", "x = 1\n", []string{"400 no_main"}},
	{"invalid_result", "failing", "def main():\n    return {1, 2}\n", []string{"400 invalid_result"}},
	{"exit", "failing", "import sys\ndef main():\n    sys.exit(3)\n", []string{"400 exited"}},
	// Under a short wall-clock limit on a loaded machine, filling the
	// memory limit can take longer than the timeout: either limit ends it.
	{"memory_bomb", "hostile", "def main():\n    b = []\n    while True:\n        b.append(bytearray(32 << 20))\n", []string{"400 memory_limit", "400 timeout"}},
	{"stdout_flood", "hostile", "import sys\ndef main():\n    while True:\n        sys.stdout.write('x' * 65536)\n", []string{"400 output_limit"}},
	{"network", "hostile", "import socket\ndef main():\n    try:\n        socket.create_connection(('127.0.0.1', 1), timeout=1)\n    except OSError as e:\n        return e.errno\n    return 'connected'\n", []string{"200"}},
	{"kill_all", "hostile", "import os, signal\ndef main():\n    try:\n        os.kill(-1, signal.SIGKILL)\n    except OSError:\n        pass\n    return 'alive'\n", []string{"200"}},
	{"daemon", "hostile", "import os, time\ndef main():\n    if os.fork() == 0:\n        os.setsid()\n        while True:\n            time.sleep(1)\n    return 'left'\n", []string{"200"}},
	{"fork_some", "hostile", "import os\ndef main():\n    n = 0\n    for _ in range(200):\n        try:\n            if os.fork() == 0:\n                os._exit(0)\n            n += 1\n        except OSError:\n            break\n    return n > 0\n", []string{"200"}},
	{"forged_report", "hostile", "import os\ndef main():\n    os.write(4, b'{\"ok\": false, \"error_type\": \"internal\"}')\n    os._exit(0)\n", []string{"400 exited"}},
	{"spin", "hostile", "def main():\n    while True:\n        pass\n", []string{"400 timeout"}},
}

// Config is one load run.
type Config struct {
	URL   string // the service's base URL, e.g. http://127.0.0.1:8080
	Count int    // executions in all
	// Duration, when positive, stops sending new scripts once it has
	// passed (Count is then a cap); requests in flight finish normally.
	Duration    time.Duration
	Concurrency int // requests in flight at once
	// Mix weighs the classes, e.g. {"good": 6, "failing": 2, "hostile": 2}.
	Mix map[string]int
	// Seed makes the sequence of scripts reproducible.
	Seed uint64
	// RequestTimeout bounds one request; 0 means two minutes.
	RequestTimeout time.Duration
	// RetryBusy is how many times a script answered busy is sent again
	// (after a short backoff), so that every script of the mix runs even
	// far above the service's limits. Every busy answer is counted.
	RetryBusy int
}

// ParseMix reads "good=6,failing=2,hostile=2".
func ParseMix(s string) (map[string]int, error) {
	mix := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(w)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("mix entry %q: want class=weight", part)
		}
		if !slices.ContainsFunc(Scripts, func(s Script) bool { return s.Class == name }) {
			return nil, fmt.Errorf("mix entry %q: no scripts of class %q (good, failing, hostile)", part, name)
		}
		mix[name] = n
	}
	return mix, nil
}

// CheckURL refuses any URL that is not http on loopback: the tool is for
// the service on this machine.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("parsing URL: %w", err)
	}
	if u.Scheme != "http" {
		return fmt.Errorf("URL %q: only http on loopback is allowed", raw)
	}
	switch u.Hostname() {
	case "127.0.0.1", "::1", "localhost":
		return nil
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() && (ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.Equal(net.IPv6loopback)) {
		return nil
	}
	return fmt.Errorf("URL %q: host must be 127.0.0.1, ::1 or localhost", raw)
}

// Mismatch is an answer a script must not get.
type Mismatch struct {
	Script string
	Got    string
	Body   string
}

// Report summarises a run.
type Report struct {
	Count    int // scripts sent
	Requests int // requests made, retries of busy answers included
	Duration time.Duration
	// ByOutcome counts answers as "200", "400 exception", "503 busy",
	// "transport error".
	ByOutcome map[string]int
	// ByScript counts the scripts that ran (got an answer other than busy)
	// per script name.
	ByScript   map[string]int
	Mismatches []Mismatch
	Latencies  []time.Duration // sorted
}

// Percentile returns the p-th percentile latency (0 < p <= 100).
func (r Report) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.Latencies))*p/100+0.5) - 1
	return r.Latencies[min(max(i, 0), len(r.Latencies)-1)]
}

// String renders the report for people.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d scripts, %d requests in %v (%.1f requests/s)\n", r.Count, r.Requests, r.Duration.Round(time.Millisecond), float64(r.Requests)/r.Duration.Seconds())
	keys := make([]string, 0, len(r.ByOutcome))
	for k := range r.ByOutcome {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-24s %d\n", k, r.ByOutcome[k])
	}
	fmt.Fprintf(&b, "latency p50 %v p90 %v p99 %v max %v\n", r.Percentile(50).Round(time.Millisecond),
		r.Percentile(90).Round(time.Millisecond), r.Percentile(99).Round(time.Millisecond), r.Percentile(100).Round(time.Millisecond))
	fmt.Fprintf(&b, "mismatches: %d\n", len(r.Mismatches))
	for i, m := range r.Mismatches {
		if i == 10 {
			fmt.Fprintf(&b, "  …\n")
			break
		}
		fmt.Fprintf(&b, "  %s got %s: %s\n", m.Script, m.Got, m.Body)
	}
	return b.String()
}

// Run sends cfg.Count executions, cfg.Concurrency at a time, and checks
// every answer.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := CheckURL(cfg.URL); err != nil {
		return Report{}, err
	}
	if cfg.Count < 1 || cfg.Concurrency < 1 {
		return Report{}, errors.New("count and concurrency must be positive")
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 2 * time.Minute
	}
	pool := weighted(cfg.Mix)
	if len(pool) == 0 {
		return Report{}, errors.New("the mix selects no script")
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	client := &http.Client{
		Timeout:   cfg.RequestTimeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency, MaxConnsPerHost: cfg.Concurrency},
	}
	defer client.CloseIdleConnections()

	rep := Report{Count: cfg.Count, ByOutcome: map[string]int{}, ByScript: map[string]int{}}
	var mu sync.Mutex
	jobs := make(chan Script)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range jobs {
				for attempt := 0; ; attempt++ {
					t0 := time.Now()
					outcome, body := Execute(ctx, client, cfg.URL, s.Source)
					d := time.Since(t0)
					mu.Lock()
					rep.Requests++
					rep.ByOutcome[outcome]++
					rep.Latencies = append(rep.Latencies, d)
					if !Acceptable(s, outcome) {
						rep.Mismatches = append(rep.Mismatches, Mismatch{Script: s.Name, Got: outcome, Body: fmt.Sprintf("%.300s", body)})
					}
					retry := outcome == "503 busy" && attempt < cfg.RetryBusy && ctx.Err() == nil
					if !retry && outcome != "503 busy" {
						rep.ByScript[s.Name]++
					}
					mu.Unlock()
					if !retry {
						break
					}
					time.Sleep(time.Duration(20*(attempt+1)) * time.Millisecond)
				}
			}
		}()
	}
	var stop <-chan time.Time
	if cfg.Duration > 0 {
		stop = time.After(cfg.Duration)
	}
	rep.Count = 0
feed:
	for range cfg.Count {
		select {
		case jobs <- pool[rng.IntN(len(pool))]:
			rep.Count++
		case <-ctx.Done():
			break feed
		case <-stop:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	rep.Duration = time.Since(start)
	sort.Slice(rep.Latencies, func(i, j int) bool { return rep.Latencies[i] < rep.Latencies[j] })
	return rep, ctx.Err()
}

// Acceptable tells whether outcome is an answer s may get.
func Acceptable(s Script, outcome string) bool {
	return outcome == "503 busy" || slices.Contains(s.Want, outcome)
}

// Execute posts one script and names the answer: "200", "<status>
// <error_type>", or "transport error" / "bad body" when there is no valid
// answer at all.
func Execute(ctx context.Context, client *http.Client, base, source string) (outcome, body string) {
	payload, _ := json.Marshal(map[string]string{"script": source})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/execute", bytes.NewReader(payload))
	if err != nil {
		return "transport error", err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "transport error", err.Error()
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return "transport error", err.Error()
	}
	var answer struct {
		ErrorType string `json:"error_type"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil || resp.Header.Get("X-Execution-Id") == "" {
		return "bad body", fmt.Sprintf("%.300s", raw)
	}
	if resp.StatusCode == http.StatusOK && answer.ErrorType == "" {
		return "200", string(raw)
	}
	return fmt.Sprintf("%d %s", resp.StatusCode, answer.ErrorType), string(raw)
}

func weighted(mix map[string]int) []Script {
	var pool []Script
	for _, s := range Scripts {
		for i := 0; i < mix[s.Class]; i++ {
			pool = append(pool, s)
		}
	}
	return pool
}
