package jail

import (
	"errors"
	"fmt"

	"github.com/pyexec/pyexec/api"
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
	Type      api.ErrorType
	Message   string
	Traceback string // user frames only; set for api.ErrorTypeException
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Type, e.Message) }

// TypeOf tells which error type err stands for: the Error's own type, busy
// or sandbox_unavailable for the sentinels, and internal for anything else.
// Every failure of Run maps to exactly one.
func TypeOf(err error) api.ErrorType {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Type
	case errors.Is(err, ErrBusy):
		return api.ErrorTypeBusy
	case errors.Is(err, ErrSandboxUnavailable):
		return api.ErrorTypeSandboxUnavailable
	default:
		return api.ErrorTypeInternal
	}
}
