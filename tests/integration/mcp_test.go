//go:build integration

package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyexec/pyexec/internal/leakcheck"
	"github.com/pyexec/pyexec/internal/mcpcheck"
	"github.com/pyexec/pyexec/internal/testsupport"
	"github.com/pyexec/pyexec/mcpserver"
)

// The MCP server on Execute's POST /mcp, as agents use it: the official Go
// SDK's client and, independently, the Python SDK's, over real HTTP against
// the real service. (The isolation and limits tests run through it too:
// entryPoints.)

// exampleScript is a file of examples/, the scripts README shows.
func exampleScript(t *testing.T, name string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(testsupport.RepoRoot(t), "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(src)
}

// mcpEntries are the log entries of the service's MCP executions.
func mcpEntries(t *testing.T, entries []map[string]any) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, e := range entries {
		if e["function"] == "mcp" {
			out = append(out, e)
		}
	}
	return out
}

func TestMCPListsRunPythonAndRunsThePandasExample(t *testing.T) {
	ts := testsupport.StartService(t, nil)
	rec := &testsupport.HeaderRecorder{}
	cs := testsupport.ConnectMCPWith(t, ts.URL, &http.Client{Transport: rec})

	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if want := []string{mcpserver.EndSessionToolName, mcpserver.ToolName, mcpserver.CellToolName}; !slices.Equal(names, want) {
		t.Fatalf("tools/list = %v, want %v", names, want)
	}

	res := testsupport.CallRunPython(t, cs, map[string]string{"script": exampleScript(t, "pandas_sum.py")})
	want := map[string]any{"result": map[string]any{"sum_a": 6.0, "sum_b": 15.0}, "stdout": ""}
	if res.IsError || !reflect.DeepEqual(res.StructuredContent, want) {
		t.Errorf("run_python(pandas_sum.py) = isError %v, structuredContent %v; want %v", res.IsError, res.StructuredContent, want)
	}
	r := testsupport.ToolResponse(t, res)
	if string(r.Raw) != `{"result":{"sum_a":6,"sum_b":15},"stdout":""}` {
		t.Errorf("run_python(pandas_sum.py) text = %s, want /execute's body", r.Raw)
	}

	id := rec.Last().Get("X-Execution-Id")
	entries := mcpEntries(t, ts.Logs.Entries(t, true))
	if len(entries) != 1 || entries[0]["execution_id"] != id || entries[0]["status"] != "ok" || res.Meta[mcpserver.MetaExecutionID] != id {
		t.Errorf("log entries with function mcp = %v, want one, status ok, for execution %s (X-Execution-Id and _meta %v)", entries, id, res.Meta)
	}
}

