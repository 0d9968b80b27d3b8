package pyexec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	"github.com/google/uuid"

	"github.com/pyexec/pyexec/execlog"
	"github.com/pyexec/pyexec/executor"
	"github.com/pyexec/pyexec/playground"
)

// init registers both functions; FUNCTION_TARGET picks the one served.
func init() {
	functions.HTTP("Execute", execute)
	// ExecuteEvent is an HTTP function that reads the CloudEvent in the
	// request's own goroutine (event.go). functions.CloudEvent's receiver
	// (cloudevents sdk-go v2.16.2) passes requests to handlers over one
	// shared channel: under concurrent deliveries a handler can get another
	// request's context, and a request can wait for the next one to arrive
	// before it is handled at all (cloudevents/sdk-go#1224, #1332). Events
	// and answers are the same as there.
	functions.HTTP("ExecuteEvent", serveEvent)
}

// maxBodyBytes caps what is read of a request body.
const maxBodyBytes = 1 << 20

// errBodyTooLarge is the one invalid request answered 413 rather than 400.
var errBodyTooLarge = &executor.Error{Type: executor.TypeInvalidRequest, Message: "Request body too large (max 1MB)"}

// Error types of the transport itself, beside the executor's.
const (
	typeNotFound         executor.ErrorType = "not_found"
	typeMethodNotAllowed executor.ErrorType = "method_not_allowed"
)

// statusOf is the one place that maps an error type to an HTTP status.
func statusOf(t executor.ErrorType) int {
	switch t {
	case typeNotFound:
		return http.StatusNotFound
	case typeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case executor.TypeBusy, executor.TypeSandboxUnavailable:
		return http.StatusServiceUnavailable
	case executor.TypeInternal:
		return http.StatusInternalServerError
	default:
		return http.StatusBadRequest
	}
}

// execute is the Execute function: POST /execute, GET /healthz and the
// playground at GET /.
func execute(w http.ResponseWriter, r *http.Request) {
	s, err := defaultService()
	if err != nil {
		// Only invalid configuration gets here, which cmd/ refuses at start.
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "Internal error", ErrorType: executor.TypeInternal})
		return
	}
	s.serveHTTP(w, r)
}

func (s *service) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.inflight.Add(1)
	defer s.inflight.Done()
	id := uuid.NewString()
	w.Header().Set("X-Execution-Id", id)
	defer func() {
		if p := recover(); p != nil {
			s.log.Log(execlog.Entry{
				Severity: execlog.Error,
				Message:  "panic answering request",
				Fields:   map[string]any{"execution_id": id, "panic": fmt.Sprint(p), "stack": string(debug.Stack())},
			})
			writeJSON(w, http.StatusInternalServerError, errorBody{Error: internalMessage(id), ErrorType: executor.TypeInternal})
		}
	}()
	switch r.URL.Path {
	case "/execute":
		if r.Method != http.MethodPost {
			s.methodNotAllowed(w, "POST")
			return
		}
		s.handleExecute(w, r, id)
	case "/healthz":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.methodNotAllowed(w, "GET, HEAD")
			return
		}
		s.handleHealth(w)
	default:
		// Browsers get the playground at / (and its files); API clients
		// keep the JSON 404 they always had.
		if playground.Wants(r) {
			playground.Handler().ServeHTTP(w, r)
			return
		}
		writeJSON(w, http.StatusNotFound, errorBody{Error: "Not found: use POST /execute or GET /healthz", ErrorType: typeNotFound})
	}
}

func (s *service) methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "Method not allowed: use " + allow, ErrorType: typeMethodNotAllowed})
}

type successBody struct {
	Result json.RawMessage `json:"result"`
	Stdout string          `json:"stdout"`
}

type errorBody struct {
	Error     string             `json:"error"`
	ErrorType executor.ErrorType `json:"error_type"`
	Stdout    string             `json:"stdout"`
	Traceback string             `json:"traceback,omitempty"`
}

