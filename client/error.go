package client

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/pyexec/pyexec/api"
)

// The error types pyexec answers with, as in the error_type field of a
// failure: package api's, whose documentation says when each is answered
// and with which status. Error.Type holds one of them, or "" when the
// answer was not one of pyexec's (a proxy's error page, say). Execute
// retries busy and sandbox_unavailable.
const (
	ErrorTypeInvalidRequest       = string(api.ErrorTypeInvalidRequest)
	ErrorTypeNoMain               = string(api.ErrorTypeNoMain)
	ErrorTypeSyntaxError          = string(api.ErrorTypeSyntaxError)
	ErrorTypeException            = string(api.ErrorTypeException)
	ErrorTypeInvalidResult        = string(api.ErrorTypeInvalidResult)
	ErrorTypeTimeout              = string(api.ErrorTypeTimeout)
	ErrorTypeMemoryLimit          = string(api.ErrorTypeMemoryLimit)
	ErrorTypeOutputLimit          = string(api.ErrorTypeOutputLimit)
	ErrorTypeExited               = string(api.ErrorTypeExited)
	ErrorTypeBusy                 = string(api.ErrorTypeBusy)
	ErrorTypeSandboxUnavailable   = string(api.ErrorTypeSandboxUnavailable)
	ErrorTypeInternal             = string(api.ErrorTypeInternal)
	ErrorTypeNotFound             = string(api.ErrorTypeNotFound)
	ErrorTypeMethodNotAllowed     = string(api.ErrorTypeMethodNotAllowed)
	ErrorTypeForbidden            = string(api.ErrorTypeForbidden)
	ErrorTypeUnsupportedMediaType = string(api.ErrorTypeUnsupportedMediaType)
	ErrorTypeSessionNotFound      = string(api.ErrorTypeSessionNotFound)
	ErrorTypeSessionBusy          = string(api.ErrorTypeSessionBusy)
)

// Error is a failure answered by the service, or an answer the client could
// not read. Execute returns it as an error; get at it with errors.As:
//
//	var e *client.Error
//	if errors.As(err, &e) && e.Type == client.ErrorTypeTimeout { ... }
//
// Errors of the transport (connection refused, context cancelled) are not an
// *Error: no answer arrived.
type Error struct {
	// Type is one of the ErrorType constants, or "" when the answer was not
	// a pyexec failure (for example an HTML page from a proxy, or a 200 whose
	// body could not be read).
	Type string
	// Message is the service's error text, e.g. "Execution timed out after
	// 30 seconds", or a description of the unreadable answer.
	Message string
	// Traceback holds the script's own frames, for ErrorTypeException.
	Traceback string
	// Stdout is what the script printed before it failed.
	Stdout string
	// SessionEnded reports that a failed cell ended its session (a
	// timeout, the memory limit, or its process exiting): the session's
	// state is gone, and later calls answer ErrorTypeSessionNotFound. A
	// cell that raised (ErrorTypeException) leaves the session alive.
	SessionEnded bool
	// ExecutionID names the execution in the service's log (the
	// X-Execution-Id header); empty when the answer had none.
	ExecutionID string
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Body is the answer's body exactly as received.
	Body []byte

	retryAfter time.Duration // the answer's Retry-After, 0 if none
}

// Error describes the failure on one line: its type and message, or the
// status when the answer was not pyexec's.
func (e *Error) Error() string {
	if e.Type == "" {
		return fmt.Sprintf("pyexec: HTTP %d: %s", e.StatusCode, e.Message)
	}
	return fmt.Sprintf("pyexec: %s: %s", e.Type, e.Message)
}

// retryable reports whether the request was not run and may be sent again
// later: pyexec said busy or sandbox_unavailable, or the platform in front
// of it (Cloud Run's front end, a load balancer) answered 429 or 503 without
// a pyexec body.
func (e *Error) retryable() bool {
	if e.Type == "" {
		return e.StatusCode == 429 || e.StatusCode == 503
	}
	return api.ErrorType(e.Type).Retryable()
}

// snippet is the start of an unreadable body, on one line and printable,
// for a message.
func snippet(body []byte) string {
	const max = 200
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(body), "?")), " ")
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}
