//go:build integration

package jail

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/pyexec/pyexec/api"
)

// The tests of this build tag start real jails: they need root, nsjail and
// the runtime (`make runtime`). Run them with
// `go test -race -tags integration ./executor/`.

// realConfig is the configuration from the environment, failing (never
// skipping) when the runtime it names is missing: the test command installs it.
func realConfig(t *testing.T) Config {
	t.Helper()
	cfg, err := ConfigFromEnv(os.Getenv)
	if err != nil {
		t.Fatalf("ConfigFromEnv: %v", err)
	}
	for _, p := range []string{cfg.PythonPath, cfg.NsjailPath} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("runtime missing (%v): run `make runtime` or set PYEXEC_PYTHON and PYEXEC_NSJAIL", err)
		}
	}
	return cfg
}

// startExecutor starts an executor whose self-test must pass, and shuts it
// down at cleanup, failing if it leaves a cgroup or file behind.
func startExecutor(t *testing.T, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := e.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if left := e.Leftovers(); len(left) > 0 {
			t.Errorf("Leftovers() = %v, want none", left)
		}
	})
	return e
}

// Shutdown lets a running execution go on until its context is done, then
// kills it: the execution answers busy (the client may run it elsewhere),
// Shutdown says its grace ran out and returns at once, not when the script
// would have ended, and nothing is left behind.
func TestShutdownKillsWhatOutlivesItsContext(t *testing.T) {
	for _, mode := range allModes {
		t.Run(string(mode), func(t *testing.T) {
			e := modeExecutor(t, mode)
			ran := make(chan error, 1)
			go func() {
				_, err := e.Run(context.Background(), Request{Script: "import time\ndef main():\n    time.sleep(60)\n"})
				ran <- err
			}()
			time.Sleep(time.Second) // the execution holds its slot

			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := e.Shutdown(ctx)
			took := time.Since(start)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Shutdown = %v, want the grace's deadline named", err)
			}
			if took > 10*time.Second {
				t.Errorf("Shutdown took %v past a 500ms grace, want it to kill and return", took)
			}
			if err := <-ran; !errors.Is(err, ErrBusy) {
				t.Errorf("Run of the killed execution = %v, want ErrBusy", err)
			}
			if left := e.Leftovers(); len(left) > 0 {
				t.Errorf("Leftovers() after Shutdown = %v, want none", left)
			}
			if _, err := e.Run(context.Background(), Request{Script: "def main():\n    return 1\n"}); !errors.Is(err, ErrBusy) && TypeOf(err) != api.ErrorTypeSandboxUnavailable {
				t.Errorf("Run after Shutdown = %v, want it refused", err)
			}
		})
	}
}