func (s *service) handleExecute(w http.ResponseWriter, r *http.Request, id string) {
	start := time.Now()
	script, err := readScript(w, r)
	var res executor.Result
	if err == nil {
		res, err = s.exec.Run(r.Context(), executor.Request{ID: id, Script: script})
	}
	t := executor.TypeOf(err)
	if err == nil {
		writeJSON(w, http.StatusOK, successBody{Result: res.Value, Stdout: res.Stdout})
	} else {
		body := errorBody{ErrorType: t, Stdout: res.Stdout}
		var e *executor.Error
		switch {
		case errors.As(err, &e):
			body.Error, body.Traceback = e.Message, e.Traceback
		case t == executor.TypeBusy:
			w.Header().Set("Retry-After", "1")
			body.Error = "Service busy, retry later"
		case t == executor.TypeSandboxUnavailable:
			w.Header().Set("Retry-After", "10")
			body.Error = "Sandbox unavailable"
		default:
			body.Error = internalMessage(id)
		}
		status := statusOf(t)
		if errors.Is(err, errBodyTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		writeJSON(w, status, body)
	}
	s.logHTTP(r, id, len(script), res, err, time.Since(start))
}

func internalMessage(id string) string { return fmt.Sprintf("Internal error (execution %s)", id) }

// readScript reads and decodes the request body, never past its cap.
func readScript(w http.ResponseWriter, r *http.Request) (string, error) {
	invalid := func(msg string) error {
		return &executor.Error{Type: executor.TypeInvalidRequest, Message: msg}
	}
	if r.ContentLength > maxBodyBytes {
		return "", errBodyTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return "", errBodyTooLarge
		}
		return "", invalid("Could not read request body")
	}
	// The JSON decoder would silently replace invalid UTF-8.
	if !utf8.Valid(body) {
		return "", invalid("Request body must be valid UTF-8")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return "", invalid("Request body must be a JSON object with a 'script' field")
	}
	raw, ok := fields["script"]
	if !ok {
		return "", invalid("Missing 'script' field: Script must be a non-empty string")
	}
	var script string
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) || json.Unmarshal(raw, &script) != nil {
		return "", invalid("Script must be a non-empty string")
	}
	return script, nil
}

func (s *service) handleHealth(w http.ResponseWriter) {
	h := s.health()
	body := map[string]any{
		"mode":      h.Mode,
		"isolation": h.Isolation,
		"versions":  h.Versions,
	}
	if h.Fallback != "" {
		body["fallback"] = h.Fallback
	}
	if h.TeardownFailures > 0 {
		body["teardown_failures"] = h.TeardownFailures
	}
	if h.Ready {
		body["status"] = "ok"
		writeJSON(w, http.StatusOK, body)
		return
	}
	body["status"] = "unavailable"
	body["reason"] = h.Reason
	writeJSON(w, http.StatusServiceUnavailable, body)
}

// logHTTP writes the execution's one log entry. Script text and outputs of
// HTTP executions are never logged.
func (s *service) logHTTP(r *http.Request, id string, scriptBytes int, res executor.Result, err error, d time.Duration) {
	t := executor.TypeOf(err)
	entry := execlog.Entry{
		Severity: severityOf(err),
		Message:  "execution ok",
		Fields: map[string]any{
			"execution_id": id,
			"status":       "ok",
			"duration_ms":  d.Milliseconds(),
			"script_bytes": scriptBytes,
			"stdout_bytes": len(res.Stdout),
			"function":     "Execute",
		},
	}
	entry.Trace, entry.SpanID = execlog.TraceFromHeaders(r.Header, s.log.ProjectID())
	if err != nil {
		entry.Message = "execution failed: " + string(t)
		entry.Fields["status"] = "error"
		entry.Fields["error_type"] = t
		if t == executor.TypeInternal {
			entry.Fields["cause"] = err.Error() // the client saw only the execution ID
		}
		if r.Context().Err() != nil {
			// The client hung up and the execution was stopped for it: not a
			// fault of the service, and nobody got the 500.
			entry.Severity = execlog.Warning
			entry.Message = "client went away; execution stopped"
			entry.Fields["client_gone"] = true
		}
	}
	s.log.Log(entry)
}

// severityOf: INFO for success, WARNING for failures of the request or the
// script, ERROR for faults of the service.
func severityOf(err error) execlog.Severity {
	switch t := executor.TypeOf(err); {
	case err == nil:
		return execlog.Info
	case statusOf(t) >= 500:
		return execlog.Error
	default:
		return execlog.Warning
	}
}

// writeJSON is the one writer of response bodies. Bodies are strict JSON;
// HTML characters are left as they are so stdout comes back verbatim.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"Internal error","error_type":"internal"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
