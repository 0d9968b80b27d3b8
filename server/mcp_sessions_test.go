package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor"
	ts "github.com/pyexec/pyexec/internal/testsupport"
	"github.com/pyexec/pyexec/mcpserver"
	"github.com/pyexec/pyexec/server"
	"github.com/pyexec/pyexec/sessions"
)

// The cells fakeProcess knows: one loads a DataFrame, one reads it.
const (
	loadCell  = "import pandas as pd, io; df = pd.read_csv(io.StringIO(\"a,b\\n1,2\\n3,4\\n\"))"
	queryCell = "int(df.a.sum())"
)

// fakeProcess stands in for a session's interpreter: loadCell defines df,
// queryCell answers 4 once df is defined and raises NameError before.
type fakeProcess struct {
	mu      sync.Mutex
	defined bool
	ended   error
}

func (p *fakeProcess) Run(_ context.Context, cell executor.Cell) (executor.CellResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch cell.Code {
	case loadCell:
		p.defined = true
		return executor.CellResult{Result: executor.Result{Value: json.RawMessage(`null`)}}, nil
	case queryCell:
		if p.defined {
			return executor.CellResult{Result: executor.Result{Value: json.RawMessage(`4`), Stdout: "summing"}}, nil
		}
		return executor.CellResult{}, &executor.Error{Type: api.ErrorTypeException, Message: "NameError: name 'df' is not defined"}
	}
	return executor.CellResult{Result: executor.Result{Value: json.RawMessage(`"<object>"`)}, Text: true}, nil
}

func (p *fakeProcess) Ended() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ended
}

func (p *fakeProcess) MemoryBytes() int64 { return 1 << 20 }

func (p *fakeProcess) End() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ended = errors.New("ended")
	return nil
}

// startWithSessions is startServer with a registry of at most max
// sessions, whose processes start answers.
func startWithSessions(t *testing.T, max int, start sessions.Starter) (*testServer, *sessions.Registry) {
	t.Helper()
	live := sessions.New(sessions.Config{IdleTimeout: time.Minute, MaxAge: time.Hour, Max: max}, start)
	s := serveLive(t, server.Config{SelfTestWait: server.DefaultSelfTestWait}, answering(executor.Result{}, nil), nil, live)
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start = %v", err)
	}
	s.skip = len(s.logs.Entries(t, true))
	return s, live
}

// fakeProcesses starts a fakeProcess for each session.
func fakeProcesses(context.Context, executor.SessionRequest) (sessions.Process, error) {
	return &fakeProcess{}, nil
}

// callCell calls run_python_cell with args.
func callCell(t *testing.T, cs *mcp.ClientSession, args map[string]any) (*mcp.CallToolResult, map[string]any) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: mcpserver.CellToolName, Arguments: args})
	if err != nil {
		t.Fatalf("run_python_cell %v: %v", args, err)
	}
	var content map[string]any
	raw, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(raw, &content); err != nil {
		t.Fatalf("structured content %s: %v", raw, err)
	}
	return res, content
}

func TestRunPythonCellKeepsStateInARegistrySession(t *testing.T) {
	s, live := startWithSessions(t, 4, fakeProcesses)
	cs := connectMCP(t, s, &ts.HeaderRecorder{})

	res, first := callCell(t, cs, map[string]any{"code": loadCell})
	id, _ := first["session_id"].(string)
	if res.IsError || len(id) != 22 || first["result"] != nil || first["result_format"] != "json" {
		t.Fatalf("first cell = %v, want a new session's 22-character ID and a null result", first)
	}
	res, second := callCell(t, cs, map[string]any{"session_id": id, "code": queryCell})
	if res.IsError || second["session_id"] != id || second["result"] != 4.0 || second["stdout"] != "summing" {
		t.Fatalf("second cell = %v, want 4 from the same session %s", second, id)
	}
	// A call without session_id is a session of its own, without df.
	res, other := callCell(t, cs, map[string]any{"code": queryCell})
	if !res.IsError || other["error_type"] != "exception" || other["session_id"] == id || other["session_id"] == "" {
		t.Errorf("a cell in a new session = %v, want a NameError in another session", other)
	}
	// The session is the registry's, as the session paths see it.
	state := send(t, http.MethodGet, s.executeURL+"/sessions/"+id, "")
	var info api.SessionState
	if state.status != http.StatusOK || json.Unmarshal([]byte(state.body), &info) != nil || info.Cells != 2 {
		t.Errorf("GET /sessions/%s = %d %s, want 2 cells", id, state.status, state.body)
	}
	if live.Len() != 2 {
		t.Errorf("%d sessions live, want 2", live.Len())
	}

	var started, cells int
	for _, e := range s.entries(t) {
		switch {
		case e["function"] == "session" && e["message"] == "session started":
			started++
		case e["function"] == "session" && strings.HasPrefix(e["message"].(string), "cell "):
			cells++
			if e["session"] == id {
				t.Errorf("log entry %v holds the session's whole ID", e)
			}
		}
	}
	if started != 2 || cells != 3 {
		t.Errorf("logged %d sessions started and %d cells, want 2 and 3, as the session paths log them", started, cells)
	}
}

