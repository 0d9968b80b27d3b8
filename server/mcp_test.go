package server_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyexec/pyexec/executor"
	ts "github.com/pyexec/pyexec/internal/testsupport"
	"github.com/pyexec/pyexec/mcpserver"
)

// connectMCP connects the SDK's client to the server's POST /mcp, sending
// and recording headers through rec.
func connectMCP(t *testing.T, s *testServer, rec *ts.HeaderRecorder) *mcp.ClientSession {
	t.Helper()
	return ts.ConnectMCPWith(t, s.executeURL, &http.Client{Transport: rec})
}

func TestRunPythonRunsThroughTheSameSeamAsExecute(t *testing.T) {
	var got []executor.Request
	var mu sync.Mutex
	exec := &fakeExecutor{run: func(req executor.Request) (executor.Result, error) {
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		return executor.Result{Value: json.RawMessage(`{"answer":4}`), Stdout: "hi"}, nil
	}}
	s := startServer(t, exec, nil)
	rec := &ts.HeaderRecorder{Add: http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}}
	cs := connectMCP(t, s, rec)
	s.skip = len(s.logs.Entries(t, true))

	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: mcpserver.ToolName, Arguments: map[string]any{"script": okScript}})
	if err != nil {
		t.Fatalf("tools/call: %v", err)
	}
	r := ts.ToolResponse(t, res)
	if r.Status != http.StatusOK || string(r.Raw) != `{"result":{"answer":4},"stdout":"hi"}` {
		t.Errorf("tools/call = %d %s, want the body /execute answers: {\"result\":{\"answer\":4},\"stdout\":\"hi\"}", r.Status, r.Raw)
	}
	if len(got) != 1 || got[0].Script != okScript {
		t.Fatalf("the executor ran %v, want the script once", got)
	}
	id := rec.Last().Get("X-Execution-Id")
	if id == "" || got[0].ID != id || res.Meta[mcpserver.MetaExecutionID] != id {
		t.Errorf("execution IDs: X-Execution-Id %q, executor's %q, _meta's %v; want one ID for all", id, got[0].ID, res.Meta[mcpserver.MetaExecutionID])
	}
	entry := s.only(t)
	want := map[string]any{
		"function":                     "mcp",
		"execution_id":                 id,
		"status":                       "ok",
		"logging.googleapis.com/trace": "projects/proj/traces/4bf92f3577b34da6a3ce929d0e0e4736",
	}
	for k, v := range want {
		if entry[k] != v {
			t.Errorf("log entry %s = %v, want %v (entry %v)", k, entry[k], v, entry)
		}
	}
}

func TestRunPythonArgumentsAreDecodedAsExecuteBodies(t *testing.T) {
	exec := answering(executor.Result{Value: json.RawMessage(`1`)}, nil)
	s := startServer(t, exec, nil)
	cs := connectMCP(t, s, &ts.HeaderRecorder{})
	for _, args := range []string{
		`{}`,
		`{"script": null}`,
		`{"script": 5}`,
		`{"script": ["def main(): pass"]}`,
	} {
		viaExecute := send(t, http.MethodPost, s.executeURL+"/execute", args)
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: mcpserver.ToolName, Arguments: json.RawMessage(args)})
		if err != nil {
			t.Fatalf("tools/call with %s: %v", args, err)
		}
		viaMCP := ts.ToolResponse(t, res)
		if viaExecute.status != http.StatusBadRequest || !res.IsError || string(viaMCP.Raw)+"\n" != viaExecute.body {
			t.Errorf("arguments %s: run_python answered isError %v %s, want isError with /execute's %d %s",
				args, res.IsError, viaMCP.Raw, viaExecute.status, viaExecute.body)
		}
	}
	if n := exec.calls.Load(); n != 0 {
		t.Errorf("the executor ran %d times, want never", n)
	}
}

func TestRunPythonWhenBusyIsAProtocolErrorToRetry(t *testing.T) {
	for _, tt := range []struct {
		err       error
		errorType string
	}{
		{executor.ErrBusy, "busy"},
		{executor.ErrSandboxUnavailable, "sandbox_unavailable"},
	} {
		t.Run(tt.errorType, func(t *testing.T) {
			s := startServer(t, answering(executor.Result{}, tt.err), nil)
			cs := connectMCP(t, s, &ts.HeaderRecorder{})
			s.skip = len(s.logs.Entries(t, true))
			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: mcpserver.ToolName, Arguments: map[string]any{"script": okScript}})
			var rpcErr *jsonrpc.Error
			if !errors.As(err, &rpcErr) || rpcErr.Code != mcpserver.CodeUnavailable || !strings.Contains(rpcErr.Message, "retry") {
				t.Fatalf("tools/call = %v, %v; want JSON-RPC error %d telling to retry", res, err, mcpserver.CodeUnavailable)
			}
			entry := s.only(t)
			if entry["function"] != "mcp" || entry["error_type"] != tt.errorType {
				t.Errorf("log entry = %v, want function mcp and error_type %s", entry, tt.errorType)
			}
		})
	}
}

func TestEveryMCPAnswerCarriesAnExecutionID(t *testing.T) {
	s := startServer(t, answering(executor.Result{}, nil), nil)
	for _, tt := range []struct {
		method, body string
		status       int
	}{
		{http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, http.StatusOK},
		{http.MethodPost, `not json`, http.StatusBadRequest},
		// Like every path of Execute: a method_not_allowed failure.
		{http.MethodGet, ``, http.StatusMethodNotAllowed},
		{http.MethodDelete, ``, http.StatusMethodNotAllowed},
	} {
		req, err := http.NewRequest(tt.method, s.executeURL+"/mcp", strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("X-Execution-Id") == "" {
			t.Errorf("%s /mcp %s = %d, X-Execution-Id %q; want %d with an ID", tt.method, tt.body, resp.StatusCode, resp.Header.Get("X-Execution-Id"), tt.status)
		}
		if tt.status == http.StatusMethodNotAllowed && (resp.Header.Get("Allow") != "POST" || !strings.Contains(string(body), `"error_type":"method_not_allowed"`)) {
			t.Errorf("%s /mcp = Allow %q %s, want Allow POST and a method_not_allowed failure", tt.method, resp.Header.Get("Allow"), body)
		}
	}
}
