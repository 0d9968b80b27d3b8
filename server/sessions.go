package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/execlog"
	"github.com/pyexec/pyexec/executor"
	"github.com/pyexec/pyexec/sessions"
)

// The paths of sessions (SPEC §11): POST /sessions, GET and DELETE
// /sessions/{id}, POST /sessions/{id}/execute.
const (
	sessionsPath  = "/sessions"
	sessionPrefix = "/sessions/"
	cellSuffix    = "/execute"
)

// errNoSessions answers the session paths of a server built without a
// registry.
var errNoSessions = &HTTPError{Type: api.ErrorTypeNotFound, Msg: "Not found: this service holds no sessions"}

// serveSessions routes a request under /sessions; false when path is not
// one of the session paths.
func (s *Server) serveSessions(w http.ResponseWriter, r *http.Request, id string) (bool, error) {
	path := r.URL.Path
	if path != sessionsPath && !strings.HasPrefix(path, sessionPrefix) {
		return false, nil
	}
	if s.sessions == nil {
		return true, errNoSessions
	}
	if path == sessionsPath {
		if r.Method != http.MethodPost {
			return true, methodNotAllowed(http.MethodPost)
		}
		return true, s.serveCreateSession(w, r, id)
	}
	rest := strings.TrimPrefix(path, sessionPrefix)
	if sessionID, ok := strings.CutSuffix(rest, cellSuffix); ok && !strings.Contains(sessionID, "/") {
		if r.Method != http.MethodPost {
			return true, methodNotAllowed(http.MethodPost)
		}
		if !api.ValidSessionID(sessionID) {
			return true, sessions.ErrUnknown
		}
		return true, s.serveCell(w, r, id, sessionID)
	}
	if !api.ValidSessionID(rest) {
		// An ID of another shape, or a path under a session's that is
		// none of its own, names no session: the same answer as an
		// unknown ID.
		return true, sessions.ErrUnknown
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		info, err := s.sessions.State(rest)
		if err != nil {
			return true, err
		}
		writeJSON(w, http.StatusOK, sessionState(info))
		return true, nil
	case http.MethodDelete:
		if err := s.deleteSession(id, rest); err != nil {
			return true, err
		}
		w.WriteHeader(http.StatusNoContent)
		return true, nil
	}
	return true, methodNotAllowed("GET, HEAD, DELETE")
}

// deleteSession ends the session sessionID; its error is session_not_found
// only. id is the execution ID of the request that asked.
func (s *Server) deleteSession(id, sessionID string) error {
	err := s.sessions.Delete(sessionID)
	if err == nil || executor.TypeOf(err) == api.ErrorTypeSessionNotFound {
		return err
	}
	// The session is gone from the registry; what its teardown left is
	// the log's (the executor sweeps it at next start).
	s.log.Log(sessionEntry(execlog.Error, "ending a session left something behind", id, sessionID, map[string]any{fieldError: err.Error()}))
	return nil
}

// withAdvice is err with how to start over added to a session_not_found's
// message: advice, which names what the caller uses to reach sessions.
func withAdvice(err error, advice string) error {
	var e *executor.Error
	if errors.As(err, &e) && e.Type == api.ErrorTypeSessionNotFound {
		return &executor.Error{Type: e.Type, Message: e.Message + ". " + advice}
	}
	return err
}

// httpNewSession and toolNewSession are how a session_not_found message
// says to start a new session, to a caller of the session paths and to an
// agent, who has only the tools.
const (
	httpNewSession = "Start a new session with POST /sessions"
	toolNewSession = "Call run_python_cell without session_id to start a new session, and load its data again"
)

// readDecoded reads r's body within d's cap and decodes it with decode.
func readDecoded[T any](w http.ResponseWriter, r *http.Request, d decoder, decode func(decoder, []byte) (T, error)) (T, error) {
	body, err := d.readBody(w, r)
	if err != nil {
		var zero T
		return zero, err
	}
	return decode(d, body)
}