func TestEndPythonSessionEndsTheRegistrySession(t *testing.T) {
	s, live := startWithSessions(t, 4, fakeProcesses)
	cs := connectMCP(t, s, &ts.HeaderRecorder{})
	_, first := callCell(t, cs, map[string]any{"code": loadCell})
	id := first["session_id"].(string)

	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: mcpserver.EndSessionToolName, Arguments: map[string]any{"session_id": id}})
	if err != nil || res.IsError || live.Len() != 0 {
		t.Fatalf("end_python_session = %v %+v with %d sessions live, want it ended", err, res, live.Len())
	}
	res, after := callCell(t, cs, map[string]any{"session_id": id, "code": queryCell})
	msg, _ := after["error"].(string)
	if !res.IsError || after["error_type"] != "session_not_found" || !strings.Contains(msg, "deleted") ||
		!strings.Contains(msg, "run_python_cell without session_id") || strings.Contains(msg, "POST /sessions") {
		t.Errorf("a cell after the end = %v, want session_not_found saying it was deleted and how to start anew with the tool", after)
	}
	res, err = cs.CallTool(t.Context(), &mcp.CallToolParams{Name: mcpserver.EndSessionToolName, Arguments: map[string]any{"session_id": id}})
	if err != nil || !res.IsError {
		t.Errorf("ending it again = %v %+v, want isError session_not_found", err, res)
	}
}

func TestRunPythonCellRefusesAsTheSessionPathsDo(t *testing.T) {
	t.Run("invalid arguments start no session", func(t *testing.T) {
		s, live := startWithSessions(t, 4, fakeProcesses)
		cs := connectMCP(t, s, &ts.HeaderRecorder{})
		for _, args := range []map[string]any{{}, {"code": 5}, {"code": "1", "limits": map[string]any{"memory_mb": 10}}} {
			res, content := callCell(t, cs, args)
			if !res.IsError || content["error_type"] != "invalid_request" || content["session_id"] != nil {
				t.Errorf("run_python_cell %v = %v, want invalid_request and no session", args, content)
			}
		}
		if live.Len() != 0 {
			t.Errorf("%d sessions live, want none", live.Len())
		}
	})
	t.Run("a full registry is busy: retry", func(t *testing.T) {
		s, _ := startWithSessions(t, 1, fakeProcesses)
		cs := connectMCP(t, s, &ts.HeaderRecorder{})
		callCell(t, cs, map[string]any{"code": loadCell})
		_, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: mcpserver.CellToolName, Arguments: map[string]any{"code": loadCell}})
		var rpc *jsonrpc.Error
		if !errors.As(err, &rpc) || rpc.Code != mcpserver.CodeUnavailable || !strings.Contains(rpc.Message, "PYEXEC_MAX_SESSIONS") {
			t.Errorf("a second session = %v, want JSON-RPC error %d naming the maximum", err, mcpserver.CodeUnavailable)
		}
	})
	t.Run("a mode without sessions", func(t *testing.T) {
		s, _ := startWithSessions(t, 4, func(context.Context, executor.SessionRequest) (sessions.Process, error) {
			return nil, executor.ErrSessionsUnsupported
		})
		cs := connectMCP(t, s, &ts.HeaderRecorder{})
		res, content := callCell(t, cs, map[string]any{"code": "1"})
		if !res.IsError || content["error_type"] != "invalid_request" || !strings.Contains(content["error"].(string), "fork mode") {
			t.Errorf("run_python_cell = %v, want invalid_request naming the fork mode", content)
		}
	})
	t.Run("a server without a registry", func(t *testing.T) {
		s := startServer(t, answering(executor.Result{}, nil), nil)
		cs := connectMCP(t, s, &ts.HeaderRecorder{})
		res, content := callCell(t, cs, map[string]any{"code": "1"})
		if !res.IsError || !strings.Contains(content["error"].(string), "holds no sessions") {
			t.Errorf("run_python_cell = %v, want a tool error saying the service holds no sessions", content)
		}
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: mcpserver.EndSessionToolName, Arguments: map[string]any{"session_id": "AAAAAAAAAAAAAAAAAAAAAA"}})
		if err != nil || !res.IsError {
			t.Errorf("end_python_session = %v %+v, want a tool error", err, res)
		}
	})
}