func TestMCPScriptFailuresAreToolErrorsTheAgentCanRead(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_QUEUE": "64"})
	cs := testsupport.ConnectMCP(t, ts.URL)
	for _, tt := range []struct {
		name string
		args map[string]any
		want failure
		// wantStdout and wantTraceback, when set, are checked too.
		wantStdout    string
		wantTraceback []string
	}{
		{
			name:          "an exception in a function of the script",
			args:          map[string]any{"script": "def divide(x):\n    return 1 / x\n\n\ndef main():\n    print('about to divide')\n    return divide(0)\n"},
			want:          failure{400, "exception", "ZeroDivisionError: division by zero"},
			wantStdout:    "about to divide",
			wantTraceback: []string{`File "<script>", line 7, in main`, `File "<script>", line 2, in divide`, "ZeroDivisionError: division by zero"},
		},
		{
			name: "a syntax error",
			args: map[string]any{"script": "def main(:\n    return 1\n"},
			want: failure{400, "syntax_error", "SyntaxError:"},
		},
		{
			name: "no main",
			args: map[string]any{"script": exampleScript(t, "no_main.py")},
			want: failure{400, "no_main", "Script must contain a 'def main()' function"},
		},
		{
			name: "no script",
			args: map[string]any{"code": "def main():\n    return 1\n"},
			want: failure{400, "invalid_request", "Missing 'script' field"},
		},
		{
			name: "a blank script",
			args: map[string]any{"script": "  \n"},
			want: failure{400, "invalid_request", "Script must be a non-empty string"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := testsupport.CallRunPython(t, cs, tt.args)
			if !res.IsError {
				t.Errorf("run_python = %v, want isError", res.StructuredContent)
			}
			r := testsupport.ToolResponse(t, res)
			if r.Status != tt.want.status || r.ErrorType != tt.want.errorType || !strings.HasPrefix(r.Error, tt.want.errPrefix) || r.Stdout == nil || r.Result != nil {
				t.Errorf("run_python %s = %s, want error_type %q, error starting %q, stdout and no result", tt.name, r.Raw, tt.want.errorType, tt.want.errPrefix)
			}
			if tt.wantStdout != "" && deref(r.Stdout) != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", deref(r.Stdout), tt.wantStdout)
			}
			if tt.wantTraceback != nil {
				checkUserTraceback(t, r, tt.wantTraceback)
			}
		})
	}
	for _, e := range mcpEntries(t, ts.Logs.Entries(t, true)) {
		if e["severity"] != "WARNING" || e["status"] != "error" {
			t.Errorf("log entry of a failed run_python = %v, want WARNING, status error", e)
		}
	}
}

func TestMCPWhenBusyIsAProtocolErrorThatSaysRetry(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_CONCURRENCY": "1", "PYEXEC_QUEUE": "0"})
	cs := testsupport.ConnectMCP(t, ts.URL)
	type answer struct {
		res *mcp.CallToolResult
		err error
	}
	sleeper := make(chan answer, 1)
	go func() {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: mcpserver.ToolName, Arguments: map[string]string{
			"script": testsupport.NameProcess("pyexec-sleeper") + "import time\n\ndef main():\n    time.sleep(4)\n    return 'slept'\n",
		}})
		sleeper <- answer{res, err}
	}()
	testsupport.PollUntil(t, 30*time.Second, "the sleeping script to run", func() bool {
		return len(leakcheck.DescendantsNamed(os.Getpid(), "pyexec-sleeper")) > 0
	})

	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: mcpserver.ToolName, Arguments: map[string]string{"script": "def main():\n    return 1\n"}})
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != mcpserver.CodeUnavailable || !strings.Contains(rpcErr.Message, "retry") {
		t.Fatalf("run_python while the only slot is taken = %v, %v; want JSON-RPC error %d that says to retry", res, err, mcpserver.CodeUnavailable)
	}
	var data struct {
		ErrorType string `json:"error_type"`
	}
	if json.Unmarshal(rpcErr.Data, &data) != nil || data.ErrorType != "busy" {
		t.Errorf("the error's data = %s, want error_type busy", rpcErr.Data)
	}

	select {
	case a := <-sleeper:
		if a.err != nil || a.res.IsError || !reflect.DeepEqual(a.res.StructuredContent, map[string]any{"result": "slept", "stdout": ""}) {
			t.Errorf("the sleeping script = %v, %v; want its result", a.res, a.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the sleeping script was not answered within 60 s")
	}
	checkOK(t, "once the slot is free again", ts.RunPython(t, "def main():\n    return 1\n"), "1", "")
}

func TestMCPCallsAtOnceAreEachAnsweredCorrectly(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_QUEUE": "64"})
	// One session shared by half the calls, a session each for the others:
	// the calls of one session, too, are independent requests.
	shared := testsupport.ConnectMCP(t, ts.URL)
	const calls = 12
	type answer struct {
		res *mcp.CallToolResult
		err error
	}
	answers := make([]answer, calls)
	var wg sync.WaitGroup
	for i := range calls {
		cs := shared
		if i%2 == 1 {
			cs = testsupport.ConnectMCP(t, ts.URL)
		}
		script := fmt.Sprintf("import time\n\ndef main():\n    print('call %d')\n    time.sleep(0.2)\n    return {'call': %d}\n", i, i)
		if i%4 == 3 {
			script = fmt.Sprintf("def main():\n    print('call %d')\n    raise ValueError('call %d')\n", i, i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: mcpserver.ToolName, Arguments: map[string]string{"script": script}})
			answers[i] = answer{res, err}
		}()
	}
	wg.Wait()
	for i, a := range answers {
		if a.err != nil {
			t.Errorf("call %d: %v", i, a.err)
			continue
		}
		r := testsupport.ToolResponse(t, a.res)
		if i%4 == 3 {
			if !a.res.IsError || r.ErrorType != "exception" || r.Error != fmt.Sprintf("ValueError: call %d", i) || deref(r.Stdout) != fmt.Sprintf("call %d", i) {
				t.Errorf("call %d = %s, want its own ValueError and stdout", i, r.Raw)
			}
			continue
		}
		if a.res.IsError || string(r.Result) != fmt.Sprintf(`{"call":%d}`, i) || deref(r.Stdout) != fmt.Sprintf("call %d", i) {
			t.Errorf("call %d = %s, want its own result and stdout", i, r.Raw)
		}
	}
	if n := len(mcpEntries(t, ts.Logs.Entries(t, true))); n != calls {
		t.Errorf("%d log entries with function mcp, want one per call (%d)", n, calls)
	}
}

