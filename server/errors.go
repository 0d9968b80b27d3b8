package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/execlog"
	"github.com/pyexec/pyexec/executor"
	"github.com/pyexec/pyexec/internal/size"
)

// This file is the one place where an error becomes an answer. Handlers
// return errors; mapError turns each into the status, the body, the
// headers and the log severity, for Execute and ExecuteEvent alike. The
// client sees the message, the log sees the cause.

// Error types of the transport itself, beside the executor's.
const (
	typeNotFound         executor.ErrorType = "not_found"
	typeMethodNotAllowed executor.ErrorType = "method_not_allowed"
	// typeForbidden: a request from a web page of another site, or naming a
	// Host that is not the service's (guard.go).
	typeForbidden executor.ErrorType = "forbidden"
	// typeUnsupportedMediaType: a body of another type than the path takes.
	typeUnsupportedMediaType executor.ErrorType = "unsupported_media_type"
)

var (
	// errNotFound is a path Execute does not serve.
	errNotFound = &executor.Error{Type: typeNotFound, Message: "Not found: use POST /execute or GET /healthz"}
	// errEventNotFound is a path ExecuteEvent does not serve.
	errEventNotFound = &executor.Error{Type: typeNotFound, Message: "Not found: deliver messages with POST / or use GET /healthz"}
	// errPanic stands for a handler that panicked: an internal error, whose
	// details (the panic and its stack) are only in the log.
	errPanic = errors.New("panic answering request")
)

// invalidRequest is a request or payload that can never run. It is the
// executor's own invalid_request, like a blank script: its message is
// answered as it is.
func invalidRequest(message string) error {
	return &executor.Error{Type: executor.TypeInvalidRequest, Message: message}
}

// forbidden is a request the guard refuses for where it comes from or
// whom it names.
func forbidden(message string) error {
	return &executor.Error{Type: typeForbidden, Message: message}
}

// unsupportedMediaType is a request body of a type the path does not take.
func unsupportedMediaType(message string) error {
	return &executor.Error{Type: typeUnsupportedMediaType, Message: message}
}

// tooLarge is a request body over the service's cap: the one invalid
// request answered 413 rather than 400.
type tooLarge struct{ err *executor.Error }

func (e *tooLarge) Error() string { return e.err.Error() }
func (e *tooLarge) Unwrap() error { return e.err }

// bodyTooLarge is the error of a body over limit bytes; its message states
// the limit.
func bodyTooLarge(limit int64) error {
	return &tooLarge{err: &executor.Error{
		Type:    executor.TypeInvalidRequest,
		Message: fmt.Sprintf("Request body too large (max %s)", size.Text(limit, "")),
	}}
}

// notAllowed is a method a path does not take.
type notAllowed struct {
	err   *executor.Error
	allow string // the methods it takes, for the Allow header
}

func (e *notAllowed) Error() string { return e.err.Error() }
func (e *notAllowed) Unwrap() error { return e.err }

// methodNotAllowed is the error of a request whose method the path does not
// take; allow lists the ones it does.
func methodNotAllowed(allow string) error {
	return &notAllowed{
		err:   &executor.Error{Type: typeMethodNotAllowed, Message: "Method not allowed: use " + allow},
		allow: allow,
	}
}

// failure is what mapError makes of an error.
type failure struct {
	status int
	// body is the answer's body; its Stdout is the caller's to fill with
	// what the script printed before it failed.
	body       api.Failure
	retryAfter string // seconds, on 503s
	allow      string // the methods the path takes, on 405s
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
	t := executor.TypeOf(err)
	f := failure{status: statusOf(t), body: api.Failure{ErrorType: string(t)}}
	var e *executor.Error
	switch {
	case errors.As(err, &e):
		f.body.Error, f.body.Traceback = e.Message, e.Traceback
	case t == executor.TypeBusy:
		f.retryAfter = "1"
		f.body.Error = "Service busy, retry later"
	case t == executor.TypeSandboxUnavailable:
		f.retryAfter = "10"
		f.body.Error = "Sandbox unavailable"
	default:
		f.body.Error = internalMessage(executionID)
	}
	var big *tooLarge
	if errors.As(err, &big) {
		f.status = http.StatusRequestEntityTooLarge
	}
	var na *notAllowed
	if errors.As(err, &na) {
		f.allow = na.allow
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

// statusOf maps an error type to its HTTP status.
func statusOf(t executor.ErrorType) int {
	switch t {
	case typeNotFound:
		return http.StatusNotFound
	case typeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case typeForbidden:
		return http.StatusForbidden
	case typeUnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case executor.TypeBusy, executor.TypeSandboxUnavailable:
		return http.StatusServiceUnavailable
	case executor.TypeInternal:
		return http.StatusInternalServerError
	default:
		return http.StatusBadRequest
	}
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
	if f.allow != "" {
		w.Header().Set("Allow", f.allow)
	}
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
	writeJSON(w, http.StatusInternalServerError, api.Failure{Error: "Internal error", ErrorType: string(executor.TypeInternal)})
}
