//go:build integration

package mcpserver

import (
	"context"
	"encoding/json"
	"strings"
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