func TestIndependentPythonMCPClientAgainstTheBinary(t *testing.T) {
	b := testsupport.StartBinary(t, nil)
	b.Health(t, http.StatusOK)
	script := filepath.Join(testsupport.RepoRoot(t), "tests", "mcp", "client_check.py")
	protocols := []string{"auto", "legacy"}
	for _, protocol := range protocols {
		t.Run(protocol, func(t *testing.T) {
			out, passed := mcpcheck.Run(t, script, b.URL+"/mcp", protocol)
			if !passed || !strings.Contains(out, "all checks passed") {
				t.Fatalf("client_check.py --protocol %s against the service failed:\n%s", protocol, out)
			}
		})
	}
	// Each run made two calls: the pandas example and a script that raises.
	entries := mcpEntries(t, b.Entries(t))
	var ok, failed int
	for _, e := range entries {
		switch {
		case e["status"] == "ok":
			ok++
		case e["error_type"] == "exception":
			failed++
		}
	}
	if ok != len(protocols) || failed != len(protocols) {
		t.Errorf("log entries with function mcp = %v, want %d ok and %d exceptions", entries, len(protocols), len(protocols))
	}
}

// The Python SDK's client keeps state across two calls: the first loads a
// CSV into a DataFrame, the second's answer (4) depends on it.
func TestIndependentPythonMCPClientKeepsASessionAgainstTheBinary(t *testing.T) {
	b := testsupport.StartBinary(t, nil)
	b.Health(t, http.StatusOK)
	script := filepath.Join(testsupport.RepoRoot(t), "tests", "mcp", "cell_check.py")
	protocols := []string{"auto", "legacy"}
	for _, protocol := range protocols {
		t.Run(protocol, func(t *testing.T) {
			out, passed := mcpcheck.Run(t, script, b.URL+"/mcp", protocol)
			if !passed || !strings.Contains(out, "all checks passed") {
				t.Fatalf("cell_check.py --protocol %s against the service failed:\n%s", protocol, out)
			}
		})
	}
	// Each run started one session and ran three cells in it, logged as
	// the session paths log them.
	var started, ok int
	for _, e := range b.Entries(t) {
		switch {
		case e["function"] == "session" && e["message"] == "session started":
			started++
		case e["function"] == "session" && e["message"] == "cell ok":
			ok++
		}
	}
	if started != len(protocols) || ok != 3*len(protocols) {
		t.Errorf("logged %d sessions started and %d cells ok, want %d and %d", started, ok, len(protocols), 3*len(protocols))
	}
}
