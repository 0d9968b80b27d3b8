// Command pyexec-load drives a pyexec service running on this machine with a
// mix of good, failing and hostile scripts, and checks every answer.
//
//	pyexec-load -url http://127.0.0.1:8080 -n 10000 -c 16 -mix good=6,failing=2,hostile=2
//
// It prints the count of each status and error type, latency percentiles and
// every answer a script must not get, and exits 1 if there was one. Only
// loopback URLs are accepted.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pyexec/pyexec/internal/load"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "the service's base URL (127.0.0.1, ::1 or localhost only)")
	count := flag.Int("n", 1000, "executions in all")
	conc := flag.Int("c", 16, "requests in flight at once")
	mix := flag.String("mix", "good=6,failing=2,hostile=2", "weights of the script classes")
	seed := flag.Uint64("seed", 1, "seed of the script sequence")
	retry := flag.Int("retry-busy", 0, "times to resend a script answered busy")
	flag.Parse()

	weights, err := load.ParseMix(*mix)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pyexec-load:", err)
		os.Exit(2)
	}
	if err := load.CheckURL(*url); err != nil {
		fmt.Fprintln(os.Stderr, "pyexec-load:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := load.Run(ctx, load.Config{URL: *url, Count: *count, Concurrency: *conc, Mix: weights, Seed: *seed, RetryBusy: *retry})
	fmt.Print(rep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pyexec-load:", err)
		os.Exit(2)
	}
	if len(rep.Mismatches) > 0 {
		os.Exit(1)
	}
}
