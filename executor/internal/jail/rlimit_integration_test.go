//go:build integration

package jail

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor/internal/cgroups"
)

// Where no cgroup hierarchy is usable, limits fall back to rlimits, the
// fallback is reported, and the limits still hold.
func TestWithoutCgroupsLimitsFallBackToRlimits(t *testing.T) {
	cfg := realConfig(t)
	cfg.CgroupRoot = t.TempDir() // no hierarchy here
	cfg.MaxProcs = 16
	cfg.Timeout = 10 * time.Second
	e := startExecutor(t, cfg)

	if got := e.Health().Isolation.Limits; got != string(cgroups.Rlimit) {
		t.Fatalf("Health().Isolation.Limits = %q, want %q", got, cgroups.Rlimit)
	}
	tests := []struct {
		name     string
		script   string
		wantType api.ErrorType
	}{
		{"an allocation past the limit is a memory_limit", "def main():\n    b = bytearray(4 << 30)\n    return len(b)\n", api.ErrorTypeMemoryLimit},
		{"a fork bomb stops at the process limit", `
import os
def main():
    n = 0
    try:
        while True:
            if os.fork() == 0:
                import time
                time.sleep(30)
                os._exit(0)
            n += 1
    except OSError:
        return n
`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := e.Run(context.Background(), Request{Script: tt.script})
			if TypeOf(err) != tt.wantType && !(tt.wantType == "" && err == nil) {
				t.Fatalf("Run = %s, %v; want error type %q", res.Value, err, tt.wantType)
			}
			if tt.wantType == "" {
				var forks int
				if _, scanErr := fmt.Sscan(string(res.Value), &forks); scanErr != nil || forks < 1 || forks >= cfg.MaxProcs {
					t.Errorf("fork bomb made %s processes, want between 1 and %d", res.Value, cfg.MaxProcs)
				}
			}
		})
	}
	t.Run("a request's tighter limit lowers the address-space limit", func(t *testing.T) {
		script := "def main():\n    return len(bytearray(300 << 20))\n"
		if res, err := e.Run(context.Background(), Request{Script: script}); err != nil {
			t.Fatalf("Run(300 MiB under the service's 512 MiB) = %s, %v; want success", res.Value, err)
		}
		_, err := e.Run(context.Background(), Request{Script: script, MemoryBytes: 256 << 20})
		if TypeOf(err) != api.ErrorTypeMemoryLimit || !strings.Contains(err.Error(), "Memory limit exceeded (256 MB)") {
			t.Errorf("Run(300 MiB under a 256 MiB request limit) = %v, want memory_limit (256 MB)", err)
		}
	})
	t.Run("pandas and numpy still work under the address-space limit", func(t *testing.T) {
		script := "import pandas as pd, numpy as np\ndef main():\n    return int(pd.DataFrame({'a': np.arange(1000)}).a.sum())\n"
		res, err := e.Run(context.Background(), Request{Script: script})
		if err != nil || string(res.Value) != "499500" {
			t.Errorf("Run(pandas sum) = %s, %v; want 499500", res.Value, err)
		}
	})
}
