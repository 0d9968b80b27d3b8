package executor

import "github.com/pyexec/pyexec/executor/internal/jail"

// Mode chooses how executions get their sandbox: ModeAuto, ModeCold,
// ModePool or ModeFork (package jail describes each).
type Mode = jail.Mode

// The modes.
const (
	// ModeAuto picks the fastest mode whose isolation self-test passes.
	ModeAuto = jail.ModeAuto
	// ModeCold runs every execution in a fresh jail with a fresh interpreter.
	ModeCold = jail.ModeCold
	// ModePool runs every execution in a fresh jail with a fresh
	// interpreter that was started, with numpy and pandas imported, before
	// the script arrived.
	ModePool = jail.ModePool
	// ModeFork runs every execution in a process forked from an interpreter
	// that has numpy and pandas imported, which isolates itself in
	// namespaces, a cgroup and a seccomp filter of its own before user code
	// runs.
	ModeFork = jail.ModeFork
)

// Config is the executor's static configuration, read once from the
// environment (ConfigFromEnv) and validated (its Validate) before anything
// runs.
type Config = jail.Config

// Event is something the executor did on its own, for the service's log.
type Event = jail.Event

// ConfigFromEnv reads the configuration from environment variables through
// getenv (os.Getenv in production). Unset variables take the defaults; set but
// malformed ones are errors, never silently ignored.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	return jail.ConfigFromEnv(getenv)
}
