package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyexec/pyexec/api"
)

// The tools of Python sessions: state that lasts from one call to the next.
//
// The transport is stateless (no Mcp-Session-Id), so a Python session
// cannot hang on an MCP session. It hangs on its own ID instead, which the
// agent keeps: run_python_cell without session_id starts a session and
// answers its ID, and later calls that pass it run in the same
// interpreter. Any MCP client can do that, whether or not it keeps
// Mcp-Session-Id, and an instance that restarts or scales leaves the MCP
// side unharmed.
const (
	// CellToolName runs code as a cell of a session.
	CellToolName = "run_python_cell"
	// EndSessionToolName ends a session.
	EndSessionToolName = "end_python_session"
)

// CellCall is one run_python_cell call, as the transport needs it.
type CellCall struct {
	// SessionID is the session to run in; "" starts a new one.
	SessionID string
	// Arguments are the call's arguments without session_id, exactly as
	// the client sent them: the body POST /sessions/{id}/execute takes
	// (code, stdin, files, limits), for the service's decoder to judge.
	Arguments json.RawMessage
	// Header is the HTTP request's header.
	Header http.Header
}

// CellAnswer is what running one cell gave.
type CellAnswer struct {
	// ExecutionID names the call in the service's log.
	ExecutionID string
	// SessionID is the session the cell ran in: the one the call named or
	// the one it started; "" when no session was started.
	SessionID string
	// Success is set when the cell ran to its end; Failure otherwise (its
	// SessionEnded says whether the session is gone).
	Success *api.CellSuccess
	Failure *api.Failure
}

// Sessions runs the session tools through the service.
type Sessions interface {
	// RunCell runs a cell, in a new session when call.SessionID is "".
	// ctx ends when the client goes away.
	RunCell(ctx context.Context, call CellCall) CellAnswer
	// EndSession ends the session id; the failure says why it could not.
	EndSession(ctx context.Context, id string) *api.Failure
}

// cellSuccess is run_python_cell's structured content when the cell ran:
// the answer of POST /sessions/{id}/execute and the session's ID.
type cellSuccess struct {
	SessionID string `json:"session_id"`
	api.CellSuccess
}

// cellFailure is its structured content when the cell failed. SessionID is
// absent when no session was started.
type cellFailure struct {
	SessionID string `json:"session_id,omitempty"`
	api.Failure
}

// sessionEnded is end_python_session's structured content.
type sessionEnded struct {
	SessionID string `json:"session_id"`
	Ended     bool   `json:"ended"`
}

// addSessionTools registers run_python_cell and end_python_session.
func addSessionTools(server *mcp.Server, sessions Sessions, opts Options) {
	server.AddTool(&mcp.Tool{
		Name:         CellToolName,
		Title:        "Run a Python cell",
		Description:  describeCell(opts),
		InputSchema:  cellInputSchema(opts),
		OutputSchema: cellOutputSchema(),
		Annotations: &mcp.ToolAnnotations{
			Title: "Run a Python cell",
			// A cell changes its session's state, which later cells see;
			// nothing outside the sandbox.
			ReadOnlyHint:    false,
			DestructiveHint: new(false),
			OpenWorldHint:   new(false),
		},
	}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		call, refusal := cellCall(req.Params.Arguments)
		if refusal != nil {
			return jsonResult("", refusal, true), nil
		}
		if req.Extra != nil {
			call.Header = req.Extra.Header
		}
		ctx, cancel := untilClientGone(ctx)
		defer cancel()
		return cellResult(sessions.RunCell(ctx, call))
	})

	server.AddTool(&mcp.Tool{
		Name:         EndSessionToolName,
		Title:        "End a Python session",
		Description:  "End a Python session that run_python_cell started, and free what it holds. Its variables are gone; a later run_python_cell with its session_id answers session_not_found. A session also ends by itself after an idle while.",
		InputSchema:  endInputSchema(),
		OutputSchema: endOutputSchema(),
		Annotations: &mcp.ToolAnnotations{
			Title:           "End a Python session",
			DestructiveHint: new(true),
			OpenWorldHint:   new(false),
		},
	}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var args struct {
			SessionID *string `json:"session_id"`
		}
		if json.Unmarshal(req.Params.Arguments, &args) != nil || args.SessionID == nil {
			return jsonResult("", invalidArguments("'session_id' must be the string run_python_cell answered"), true), nil
		}
		if f := sessions.EndSession(ctx, *args.SessionID); f != nil {
			return failureResult("", f, f)
		}
		return jsonResult("", sessionEnded{SessionID: *args.SessionID, Ended: true}, false), nil
	})
}

// cellCall splits a run_python_cell call's arguments into the session's ID
// and the cell's body. Arguments that are not an object go on whole, for
// the service's decoder to refuse as it refuses such a body.
func cellCall(arguments json.RawMessage) (CellCall, *api.Failure) {
	if len(bytes.TrimSpace(arguments)) == 0 {
		return CellCall{Arguments: json.RawMessage("{}")}, nil
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(arguments, &fields) != nil || fields == nil {
		return CellCall{Arguments: arguments}, nil
	}
	raw, ok := fields["session_id"]
	if !ok {
		return CellCall{Arguments: arguments}, nil
	}
	// A null session_id is an absent one: a new session.
	var call CellCall
	if string(raw) != "null" && (json.Unmarshal(raw, &call.SessionID) != nil || call.SessionID == "") {
		return call, invalidArguments("'session_id' must be the string an earlier run_python_cell answered, or absent to start a new session")
	}
	delete(fields, "session_id")
	// Each value is marshaled as the client wrote it (json.RawMessage),
	// numbers included.
	body, err := json.Marshal(fields)
	if err != nil {
		return call, invalidArguments(fmt.Sprintf("Arguments could not be read: %v", err))
	}
	call.Arguments = body
	return call, nil
}

// invalidArguments is the failure of arguments the tool itself refuses.
func invalidArguments(message string) *api.Failure {
	return &api.Failure{Error: message, ErrorType: string(api.ErrorTypeInvalidRequest)}
}

// cellResult turns a cell's answer into the tool's result or a JSON-RPC
// error, as toolResult does a script's.
func cellResult(a CellAnswer) (*mcp.CallToolResult, error) {
	if a.Failure != nil {
		return failureResult(a.ExecutionID, a.Failure, &cellFailure{SessionID: a.SessionID, Failure: *a.Failure})
	}
	if a.Success == nil {
		return nil, brokenContract(a.ExecutionID)
	}
	body := &cellSuccess{SessionID: a.SessionID, CellSuccess: *a.Success}
	brief := *body
	brief.Display = nil
	return successResult(a.ExecutionID, body, &brief, a.Success.Display), nil
}
