package executor

import (
	"errors"
	"fmt"
)

// ErrorType names a failure the way the API's `error_type` field does.
type ErrorType string

// The error types of the API contract. Every failure of Run maps to exactly one.
const (
	TypeInvalidRequest     ErrorType = "invalid_request"
	TypeNoMain             ErrorType = "no_main"
	TypeSyntaxError        ErrorType = "syntax_error"
	TypeException          ErrorType = "exception"
	TypeInvalidResult      ErrorType = "invalid_result"
	TypeTimeout            ErrorType = "timeout"
	TypeMemoryLimit        ErrorType = "memory_limit"
	TypeOutputLimit        ErrorType = "output_limit"
	TypeExited             ErrorType = "exited"
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
