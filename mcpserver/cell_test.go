package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyexec/pyexec/api"
)

// fakeSessions stands in for the service's sessions: it records every call
// and answers with its functions.
type fakeSessions struct {
	cell func(CellCall) CellAnswer
	end  func(id string) *api.Failure

	mu    sync.Mutex
	cells []CellCall
	ended []string
}

func (f *fakeSessions) RunCell(_ context.Context, call CellCall) CellAnswer {
	f.mu.Lock()
	f.cells = append(f.cells, call)
	f.mu.Unlock()
	return f.cell(call)
}

func (f *fakeSessions) EndSession(_ context.Context, id string) *api.Failure {
	f.mu.Lock()
	f.ended = append(f.ended, id)
	f.mu.Unlock()
	if f.end == nil {
		return nil
	}
	return f.end(id)
}

func (f *fakeSessions) recorded() []CellCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]CellCall(nil), f.cells...)
}

// cellsAnswering is fake sessions that give every cell the same answer.
func cellsAnswering(a CellAnswer) *fakeSessions {
	return &fakeSessions{cell: func(CellCall) CellAnswer { return a }}
}

// serveSessions serves New with sessions over real HTTP on loopback, and
// connects the SDK's client to it.
func serveSessions(t *testing.T, sessions Sessions) *mcp.ClientSession {
	t.Helper()
	opts := testOptions
	opts.Sessions = sessions
	srv := httptest.NewServer(New(answering(Answer{}).run, opts))
	t.Cleanup(srv.Close)
	return connect(t, srv.URL)
}

// callTool calls the tool name with arguments given as JSON text.
func callTool(t *testing.T, cs *mcp.ClientSession, name, arguments string) (*mcp.CallToolResult, error) {
	t.Helper()
	return cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: json.RawMessage(arguments)})
}

func TestToolsListShowsTheSessionToolsOnlyWithSessions(t *testing.T) {
	cs := serveSessions(t, cellsAnswering(CellAnswer{}))
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatalf("ListTools: %v", err)
	}
	tools := map[string]*mcp.Tool{}
	for _, tool := range res.Tools {
		tools[tool.Name] = tool
	}
	if len(tools) != 3 || tools[ToolName] == nil || tools[CellToolName] == nil || tools[EndSessionToolName] == nil {
		t.Fatalf("tools = %v, want run_python, run_python_cell and end_python_session", res.Tools)
	}

	cell := tools[CellToolName]
	in := asMap(t, cell.InputSchema)
	if !reflect.DeepEqual(in["required"], []any{"code"}) {
		t.Errorf("run_python_cell requires %v, want [code]", in["required"])
	}
	props := in["properties"].(map[string]any)
	for _, name := range []string{"session_id", "code", "stdin", "files", "limits"} {
		if props[name] == nil {
			t.Errorf("run_python_cell's input schema has no %q", name)
		}
	}
	limits := props["limits"].(map[string]any)["properties"].(map[string]any)
	if limits["memory_mb"] != nil || limits["timeout_seconds"].(map[string]any)["maximum"] != 30.0 {
		t.Errorf("run_python_cell's limits = %v, want timeout_seconds up to 30 and no memory_mb (the session's)", limits)
	}
	out := asMap(t, cell.OutputSchema)
	if !reflect.DeepEqual(out["required"], []any{"session_id", "result", "result_format", "stdout"}) {
		t.Errorf("run_python_cell's output requires %v, want [session_id result result_format stdout]", out["required"])
	}
	for _, want := range []string{"session_id", "result_format", "pandas", "30 seconds", "512 MiB", "end_python_session", "session_not_found", "isError"} {
		if !strings.Contains(cell.Description, want) {
			t.Errorf("run_python_cell's description does not mention %q:\n%s", want, cell.Description)
		}
	}
	if cell.Annotations.ReadOnlyHint || cell.Annotations.OpenWorldHint == nil || *cell.Annotations.OpenWorldHint {
		t.Errorf("run_python_cell's annotations = %+v, want not read-only (a cell changes its session) and closed-world", cell.Annotations)
	}
	end := asMap(t, tools[EndSessionToolName].InputSchema)
	if !reflect.DeepEqual(end["required"], []any{"session_id"}) {
		t.Errorf("end_python_session requires %v, want [session_id]", end["required"])
	}
}

