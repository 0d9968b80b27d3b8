package sessions

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults of what ConfigFromEnv reads.
const (
	DefaultIdleTimeout = 10 * time.Minute
	DefaultMaxAge      = time.Hour
	// memoryPerSession is the instance memory the default of
	// PYEXEC_MAX_SESSIONS sets aside for each session: an idle session
	// after a pandas cell holds a few MiB of its own, and one at work
	// more, up to its memory limit.
	memoryPerSession = 32 << 20
)

// ConfigFromEnv reads the sessions' configuration with getenv:
// PYEXEC_SESSION_IDLE_SECONDS, PYEXEC_SESSION_MAX_SECONDS and
// PYEXEC_MAX_SESSIONS (by default the instance's memory / 32 MiB, at least
// 1). It refuses a malformed or out-of-range value, naming its variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := Config{IdleTimeout: DefaultIdleTimeout, MaxAge: DefaultMaxAge, Max: DefaultMax(instanceMemory())}
	for _, v := range []struct {
		name     string
		min, max int
		set      func(int)
	}{
		{"PYEXEC_SESSION_IDLE_SECONDS", 1, 7 * 24 * 3600, func(n int) { cfg.IdleTimeout = time.Duration(n) * time.Second }},
		{"PYEXEC_SESSION_MAX_SECONDS", 1, 7 * 24 * 3600, func(n int) { cfg.MaxAge = time.Duration(n) * time.Second }},
		{"PYEXEC_MAX_SESSIONS", 0, 100000, func(n int) { cfg.Max = n }},
	} {
		raw := strings.TrimSpace(getenv(v.name))
		if raw == "" {
			continue
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < v.min || n > v.max {
			return Config{}, fmt.Errorf("%s must be a whole number %d..%d, got %q", v.name, v.min, v.max, raw)
		}
		v.set(n)
	}
	return cfg, nil
}

// DefaultMax is PYEXEC_MAX_SESSIONS's default for an instance of memBytes.
func DefaultMax(memBytes int64) int {
	return int(max(1, memBytes/memoryPerSession))
}

// instanceMemory is the memory this instance may use: its cgroup's limit
// (Cloud Run's instance memory) where one is set, else the machine's.
func instanceMemory() int64 {
	total := memTotal()
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && n < total {
			return n
		}
	}
	return total
}

// memTotal is the machine's memory, from /proc/meminfo; 1 GiB if it cannot
// be read.
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 1 << 30
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			if kib, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
				return kib << 10
			}
		}
	}
	return 1 << 30
}
