package server

import (
	"context"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor"
	"github.com/pyexec/pyexec/mcpserver"
)

// sessionTools runs the MCP tools of Python sessions (run_python_cell,
// end_python_session) through the registry the session paths use, so that
// a cell's limits, refusals and log entry are those of
// POST /sessions/{id}/execute.
type sessionTools struct{ s *Server }

// RunCell runs a cell as POST /sessions/{id}/execute does, after starting
// a session as an empty POST /sessions does when the call names none. The
// cell is decoded first, so that a call with invalid arguments starts
// nothing.
func (t sessionTools) RunCell(ctx context.Context, call mcpserver.CellCall) mcpserver.CellAnswer {
	s := t.s
	id := executionIDOf(ctx)
	a := mcpserver.CellAnswer{ExecutionID: id, SessionID: call.SessionID}
	if s.sessions == nil {
		return failedCell(a, mapError(errNoSessions, id))
	}
	cell, err := s.decoder().decodeCell(call.Arguments)
	if err != nil {
		return failedCell(a, mapError(err, id))
	}
	if a.SessionID == "" {
		info, err := s.createSession(ctx, id, executor.SessionRequest{})
		if err != nil {
			return failedCell(a, mapError(err, id))
		}
		a.SessionID = info.ID
	}
	success, f := s.runCell(ctx, id, a.SessionID, cell, toolNewSession)
	if f != nil {
		return failedCell(a, *f)
	}
	a.Success = &success
	return a
}

// EndSession ends a session as DELETE /sessions/{id} does.
func (t sessionTools) EndSession(ctx context.Context, sessionID string) *api.Failure {
	s := t.s
	id := executionIDOf(ctx)
	if s.sessions == nil {
		f := mapError(errNoSessions, id)
		return &f.body
	}
	if err := s.deleteSession(id, sessionID); err != nil {
		f := mapError(withAdvice(err, toolNewSession), id)
		return &f.body
	}
	return nil
}

// failedCell is a with the failure f.
func failedCell(a mcpserver.CellAnswer, f failure) mcpserver.CellAnswer {
	a.Failure = &f.body
	return a
}