func TestCellsKeepTheirSessionByTheIDTheFirstCallAnswers(t *testing.T) {
	f := &fakeSessions{cell: func(call CellCall) CellAnswer {
		id := call.SessionID
		if id == "" {
			id = "session-1"
		}
		return CellAnswer{ExecutionID: "exec-" + id, SessionID: id, Success: &api.CellSuccess{
			Result: json.RawMessage(`4`), ResultFormat: api.ResultFormatJSON, Stdout: "",
		}}
	}}
	cs := serveSessions(t, f)

	first, err := callTool(t, cs, CellToolName, `{"code": "import pandas as pd"}`)
	if err != nil || first.IsError {
		t.Fatalf("first cell: %v %+v", err, first)
	}
	if got := textOf(t, first); got != `{"session_id":"session-1","result":4,"result_format":"json","stdout":""}` {
		t.Errorf("first cell's text = %s, want the session's ID beside the cell's answer", got)
	}
	second, err := callTool(t, cs, CellToolName, `{"session_id": "session-1", "code": "int(df.a.sum())", "limits": {"timeout_seconds": 2.50}, "stdin": 123456789012345678901}`)
	if err != nil || second.IsError {
		t.Fatalf("second cell: %v %+v", err, second)
	}
	if got := asMap(t, second.StructuredContent); !reflect.DeepEqual(got, asMap(t, []byte(textOf(t, second)))) || got["session_id"] != "session-1" {
		t.Errorf("second cell's structured content = %v, want the text block's JSON, naming session-1", got)
	}
	if second.Meta[MetaExecutionID] != "exec-session-1" {
		t.Errorf("_meta = %v, want the execution ID", second.Meta)
	}

	calls := f.recorded()
	if len(calls) != 2 || calls[0].SessionID != "" || calls[1].SessionID != "session-1" {
		t.Fatalf("cells ran in %+v, want a new session and then session-1", calls)
	}
	// session_id is the tool's; the rest reaches the service as written.
	if got := string(calls[1].Arguments); got != `{"code":"int(df.a.sum())","limits":{"timeout_seconds":2.50},"stdin":123456789012345678901}` {
		t.Errorf("the service got %s, want the cell's body without session_id, numbers as written", got)
	}
	if got := string(calls[0].Arguments); got != `{"code":"import pandas as pd"}` {
		t.Errorf("the service got %s, want the arguments untouched", got)
	}
}

