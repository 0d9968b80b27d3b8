package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/execlog"
	"github.com/pyexec/pyexec/mcpserver"
	"github.com/pyexec/pyexec/playground"
)

// The paths Execute serves (and mcpPath, and the playground's); ExecuteEvent
// serves healthPath too, and takes its deliveries at rootPath.
const (
	executePath = "/execute"
	healthPath  = "/healthz"
	openAPIPath = "/openapi.json"
	rootPath    = "/"
)

// Execute is the handler of the Execute function: POST /execute, the
// session paths under /sessions, GET /healthz, GET /openapi.json, POST /mcp,
// and the playground (GET / and its files) for browsers. Other paths answer 404, other methods 405 with
// Allow.
//
// Every request passes the guard before it is routed, so every
// state-changing path, present or added later, refuses what a web page of
// another site could send through a visitor's browser. The path is taken
// exactly as sent: an unclean one ("//execute", "/a/../openapi.json") is
// no path and answers the JSON 404.
func (s *Server) Execute(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, func(id string) error {
		if err := s.guard.check(r, jsonBodies); err != nil {
			if r.URL.Path == mcpPath {
				// An MCP client reads a JSON-RPC error.
				f := mapError(err, id)
				mcpserver.WriteRefusal(w, f.status, f.body.Error, api.ErrorType(f.body.ErrorType))
				return nil
			}
			return err
		}
		switch r.URL.Path {
		case executePath:
			return s.serveExecute(w, r, id)
		case healthPath:
			return s.serveHealth(w, r)
		case openAPIPath:
			return serveOpenAPI(w, r)
		case mcpPath:
			if r.Method != http.MethodPost {
				return methodNotAllowed(http.MethodPost)
			}
			s.serveMCP(w, r, id)
			return nil
		}
		if served, err := s.serveSessions(w, r, id); served {
			return withAdvice(err, httpNewSession)
		}
		// The page goes only to a browser's GET (it asks for HTML). To an
		// API client / is no path, whatever the method: it keeps the JSON
		// 404 it always got.
		if playground.Wants(r) {
			playground.Handler().ServeHTTP(w, r)
			return nil
		}
		return errNotFound
	})
}

// serve is the adapter between net/http and a handler that returns an
// error, as Execute's do: it counts the request for Shutdown, names it with
// an execution ID (on every answer), answers the handler's error through
// the one mapper, and a panic with a 500 that shows only the ID.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, handler func(id string) error) {
	s.answering.add()
	defer s.answering.done()
	id := uuid.NewString()
	w.Header().Set(api.HeaderExecutionID, id)
	defer func() {
		if p := recover(); p != nil {
			s.log.Log(panicEntry(id, p))
			writeFailure(w, mapError(errPanic, id))
		}
	}()
	if err := handler(id); err != nil {
		writeFailure(w, mapError(err, id))
	}
}

// serveExecute runs the script of a POST /execute.
func (s *Server) serveExecute(w http.ResponseWriter, r *http.Request, id string) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(http.MethodPost)
	}
	x := execution{id: id, arrived: time.Now()}
	x.req, x.err = s.decoder().read(w, r)
	x.trace, x.span = execlog.TraceFromHeaders(r.Header, s.log.ProjectID())
	o := s.run(r.Context(), viaHTTP, x)
	if o.err != nil {
		writeFailure(w, o.answered())
		return nil
	}
	writeJSON(w, http.StatusOK, o.success())
	return nil
}

// serveHealth answers GET /healthz: 200 once the sandbox self-test has
// passed, 503 with the reason until then, and the isolation in force.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed("GET, HEAD")
	}
	h := s.exec.Health()
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
		return nil
	}
	body["status"] = "unavailable"
	body["reason"] = h.Reason
	writeJSON(w, http.StatusServiceUnavailable, body)
	return nil
}

// serveOpenAPI answers GET /openapi.json with the OpenAPI document of what
// Execute serves (ExecuteEvent's POST / is not in it), embedded in the
// binary, so it describes the build that serves it.
func serveOpenAPI(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed("GET, HEAD")
	}
	writeJSON(w, http.StatusOK, json.RawMessage(api.FunctionOpenAPIJSON("Execute")))
	return nil
}

// unencodable is the body writeJSON answers when a body cannot be encoded:
// an internal error, in the shape of every failure.
var unencodable = func() []byte {
	body, err := json.Marshal(api.Failure{Error: "Internal error", ErrorType: string(api.ErrorTypeInternal)})
	if err != nil {
		panic(err) // strings only: cannot fail
	}
	return append(body, '\n')
}()

// writeJSON is the one writer of response bodies. Bodies are strict JSON;
// HTML characters are left as they are so stdout comes back verbatim.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.Write(unencodable)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