// serveCreateSession answers POST /sessions.
func (s *Server) serveCreateSession(w http.ResponseWriter, r *http.Request, id string) error {
	req, err := readDecoded(w, r, s.decoder(), decoder.decodeSessionRequest)
	if err != nil {
		return err
	}
	info, err := s.createSession(r.Context(), id, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.Session{
		ID:                 info.ID,
		IdleTimeoutSeconds: int(info.IdleTimeout / time.Second),
		ExpiresAt:          info.Expires.UTC().Format(time.RFC3339),
	})
	return nil
}

// serveCell answers POST /sessions/{id}/execute.
func (s *Server) serveCell(w http.ResponseWriter, r *http.Request, id, sessionID string) error {
	cell, err := readDecoded(w, r, s.decoder(), decoder.decodeCell)
	if err != nil {
		return err
	}
	success, f := s.runCell(r.Context(), id, sessionID, cell, httpNewSession)
	if f != nil {
		writeFailure(w, *f)
		return nil
	}
	writeJSON(w, http.StatusOK, success)
	return nil
}

// createSession starts a session and logs it; id is the execution ID of
// the request that asked for it.
func (s *Server) createSession(ctx context.Context, id string, req executor.SessionRequest) (sessions.Info, error) {
	s.awaitFirstSelfTest(ctx)
	started := time.Now()
	info, err := s.sessions.Create(ctx, req)
	if err != nil {
		return info, err
	}
	s.log.Log(sessionEntry(execlog.Info, "session started", id, info.ID, map[string]any{
		fieldDurationMS: time.Since(started).Milliseconds(),
		fieldFiles:      len(req.Files),
	}))
	return info, nil
}

// runCell runs cell in the session sessionID and logs it: its answer, or
// the failure to answer with, whose session_not_found says advice.
func (s *Server) runCell(ctx context.Context, id, sessionID string, cell executor.Cell, advice string) (api.CellSuccess, *failure) {
	started := time.Now()
	res, err := s.sessions.Run(ctx, sessionID, cell)
	if err != nil {
		f := mapError(withAdvice(err, advice), id)
		f.body.Stdout = res.Stdout
		f.body.SessionEnded = res.SessionEnded
		s.log.Log(cellEntry(id, sessionID, cell, res, &f, err, time.Since(started), ctx.Err() != nil))
		return api.CellSuccess{}, &f
	}
	s.log.Log(cellEntry(id, sessionID, cell, res, nil, nil, time.Since(started), false))
	format := api.ResultFormatJSON
	if res.Text {
		format = api.ResultFormatText
	}
	return api.CellSuccess{
		Result:       res.Value,
		ResultFormat: format,
		Stdout:       res.Stdout,
		Files:        outputFiles(res.Files),
		Display:      display(res.Display),
	}, nil
}

// sessionState is GET /sessions/{id}'s answer.
func sessionState(info sessions.Info) api.SessionState {
	state := api.SessionIdle
	if info.Running {
		state = api.SessionRunning
	}
	return api.SessionState{
		ID:                 info.ID,
		State:              state,
		CreatedAt:          info.Created.UTC().Format(time.RFC3339),
		LastUsedAt:         info.LastUsed.UTC().Format(time.RFC3339),
		ExpiresAt:          info.Expires.UTC().Format(time.RFC3339),
		IdleTimeoutSeconds: int(info.IdleTimeout / time.Second),
		MemoryBytes:        info.MemoryBytes,
		Cells:              info.Cells,
	}
}

// fieldSession is a session's ID in log entries, as sessions.Short gives
// it: a session ID is a bearer secret, never logged whole.
const fieldSession = "session"

// sessionEntry is a log entry about the session sessionID.
func sessionEntry(severity execlog.Severity, message, executionID, sessionID string, fields map[string]any) execlog.Entry {
	if fields == nil {
		fields = map[string]any{}
	}
	fields[fieldFunction] = "session"
	fields[fieldExecutionID] = executionID
	fields[fieldSession] = sessions.Short(sessionID)
	return execlog.Entry{Severity: severity, Message: message, Fields: fields}
}

