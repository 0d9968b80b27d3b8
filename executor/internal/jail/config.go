package jail

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/pyexec/pyexec/executor/internal/uids"
)

// Mode chooses how executions get their sandbox.
type Mode string

const (
	// ModeAuto picks the fastest mode whose isolation self-test passes.
	ModeAuto Mode = ""
	// ModeCold runs every execution in a fresh jail with a fresh interpreter.
	ModeCold Mode = "cold"
	// ModePool runs every execution in a fresh jail with a fresh
	// interpreter that was started, with numpy and pandas imported, before
	// the script arrived.
	ModePool Mode = "pool"
	// ModeFork runs every execution in a process forked from an interpreter
	// that has numpy and pandas imported, which isolates itself in
	// namespaces, a cgroup and a seccomp filter of its own before user code
	// runs.
	ModeFork Mode = "fork"
)

// Config is the executor's static configuration, read once from the
// environment and validated before anything runs.
type Config struct {
	NsjailPath string // the real nsjail binary, not a wrapper script
	PythonPath string // the interpreter that has pandas and numpy

	Timeout             time.Duration // wall time of one execution
	MemoryBytes         int64         // all processes of one execution together
	MaxScriptBytes      int           // UTF-8 bytes of the script
	MaxOutputBytes      int           // stdout kept
	MaxResultBytes      int           // JSON of main()'s return value
	MaxInputFilesBytes  int           // a request's files, decoded, together
	MaxOutputFilesBytes int           // the files left under outputs/, together
	MaxProcs            int           // processes and threads of one execution
	TmpBytes            int64         // the private /tmp (and /dev/shm)
	Concurrency         int           // executions at once
	Queue               int           // executions waiting for a slot
	Mode                Mode

	// CgroupRoot is where the cgroup hierarchies are mounted; tests point it
	// elsewhere to exercise detection.
	CgroupRoot string

	// Notify, if set, is told of what the executor does on its own, outside
	// any one execution: a server started or replaced, and why. It is called
	// once per event and must not block.
	Notify func(Event)
}

// Event is something the executor did on its own, for the service's log.
type Event struct {
	Warning bool // something failed; the executor carries on without it
	Message string
}

func (c Config) notify(ev Event) {
	if c.Notify != nil {
		c.Notify(ev)
	}
}

// The defaults, as docs/operations.md's "Configuration" section lists them.
const (
	defaultNsjail         = "/opt/pyexec/bin/nsjail"
	defaultPython         = "/opt/pyexec/venv/bin/python3"
	defaultTimeoutSeconds = 30
	defaultMemoryMB       = 512
	defaultScriptBytes    = 100 * 1024
	defaultOutputBytes    = 1 << 20
	defaultResultBytes    = 4 << 20
	defaultInputFiles     = 8 << 20
	defaultOutputFiles    = 8 << 20
	defaultProcs          = 64
	defaultTmpMB          = 64
)

// maxConcurrency bounds PYEXEC_CONCURRENCY; the outside uid ranges (package
// uids) are sized for it.
const maxConcurrency = uids.MaxConcurrency

