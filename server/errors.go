package server

import (
	"errors"
	"fmt"
	"maps"
	"net/http"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/execlog"
	"github.com/pyexec/pyexec/executor"
	"github.com/pyexec/pyexec/internal/size"
	"github.com/pyexec/pyexec/sessions"
)

// This file is the one place where an error becomes an answer. Handlers
// return errors; mapError turns each into the status, the body, the
// headers and the log severity, for Execute and ExecuteEvent alike. The
// client sees the message, the log sees the cause.

// HTTPError is an error that says how it is answered. Handlers return it
// for what the HTTP layer refuses itself (a path, a method, a body type),
// or wrap another error in it to change that error's answer.
type HTTPError struct {
	// Code is the HTTP status; 0 means the status of the error type.
	Code int
	// Type is the error_type answered; "" means Err's own, as the
	// executor's errors are answered.
	Type api.ErrorType
	// Msg is the message answered, safe for the client to see. It goes
	// with Type.
	Msg string
	// Err is the cause, if any: what errors.Is and errors.As find, and
	// what the answer is made of when Type is "".
	Err error
	// Header holds headers of the answer, e.g. Allow.
	Header http.Header
}

func (e *HTTPError) Error() string {
	if e.Type == "" && e.Err != nil {
		return e.Err.Error()
	}
	return fmt.Sprintf("%s: %s", e.Type, e.Msg)
}

func (e *HTTPError) Unwrap() error { return e.Err }

var (
	// errNotFound is a path Execute does not serve.
	errNotFound = &HTTPError{Type: api.ErrorTypeNotFound, Msg: "Not found: use POST /execute or GET /healthz"}
	// errEventNotFound is a path ExecuteEvent does not serve.
	errEventNotFound = &HTTPError{Type: api.ErrorTypeNotFound, Msg: "Not found: deliver messages with POST / or use GET /healthz"}
	// errPanic stands for a handler that panicked: an internal error, whose
	// details (the panic and its stack) are only in the log.
	errPanic = errors.New("panic answering request")
)

// invalidRequest is a request or payload that can never run. It is the
// executor's own invalid_request, like a blank script: its message is
// answered as it is.
func invalidRequest(message string) error {
	return &executor.Error{Type: api.ErrorTypeInvalidRequest, Message: message}
}

// forbidden is a request the guard refuses for where it comes from or
// whom it names.
func forbidden(message string) error {
	return &HTTPError{Type: api.ErrorTypeForbidden, Msg: message}
}

// unsupportedMediaType is a request body of a type the path does not take.
func unsupportedMediaType(message string) error {
	return &HTTPError{Type: api.ErrorTypeUnsupportedMediaType, Msg: message}
}

// bodyTooLarge is the error of a body over limit bytes, an invalid request
// answered 413 rather than 400; its message states the limit.
func bodyTooLarge(limit int64) error {
	return &HTTPError{
		Code: http.StatusRequestEntityTooLarge,
		Err:  invalidRequest(fmt.Sprintf("Request body too large (max %s)", size.Text(limit, ""))),
	}
}

// methodNotAllowed is the error of a request whose method the path does not
// take; allow lists the ones it does, for the Allow header.
func methodNotAllowed(allow string) error {
	return &HTTPError{
		Type:   api.ErrorTypeMethodNotAllowed,
		Msg:    "Method not allowed: use " + allow,
		Header: http.Header{"Allow": {allow}},
	}
}

// failure is what mapError makes of an error.
type failure struct {
	status int
	// body is the answer's body; its Stdout is the caller's to fill with
	// what the script printed before it failed.
	body       api.Failure
	retryAfter string      // seconds, on 503s
	header     http.Header // an HTTPError's headers
	severity   execlog.Severity
	// redeliver: a fault of the service, after which the script may well
	// run. ExecuteEvent answers it so that Pub/Sub delivers the message
	// again; script errors and invalid payloads would fail the same way
	// again, so they are acknowledged.
	redeliver bool
}

// mapError is the one mapper from an error to an answer. executionID goes
// into the message of an internal error, so that the client can quote it
// and the log entry can be found.
func mapError(err error, executionID string) failure {
	var f failure
	var he *HTTPError
	if errors.As(err, &he) && he.Type != "" {
		f.body = api.Failure{Error: he.Msg, ErrorType: string(he.Type)}
		f.status = he.Type.Status()
	} else {
		t := executor.TypeOf(err)
		f.status, f.body.ErrorType = t.Status(), string(t)
		var e *executor.Error
		switch {
		case errors.As(err, &e):
			f.body.Error, f.body.Traceback = e.Message, e.Traceback
		case t == api.ErrorTypeBusy:
			f.retryAfter = "1"
			f.body.Error = "Service busy, retry later"
			var full *sessions.FullError
			if errors.As(err, &full) {
				// Sessions end on their own within minutes.
				f.retryAfter = "10"
				f.body.Error = full.Error()
			}
		case t == api.ErrorTypeSandboxUnavailable:
			f.retryAfter = "10"
			f.body.Error = "Sandbox unavailable"
		default:
			f.body.Error = internalMessage(executionID)
		}
	}
	if he != nil {
		if he.Code != 0 {
			f.status = he.Code
		}
		f.header = he.Header
	}
	f.redeliver = f.status >= http.StatusInternalServerError
	// WARNING for failures of the request or the script, ERROR for faults
	// of the service.
	f.severity = execlog.Warning
	if f.redeliver {
		f.severity = execlog.Error
	}
	return f
}

func internalMessage(executionID string) string {
	return fmt.Sprintf("Internal error (execution %s)", executionID)
}

// writeFailure answers f with its JSON body: Execute's failures.
func writeFailure(w http.ResponseWriter, f failure) {
	if f.retryAfter != "" {
		w.Header().Set("Retry-After", f.retryAfter)
	}
	writeStatus(w, f, f.body)
}

// writeStatus answers f's status with body, or with no body when body is
// nil: ExecuteEvent's answers, which Pub/Sub reads only to acknowledge or
// redeliver. (Pub/Sub keeps its own retry schedule, so they carry no
// Retry-After.)
func writeStatus(w http.ResponseWriter, f failure, body any) {
	maps.Copy(w.Header(), f.header)
	if body == nil {
		w.WriteHeader(f.status)
		return
	}
	writeJSON(w, f.status, body)
}

// WriteMisconfigured answers a request that reached Execute when the
// service could not be built from its configuration: 500 internal. The
// cause is in the error the service's constructor returned; cmd/pyexec
// refuses to start with such a configuration, so only a service started
// some other way answers this.
func WriteMisconfigured(w http.ResponseWriter) {
	writeJSON(w, http.StatusInternalServerError, api.Failure{Error: "Internal error", ErrorType: string(api.ErrorTypeInternal)})
}