// cellEntry is the one log entry of a cell: f is its failure, nil on
// success, and cause the error f was mapped from; clientGone tells that
// the caller went away before the answer.
func cellEntry(executionID, sessionID string, cell executor.Cell, res sessions.Result, f *failure, cause error, elapsed time.Duration, clientGone bool) execlog.Entry {
	fields := map[string]any{
		fieldStatus:      api.OutcomeOK,
		fieldDurationMS:  elapsed.Milliseconds(),
		fieldScriptBytes: len(cell.Code),
		fieldStdoutBytes: len(res.Stdout),
	}
	if f == nil {
		return sessionEntry(execlog.Info, "cell ok", executionID, sessionID, fields)
	}
	fields[fieldStatus] = api.OutcomeError
	fields[fieldErrorType] = f.body.ErrorType
	if f.body.ErrorType == string(api.ErrorTypeInternal) {
		fields[fieldCause] = cause.Error()
	}
	msg := "cell failed: " + f.body.ErrorType
	if res.SessionEnded {
		msg += "; the session has ended"
		fields["session_ended"] = true
	}
	if clientGone {
		fields[fieldClientGone] = true
	}
	return sessionEntry(f.severity, msg, executionID, sessionID, fields)
}

// SessionEndedEntry logs a session that ended, and what its teardown
// returned.
func SessionEndedEntry(shortID, why string, err error) execlog.Entry {
	e := execlog.Entry{Severity: execlog.Info, Message: "session ended: " + why, Fields: map[string]any{fieldFunction: "session", fieldSession: shortID}}
	if err != nil {
		e.Severity = execlog.Error
		e.Fields[fieldError] = err.Error()
	}
	return e
}

// decodeSessionRequest decodes POST /sessions's body: empty, or an object
// with files and limits.
func (d decoder) decodeSessionRequest(body []byte) (executor.SessionRequest, error) {
	var req executor.SessionRequest
	if len(strings.TrimSpace(string(body))) == 0 {
		return req, nil
	}
	fields, err := objectOf(body, "Request body must be empty or a JSON object {\"files\", \"limits\"}")
	if err != nil {
		return req, err
	}
	if raw, ok := fields["files"]; ok && !isNull(raw) {
		if req.Files, err = decodeFiles(raw); err != nil {
			return req, err
		}
	}
	if raw, ok := fields["limits"]; ok && !isNull(raw) {
		if req.Timeout, req.MemoryBytes, err = decodeLimits(raw, d.caps); err != nil {
			return req, err
		}
	}
	return req, nil
}

// decodeCell decodes a cell's body: code, and optionally stdin, files and
// limits.timeout_seconds (a session's memory is set when it starts).
func (d decoder) decodeCell(body []byte) (executor.Cell, error) {
	var cell executor.Cell
	fields, err := objectOf(body, `Request body must be a JSON object with a 'code' field`)
	if err != nil {
		return cell, err
	}
	raw, ok := fields["code"]
	if !ok {
		return cell, invalidRequest("Missing 'code' field: code must be a non-empty string")
	}
	if isNull(raw) || json.Unmarshal(raw, &cell.Code) != nil {
		return cell, invalidRequest("'code' must be a non-empty string")
	}
	if hasLoneSurrogate(raw) {
		return cell, invalidRequest("'code' " + loneSurrogateRule)
	}
	if raw, ok := fields["stdin"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &cell.Stdin) != nil {
			return cell, invalidRequest("'stdin' must be a string")
		}
		if hasLoneSurrogate(raw) {
			return cell, invalidRequest("'stdin' " + loneSurrogateRule)
		}
	}
	if raw, ok := fields["files"]; ok && !isNull(raw) {
		if cell.Files, err = decodeFiles(raw); err != nil {
			return cell, err
		}
	}
	if raw, ok := fields["limits"]; ok && !isNull(raw) {
		var memory int64
		if cell.Timeout, memory, err = decodeLimits(raw, d.caps); err != nil {
			return cell, err
		}
		if memory != 0 {
			return cell, invalidRequest("A cell's 'limits' take only timeout_seconds: memory_mb is the session's, set by POST /sessions")
		}
	}
	return cell, nil
}

// objectOf decodes body as a JSON object in valid UTF-8; notObject is the
// message when it is not one.
func objectOf(body []byte, notObject string) (map[string]json.RawMessage, error) {
	if !utf8.Valid(body) {
		return nil, invalidRequest("Request body must be valid UTF-8")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, invalidRequest(notObject)
	}
	return fields, nil
}