func TestACellThatFailsIsAToolErrorThatNamesItsSession(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer CellAnswer
		want   string
	}{
		{"an exception keeps the session", CellAnswer{ExecutionID: "e", SessionID: "s1", Failure: &api.Failure{
			Error: "NameError: name 'df' is not defined", ErrorType: "exception", Stdout: "x", Traceback: "Traceback ...",
		}}, `{"session_id":"s1","error":"NameError: name 'df' is not defined","error_type":"exception","stdout":"x","traceback":"Traceback ..."}`},
		{"a timeout ends it", CellAnswer{ExecutionID: "e", SessionID: "s1", Failure: &api.Failure{
			Error: "Timed out", ErrorType: "timeout", Stdout: "", SessionEnded: true,
		}}, `{"session_id":"s1","error":"Timed out","error_type":"timeout","stdout":"","session_ended":true}`},
		{"an unknown session", CellAnswer{ExecutionID: "e", SessionID: "gone", Failure: &api.Failure{
			Error: "Session not found", ErrorType: "session_not_found", Stdout: "",
		}}, `{"session_id":"gone","error":"Session not found","error_type":"session_not_found","stdout":""}`},
		{"a session busy with another cell", CellAnswer{ExecutionID: "e", SessionID: "s1", Failure: &api.Failure{
			Error: "A cell is already running", ErrorType: "session_busy", Stdout: "",
		}}, `{"session_id":"s1","error":"A cell is already running","error_type":"session_busy","stdout":""}`},
		{"no session was started", CellAnswer{ExecutionID: "e", Failure: &api.Failure{
			Error: "Sessions need the fork mode", ErrorType: "invalid_request", Stdout: "",
		}}, `{"error":"Sessions need the fork mode","error_type":"invalid_request","stdout":""}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := serveSessions(t, cellsAnswering(tc.answer))
			res, err := callTool(t, cs, CellToolName, `{"code": "df"}`)
			if err != nil {
				t.Fatalf("tools/call: %v", err)
			}
			if !res.IsError || textOf(t, res) != tc.want || !reflect.DeepEqual(asMap(t, res.StructuredContent), asMap(t, []byte(tc.want))) {
				t.Errorf("result = isError %v %s, want isError with %s", res.IsError, textOf(t, res), tc.want)
			}
		})
	}
}

func TestACellThatRanNothingIsAProtocolError(t *testing.T) {
	for _, tc := range []struct {
		errorType string
		code      int64
	}{
		{"busy", CodeUnavailable},
		{"internal", CodeInternal},
	} {
		cs := serveSessions(t, cellsAnswering(CellAnswer{ExecutionID: "e", Failure: &api.Failure{Error: "nope", ErrorType: tc.errorType}}))
		_, err := callTool(t, cs, CellToolName, `{"code": "1"}`)
		var rpc *jsonrpc.Error
		if !errors.As(err, &rpc) || rpc.Code != tc.code {
			t.Errorf("%s: error %v, want JSON-RPC code %d", tc.errorType, err, tc.code)
		}
	}
	cs := serveSessions(t, cellsAnswering(CellAnswer{ExecutionID: "e"}))
	if _, err := callTool(t, cs, CellToolName, `{"code": "1"}`); err == nil {
		t.Error("an answer that is neither success nor failure gave no error")
	}
}

func TestASessionIDThatIsNotAStringIsRefusedBeforeTheService(t *testing.T) {
	f := cellsAnswering(CellAnswer{})
	cs := serveSessions(t, f)
	for _, args := range []string{`{"session_id": 5, "code": "1"}`, `{"session_id": "", "code": "1"}`, `{"session_id": ["a"], "code": "1"}`} {
		res, err := callTool(t, cs, CellToolName, args)
		if err != nil {
			t.Fatalf("%s: %v", args, err)
		}
		if m := asMap(t, res.StructuredContent); !res.IsError || m["error_type"] != "invalid_request" || !strings.Contains(m["error"].(string), "session_id") {
			t.Errorf("%s: result = %v, want isError invalid_request naming session_id", args, m)
		}
	}
	// A null session_id is an absent one: a new session.
	if _, err := callTool(t, cs, CellToolName, `{"session_id": null, "code": "1"}`); err == nil {
		t.Error("a call answered neither success nor failure gave no error")
	}
	if calls := f.recorded(); len(calls) != 1 || calls[0].SessionID != "" || string(calls[0].Arguments) != `{"code":"1"}` {
		t.Errorf("the service got %+v, want only the call with a null session_id, as a new session", calls)
	}
}

func TestACellsDisplayComesAsContentBlocks(t *testing.T) {
	cs := serveSessions(t, cellsAnswering(CellAnswer{ExecutionID: "e", SessionID: "s1", Success: &api.CellSuccess{
		Result: json.RawMessage(`null`), ResultFormat: api.ResultFormatJSON, Stdout: "",
		Display: []api.DisplayItem{{Type: "image/png", Data: "iVBORw0KGgo="}, {Type: "text/plain", Data: "a table"}},
	}}))
	res, err := callTool(t, cs, CellToolName, `{"session_id": "s1", "code": "plt.show()"}`)
	if err != nil || res.IsError {
		t.Fatalf("tools/call: %v %+v", err, res)
	}
	if len(res.Content) != 3 {
		t.Fatalf("content = %v, want the JSON, an image and a text", res.Content)
	}
	if text := res.Content[0].(*mcp.TextContent).Text; strings.Contains(text, "display") || !strings.Contains(text, `"session_id":"s1"`) {
		t.Errorf("the JSON text block = %s, want the answer without its display", text)
	}
	if _, ok := res.Content[1].(*mcp.ImageContent); !ok {
		t.Errorf("second block is %T, want an image", res.Content[1])
	}
	if m := asMap(t, res.StructuredContent); m["display"] == nil || m["session_id"] != "s1" {
		t.Errorf("structured content = %v, want the display whole", m)
	}
}

func TestEndPythonSessionEndsTheSessionItNames(t *testing.T) {
	f := &fakeSessions{cell: func(CellCall) CellAnswer { return CellAnswer{} }, end: func(id string) *api.Failure {
		if id == "gone" {
			return &api.Failure{Error: "Session not found", ErrorType: "session_not_found"}
		}
		return nil
	}}
	cs := serveSessions(t, f)

	res, err := callTool(t, cs, EndSessionToolName, `{"session_id": "s1"}`)
	if err != nil || res.IsError || textOf(t, res) != `{"session_id":"s1","ended":true}` {
		t.Errorf("ending s1 = %v %+v, want {\"session_id\":\"s1\",\"ended\":true}", err, res)
	}
	res, err = callTool(t, cs, EndSessionToolName, `{"session_id": "gone"}`)
	if err != nil || !res.IsError || asMap(t, res.StructuredContent)["error_type"] != "session_not_found" {
		t.Errorf("ending an unknown session = %v %+v, want isError session_not_found", err, res)
	}
	for _, args := range []string{`{}`, `{"session_id": 1}`} {
		res, err = callTool(t, cs, EndSessionToolName, args)
		if err == nil && !res.IsError {
			t.Errorf("end_python_session %s succeeded, want it refused", args)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !reflect.DeepEqual(f.ended, []string{"s1", "gone"}) {
		t.Errorf("the service ended %v, want s1 and gone only", f.ended)
	}
}
