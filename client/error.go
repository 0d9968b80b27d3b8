package client

import (
	"fmt"
	"strings"
	"time"
	"unicode"
)

// The error types pyexec answers with, as in the error_type field of a
// failure. Error.Type holds one of them, or "" when the answer was not one of
// pyexec's (a proxy's error page, say).
const (
	// ErrorTypeInvalidRequest: the request was malformed or broke a rule (400,
	// or 413 for a body over the size limit).
	ErrorTypeInvalidRequest = "invalid_request"
	// ErrorTypeNoMain: the script binds no main at the top level (400).
	ErrorTypeNoMain = "no_main"
	// ErrorTypeSyntaxError: the script does not parse (400).
	ErrorTypeSyntaxError = "syntax_error"
	// ErrorTypeException: the module body or main raised (400); Traceback
	// holds the script's frames.
	ErrorTypeException = "exception"
	// ErrorTypeInvalidResult: main's return value is not strict JSON (400).
	ErrorTypeInvalidResult = "invalid_result"
	// ErrorTypeTimeout: the wall-clock limit was reached (400).
	ErrorTypeTimeout = "timeout"
	// ErrorTypeMemoryLimit: the memory limit was reached (400).
	ErrorTypeMemoryLimit = "memory_limit"
	// ErrorTypeOutputLimit: stdout, the result or the output files went over
	// their cap (400).
	ErrorTypeOutputLimit = "output_limit"
	// ErrorTypeExited: the script exited or was killed by a signal before
	// main returned (400).
	ErrorTypeExited = "exited"
	// ErrorTypeBusy: every execution slot and queue place was taken (503).
	// Execute retries it.
	ErrorTypeBusy = "busy"
	// ErrorTypeSandboxUnavailable: the sandbox's self-test has not passed, so
	// the service runs nothing (503). Execute retries it.
	ErrorTypeSandboxUnavailable = "sandbox_unavailable"
	// ErrorTypeInternal: a fault of the service (500); details are in its log
	// under the execution ID.
	ErrorTypeInternal = "internal"
	// ErrorTypeNotFound: the URL's path is not one pyexec serves (404); the
	// client's base URL is probably wrong.
	ErrorTypeNotFound = "not_found"
	// ErrorTypeMethodNotAllowed: the path does not take the method (405).
	ErrorTypeMethodNotAllowed = "method_not_allowed"
	// ErrorTypeForbidden: the service refused the request for where it came
	// from (403): a Host that is not one of its names (PYEXEC_ALLOWED_HOSTS
	// lists the ones beyond loopback), or an Origin of another site.
	ErrorTypeForbidden = "forbidden"
	// ErrorTypeUnsupportedMediaType: the body was not application/json (415).
	ErrorTypeUnsupportedMediaType = "unsupported_media_type"
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
	switch e.Type {
	case ErrorTypeBusy, ErrorTypeSandboxUnavailable:
		return true
	case "":
		return e.StatusCode == 429 || e.StatusCode == 503
	}
	return false
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
