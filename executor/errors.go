package executor

import (
	"errors"
	"fmt"
)

// ErrorType names a failure the way the API's `error_type` field does.
type ErrorType string

// The error types of the API contract (docs/api.md's table of them). Every
// failure of Run maps to exactly one.

// TypeInvalidRequest is a request or script that breaks the rules (empty,
// too large, not UTF-8, a NUL byte, a field of the wrong shape): nothing
// ran. The harness says it too, before main runs, of a main whose
// signature does not fit the request's input.
const TypeInvalidRequest ErrorType = "invalid_request"

// What the script did, as the harness reports it: no top-level main, a
// script that does not parse, an exception from the module body or main(),
// a return value that is not strict JSON, or an exit (or a fatal signal)
// before main() returned.
const (
	TypeNoMain        ErrorType = "no_main"
	TypeSyntaxError   ErrorType = "syntax_error"
	TypeException     ErrorType = "exception"
	TypeInvalidResult ErrorType = "invalid_result"
	TypeExited        ErrorType = "exited"
)

// The limits: wall-clock (or CPU) time, memory, and stdout or the result
// over its cap.
const (
	TypeTimeout     ErrorType = "timeout"
	TypeMemoryLimit ErrorType = "memory_limit"
	TypeOutputLimit ErrorType = "output_limit"
)

// Faults of the service, not of the script: ErrBusy, ErrSandboxUnavailable,
// and anything else, whose details are for the logs only.
const (
	TypeBusy               ErrorType = "busy"
	TypeSandboxUnavailable ErrorType = "sandbox_unavailable"
	TypeInternal           ErrorType = "internal"
)

// Sentinel errors for faults of the service rather than of the script. A caller
// may retry them; the script was not run to completion.
var (
	// ErrBusy means every execution slot and every queue place is taken, or the
	// executor is shutting down.
	ErrBusy = errors.New("executor busy")
	// ErrSandboxUnavailable means the sandbox self-test has not passed, so
	// nothing is run: pyexec never runs a script with less isolation.
	ErrSandboxUnavailable = errors.New("sandbox unavailable")
)

// Error is a failure the client caused and may see: a bad request or a
// script that failed. Its Message is safe to return verbatim.
type Error struct {
	Type      ErrorType
	Message   string
	Traceback string // user frames only; set for TypeException
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Type, e.Message) }

// TypeOf tells which error type err stands for: the Error's own type, busy
// or sandbox_unavailable for the sentinels, and internal for anything else.
func TypeOf(err error) ErrorType {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Type
	case errors.Is(err, ErrBusy):
		return TypeBusy
	case errors.Is(err, ErrSandboxUnavailable):
		return TypeSandboxUnavailable
	default:
		return TypeInternal
	}
}
