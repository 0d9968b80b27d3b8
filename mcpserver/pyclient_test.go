//go:build integration

package mcpserver

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/internal/mcpcheck"
)

// clientCheck runs tests/mcp/client_check.py against url and returns its
// output and whether it passed.
func clientCheck(t *testing.T, url, protocol string) (string, bool) {
	t.Helper()
	return mcpcheck.Run(t, "../tests/mcp/client_check.py", url, protocol)
}

// examplesService plays the service for the two scripts client_check.py
// runs: the answers POST /execute gives for the pandas example and for a
// script that raises ZeroDivisionError in divide(). It tests the MCP layer
// and the independent client between them; the same check against the real
// service is the service's integration test.
type examplesService struct {
	pandasResult string // the pandas example's result, as JSON
	traceback    string // the failing script's traceback
}

func (s examplesService) answer(t *testing.T) func(context.Context, Call) Answer {
	pandas := pandasExample(t)
	return func(_ context.Context, call Call) Answer {
		var req api.Request
		if err := json.Unmarshal(call.Arguments, &req); err != nil {
			return Answer{Failure: &api.Failure{Error: "Request body is not valid JSON", ErrorType: "invalid_request"}}
		}
		if req.Script == pandas {
			return Answer{ExecutionID: "exec-pandas", Success: &api.Success{Result: json.RawMessage(s.pandasResult), Stdout: ""}}
		}
		return Answer{ExecutionID: "exec-failing", Failure: &api.Failure{
			Error: "ZeroDivisionError: division by zero", ErrorType: "exception", Stdout: "about to divide", Traceback: s.traceback,
		}}
	}
}

// realTraceback is what the service answers for client_check.py's failing
// script: the script's own frames only.
const realTraceback = "Traceback (most recent call last):\n" +
	"  File \"<script>\", line 7, in main\n    return divide(0)\n" +
	"  File \"<script>\", line 2, in divide\n    return 1 / x\n" +
	"ZeroDivisionError: division by zero"

func TestIndependentPythonClientListsAndCallsRunPython(t *testing.T) {
	service := examplesService{pandasResult: `{"sum_a": 6, "sum_b": 15}`, traceback: realTraceback}
	srv := serve(t, &fakeService{answer: service.answer(t)}, testOptions)
	for _, protocol := range []string{"auto", "legacy"} {
		t.Run(protocol, func(t *testing.T) {
			out, passed := clientCheck(t, srv.URL, protocol)
			if !passed {
				t.Fatalf("client_check.py --protocol %s failed:\n%s", protocol, out)
			}
			if !strings.Contains(out, "all checks passed") {
				t.Errorf("client_check.py passed without saying so:\n%s", out)
			}
		})
	}
}

func TestIndependentPythonClientCatchesAWrongAnswer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		service *fakeService
		want    string // in the check's output
	}{
		{"a wrong sum", &fakeService{answer: examplesService{pandasResult: `{"sum_a": 6, "sum_b": 16}`, traceback: realTraceback}.answer(t)},
			`FAIL  structuredContent.result is {"sum_a": 6, "sum_b": 15}`},
		{"no traceback", &fakeService{answer: examplesService{pandasResult: `{"sum_a": 6, "sum_b": 15}`}.answer(t)},
			"FAIL  traceback runs through the script's divide()"},
		{"a busy service", answering(Answer{Failure: &api.Failure{Error: "Service busy, retry later", ErrorType: "busy"}}),
			"retry the call"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, passed := clientCheck(t, serve(t, tc.service, testOptions).URL, "auto")
			if passed {
				t.Fatalf("client_check.py passed against %s:\n%s", tc.name, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("client_check.py output does not say %q:\n%s", tc.want, out)
			}
		})
	}
}

// notebook plays the service's sessions for cell_check.py: each session
// remembers whether its DataFrame was loaded.
type notebook struct {
	mu     sync.Mutex
	loaded map[string]bool // by session ID; absent: ended or never started
	next   int
}

func (n *notebook) RunCell(_ context.Context, call CellCall) CellAnswer {
	n.mu.Lock()
	defer n.mu.Unlock()
	var cell struct{ Code string }
	_ = json.Unmarshal(call.Arguments, &cell)
	a := CellAnswer{ExecutionID: "exec", SessionID: call.SessionID}
	if a.SessionID == "" {
		n.next++
		a.SessionID = strconv.Itoa(n.next)
		n.loaded[a.SessionID] = false
	}
	loaded, live := n.loaded[a.SessionID]
	switch {
	case !live:
		a.Failure = &api.Failure{Error: "Session not found", ErrorType: "session_not_found"}
	case strings.Contains(cell.Code, "read_csv"):
		n.loaded[a.SessionID] = true
		a.Success = &api.CellSuccess{Result: json.RawMessage("null"), ResultFormat: api.ResultFormatJSON}
	case !loaded:
		a.Failure = &api.Failure{Error: "NameError: name 'df' is not defined", ErrorType: "exception"}
	case cell.Code == "df":
		a.Success = &api.CellSuccess{Result: json.RawMessage(`"   a  b\n0  1  2\n1  3  4"`), ResultFormat: api.ResultFormatText}
	default:
		a.Success = &api.CellSuccess{Result: json.RawMessage("4"), ResultFormat: api.ResultFormatJSON}
	}
	return a
}

func (n *notebook) EndSession(_ context.Context, id string) *api.Failure {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, live := n.loaded[id]; !live {
		return &api.Failure{Error: "Session not found", ErrorType: "session_not_found"}
	}
	delete(n.loaded, id)
	return nil
}

func TestIndependentPythonClientKeepsASessionAcrossCalls(t *testing.T) {
	opts := testOptions
	opts.Sessions = &notebook{loaded: map[string]bool{}}
	srv := httptest.NewServer(New(answering(Answer{}).run, opts))
	t.Cleanup(srv.Close)
	for _, protocol := range []string{"auto", "legacy"} {
		t.Run(protocol, func(t *testing.T) {
			out, passed := mcpcheck.Run(t, "../tests/mcp/cell_check.py", srv.URL, protocol)
			if !passed || !strings.Contains(out, "all checks passed") {
				t.Fatalf("cell_check.py --protocol %s failed:\n%s", protocol, out)
			}
		})
	}
}

func TestIndependentPythonClientCatchesALostSession(t *testing.T) {
	// A service that starts a new session on every call forgets the
	// DataFrame: the second call cannot answer 4.
	forgetful := &fakeSessions{cell: func(call CellCall) CellAnswer {
		if strings.Contains(string(call.Arguments), "read_csv") {
			return CellAnswer{ExecutionID: "exec", SessionID: "fresh", Success: &api.CellSuccess{Result: json.RawMessage("null"), ResultFormat: api.ResultFormatJSON}}
		}
		return CellAnswer{ExecutionID: "exec", SessionID: "fresh", Failure: &api.Failure{Error: "NameError: name 'df' is not defined", ErrorType: "exception"}}
	}}
	opts := testOptions
	opts.Sessions = forgetful
	srv := httptest.NewServer(New(answering(Answer{}).run, opts))
	t.Cleanup(srv.Close)
	out, passed := mcpcheck.Run(t, "../tests/mcp/cell_check.py", srv.URL, "auto")
	if passed || !strings.Contains(out, "FAIL  the second call reads the first call's DataFrame") {
		t.Fatalf("cell_check.py against a service that forgets passed or said otherwise:\n%s", out)
	}
}
