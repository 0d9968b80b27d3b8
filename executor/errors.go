package executor

import (
	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor/internal/jail"
)

// Sentinel errors for faults of the service rather than of the script. A caller
// may retry them; the script was not run to completion.
var (
	// ErrBusy means every execution slot and every queue place is taken, or the
	// executor is shutting down.
	ErrBusy = jail.ErrBusy
	// ErrSandboxUnavailable means the sandbox self-test has not passed, so
	// nothing is run: pyexec never runs a script with less isolation.
	ErrSandboxUnavailable = jail.ErrSandboxUnavailable
)

// Error is a failure the client caused and may see: a bad request or a
// script that failed. Its Message is safe to return verbatim.
type Error = jail.Error

// TypeOf tells which error type err stands for: the Error's own type, busy
// or sandbox_unavailable for the sentinels, and internal for anything else.
// Every failure of Run maps to exactly one.
func TypeOf(err error) api.ErrorType { return jail.TypeOf(err) }