// ConfigFromEnv reads the configuration from environment variables through
// getenv (os.Getenv in production). Unset variables take the defaults; set but
// malformed ones are errors, never silently ignored.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cpus := runtime.NumCPU()
	cfg := Config{
		NsjailPath: envString(getenv, "PYEXEC_NSJAIL", defaultNsjail),
		PythonPath: envString(getenv, "PYEXEC_PYTHON", defaultPython),
		Mode:       Mode(strings.ToLower(strings.TrimSpace(getenv("PYEXEC_MODE")))),
		CgroupRoot: "/sys/fs/cgroup",
	}
	var errs []error
	intVar := func(name string, def int) int {
		raw := strings.TrimSpace(getenv(name))
		if raw == "" {
			return def
		}
		n, err := strconv.Atoi(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q is not a whole number", name, raw))
			return def
		}
		return n
	}
	cfg.Timeout = time.Duration(intVar("PYEXEC_TIMEOUT_SECONDS", defaultTimeoutSeconds)) * time.Second
	cfg.MemoryBytes = int64(intVar("PYEXEC_MEMORY_MB", defaultMemoryMB)) << 20
	cfg.MaxScriptBytes = intVar("PYEXEC_MAX_SCRIPT_BYTES", defaultScriptBytes)
	cfg.MaxOutputBytes = intVar("PYEXEC_MAX_OUTPUT_BYTES", defaultOutputBytes)
	cfg.MaxResultBytes = intVar("PYEXEC_MAX_RESULT_BYTES", defaultResultBytes)
	cfg.MaxInputFilesBytes = intVar("PYEXEC_MAX_INPUT_FILES_BYTES", defaultInputFiles)
	cfg.MaxOutputFilesBytes = intVar("PYEXEC_MAX_OUTPUT_FILES_BYTES", defaultOutputFiles)
	cfg.MaxProcs = intVar("PYEXEC_MAX_PROCS", defaultProcs)
	cfg.TmpBytes = int64(intVar("PYEXEC_TMP_MB", defaultTmpMB)) << 20
	cfg.Concurrency = intVar("PYEXEC_CONCURRENCY", cpus)
	cfg.Queue = intVar("PYEXEC_QUEUE", 4*cfg.Concurrency)
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func envString(getenv func(string) string, name, def string) string {
	if v := strings.TrimSpace(getenv(name)); v != "" {
		return v
	}
	return def
}

// Validate reports every problem of the configuration at once, each naming
// the environment variable that sets it.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(filepath.IsAbs(c.NsjailPath), "PYEXEC_NSJAIL must be an absolute path, got %q", c.NsjailPath)
	check(filepath.IsAbs(c.PythonPath), "PYEXEC_PYTHON must be an absolute path, got %q", c.PythonPath)
	check(c.Timeout >= time.Second && c.Timeout <= time.Hour, "PYEXEC_TIMEOUT_SECONDS must be 1..3600, got %d", int(c.Timeout/time.Second))
	check(c.MemoryBytes >= 64<<20 && c.MemoryBytes <= 64<<30, "PYEXEC_MEMORY_MB must be 64..65536, got %d", c.MemoryBytes>>20)
	check(c.MaxScriptBytes >= 1 && c.MaxScriptBytes <= 10<<20, "PYEXEC_MAX_SCRIPT_BYTES must be 1..10485760, got %d", c.MaxScriptBytes)
	check(c.MaxOutputBytes >= 1 && c.MaxOutputBytes <= 64<<20, "PYEXEC_MAX_OUTPUT_BYTES must be 1..67108864, got %d", c.MaxOutputBytes)
	check(c.MaxResultBytes >= 1 && c.MaxResultBytes <= 64<<20, "PYEXEC_MAX_RESULT_BYTES must be 1..67108864, got %d", c.MaxResultBytes)
	check(c.MaxInputFilesBytes >= 0 && c.MaxInputFilesBytes <= 1<<30, "PYEXEC_MAX_INPUT_FILES_BYTES must be 0..1073741824, got %d", c.MaxInputFilesBytes)
	check(c.MaxOutputFilesBytes >= 0 && c.MaxOutputFilesBytes <= 64<<20, "PYEXEC_MAX_OUTPUT_FILES_BYTES must be 0..67108864, got %d", c.MaxOutputFilesBytes)
	check(c.MaxProcs >= 1 && c.MaxProcs <= 4096, "PYEXEC_MAX_PROCS must be 1..4096, got %d", c.MaxProcs)
	check(c.TmpBytes >= 1<<20 && c.TmpBytes <= 16<<30, "PYEXEC_TMP_MB must be 1..16384, got %d", c.TmpBytes>>20)
	check(c.Concurrency >= 1 && c.Concurrency <= maxConcurrency, "PYEXEC_CONCURRENCY must be 1..%d, got %d", maxConcurrency, c.Concurrency)
	check(c.Queue >= 0 && c.Queue <= 65536, "PYEXEC_QUEUE must be 0..65536, got %d", c.Queue)
	check(c.Mode == ModeAuto || c.Mode == ModeCold || c.Mode == ModePool || c.Mode == ModeFork,
		"PYEXEC_MODE must be empty, %q, %q or %q, got %q", ModeFork, ModePool, ModeCold, c.Mode)
	return errors.Join(errs...)
}
