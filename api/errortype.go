package api

import "net/http"

// ErrorType names a failure, as the error_type field of a Failure does
// (components.schemas.ErrorType of the OpenAPI document). Every failure
// has exactly one, and its HTTP status follows from it.
type ErrorType string

// ErrorTypeInvalidRequest is a request or script that breaks the rules
// (empty, too large, not UTF-8, a NUL byte, a field of the wrong shape):
// nothing ran. The harness says it too, before main runs, of a main whose
// signature does not fit the request's input. Its status is 400, or 413
// for a body over the size limit.
const ErrorTypeInvalidRequest ErrorType = "invalid_request"

// What the script did, as the harness reports it (400).
const (
	// ErrorTypeNoMain: the script binds no main at the top level.
	ErrorTypeNoMain ErrorType = "no_main"
	// ErrorTypeSyntaxError: the script does not parse.
	ErrorTypeSyntaxError ErrorType = "syntax_error"
	// ErrorTypeException: the module body or main raised; the failure's
	// traceback holds the script's frames.
	ErrorTypeException ErrorType = "exception"
	// ErrorTypeInvalidResult: main's return value is not strict JSON.
	ErrorTypeInvalidResult ErrorType = "invalid_result"
	// ErrorTypeExited: the script exited or was killed by a signal before
	// main returned.
	ErrorTypeExited ErrorType = "exited"
)

// The limits (400): wall-clock (or CPU) time, memory, and stdout, the
// result or the output files over their cap.
const (
	ErrorTypeTimeout     ErrorType = "timeout"
	ErrorTypeMemoryLimit ErrorType = "memory_limit"
	ErrorTypeOutputLimit ErrorType = "output_limit"
)

// Faults of the service, not of the script.
const (
	// ErrorTypeBusy: every execution slot and queue place is taken, or the
	// service is shutting down (503, retryable).
	ErrorTypeBusy ErrorType = "busy"
	// ErrorTypeSandboxUnavailable: the sandbox's self-test has not passed,
	// so the service runs nothing (503, retryable).
	ErrorTypeSandboxUnavailable ErrorType = "sandbox_unavailable"
	// ErrorTypeInternal: anything else (500); the details are only in the
	// service's log, under the execution ID.
	ErrorTypeInternal ErrorType = "internal"
)

// Refusals of the HTTP layer, before anything reaches the executor.
const (
	// ErrorTypeNotFound: the URL's path is not one the service serves (404).
	ErrorTypeNotFound ErrorType = "not_found"
	// ErrorTypeMethodNotAllowed: the path does not take the method (405);
	// the answer's Allow header lists the methods it takes.
	ErrorTypeMethodNotAllowed ErrorType = "method_not_allowed"
	// ErrorTypeForbidden: a request from a web page of another site, or
	// naming a Host that is not one of the service's (403).
	ErrorTypeForbidden ErrorType = "forbidden"
	// ErrorTypeUnsupportedMediaType: a body of another type than the path
	// takes (415).
	ErrorTypeUnsupportedMediaType ErrorType = "unsupported_media_type"
)

// Refusals of a session's paths (/sessions/{id}...).
const (
	// ErrorTypeSessionNotFound: no session of that ID lives on this
	// instance: it never existed, it ended (the message says why), or it
	// lives on another instance (404).
	ErrorTypeSessionNotFound ErrorType = "session_not_found"
	// ErrorTypeSessionBusy: a cell is already running in the session (409).
	ErrorTypeSessionBusy ErrorType = "session_busy"
)

// errorTypes is every error type with its status, in the order of the
// OpenAPI document's enum. retryable marks the faults after which the same
// request may succeed later; their answers carry Retry-After.
var errorTypes = []struct {
	t         ErrorType
	status    int
	retryable bool
}{
	{ErrorTypeInvalidRequest, http.StatusBadRequest, false},
	{ErrorTypeNoMain, http.StatusBadRequest, false},
	{ErrorTypeSyntaxError, http.StatusBadRequest, false},
	{ErrorTypeException, http.StatusBadRequest, false},
	{ErrorTypeInvalidResult, http.StatusBadRequest, false},
	{ErrorTypeTimeout, http.StatusBadRequest, false},
	{ErrorTypeMemoryLimit, http.StatusBadRequest, false},
	{ErrorTypeOutputLimit, http.StatusBadRequest, false},
	{ErrorTypeExited, http.StatusBadRequest, false},
	{ErrorTypeBusy, http.StatusServiceUnavailable, true},
	{ErrorTypeSandboxUnavailable, http.StatusServiceUnavailable, true},
	{ErrorTypeInternal, http.StatusInternalServerError, false},
	{ErrorTypeNotFound, http.StatusNotFound, false},
	{ErrorTypeMethodNotAllowed, http.StatusMethodNotAllowed, false},
	{ErrorTypeForbidden, http.StatusForbidden, false},
	{ErrorTypeUnsupportedMediaType, http.StatusUnsupportedMediaType, false},
	{ErrorTypeSessionNotFound, http.StatusNotFound, false},
	{ErrorTypeSessionBusy, http.StatusConflict, false},
}

// ErrorTypes returns every error type, in the order of the OpenAPI
// document's enum.
func ErrorTypes() []ErrorType {
	out := make([]ErrorType, len(errorTypes))
	for i, e := range errorTypes {
		out[i] = e.t
	}
	return out
}

// Status is the HTTP status a failure of type t is answered with
// (invalid_request's body over the size limit is the one exception: 413).
// A string that is no error type is a fault of the service: 500.
func (t ErrorType) Status() int {
	for _, e := range errorTypes {
		if e.t == t {
			return e.status
		}
	}
	return http.StatusInternalServerError
}

// Retryable reports whether a failure of type t is a passing fault of the
// service: the script did not run, and the same request may succeed later.
func (t ErrorType) Retryable() bool {
	for _, e := range errorTypes {
		if e.t == t {
			return e.retryable
		}
	}
	return false
}
