package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyexec/pyexec/api"
)

// testOptions are the service's default limits.
var testOptions = Options{Timeout: 30 * time.Second, MemoryMB: 512, MaxRequestBytes: 10 << 20}

// fakeService stands in for the service behind the RunFunc: it records every
// call and answers with its answer function.
type fakeService struct {
	answer func(ctx context.Context, call Call) Answer

	mu    sync.Mutex
	calls []Call
}

func (f *fakeService) run(ctx context.Context, call Call) Answer {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
	return f.answer(ctx, call)
}

// recorded is every call made so far.
func (f *fakeService) recorded() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// answering is a fake service that gives every call the same answer.
func answering(a Answer) *fakeService {
	return &fakeService{answer: func(context.Context, Call) Answer { return a }}
}

// serve serves New(f.run, opts) over real HTTP on loopback.
func serve(t *testing.T, f *fakeService, opts Options) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(New(f.run, opts))
	t.Cleanup(srv.Close)
	return srv
}

// connect connects the SDK's own client to the endpoint at url.
func connect(t *testing.T, url string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "pyexec-test", Version: "v0"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: url, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatalf("Connect(%s): %v", url, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// pandasExample is the seed's pandas example, the script a new user tries first.
func pandasExample(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("../examples/pandas_sum.py")
	if err != nil {
		t.Fatal(err)
	}
	return string(src)
}

// asMap decodes a JSON value (or re-encodes a decoded one) into a map.
func asMap(t *testing.T, v any) map[string]any {
	t.Helper()
	data, ok := v.([]byte)
	if !ok {
		var err error
		if data, err = json.Marshal(v); err != nil {
			t.Fatalf("encoding %v: %v", v, err)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s is not a JSON object: %v", data, err)
	}
	return m
}

// textOf is the text of the result's one content block.
func textOf(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if len(res.Content) != 1 {
		t.Fatalf("result has %d content blocks, want 1 text block", len(res.Content))
	}
	text, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("content block is %T, want *mcp.TextContent", res.Content[0])
	}
	return text.Text
}

func TestToolsListShowsRunPythonWithTheRequestSchema(t *testing.T) {
	srv := serve(t, answering(Answer{}), testOptions)
	cs := connect(t, srv.URL)

	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatalf("ListTools: %v", err)
	}
	if len(res.Tools) != 1 || res.Tools[0].Name != "run_python" {
		t.Fatalf("tools = %v, want exactly run_python", res.Tools)
	}
	tool := res.Tools[0]

	in := asMap(t, tool.InputSchema)
	if in["type"] != "object" || !reflect.DeepEqual(in["required"], []any{"script"}) {
		t.Errorf("input schema type %v, required %v; want object requiring script", in["type"], in["required"])
	}
	props := in["properties"].(map[string]any)
	for _, name := range []string{"script", "input", "stdin", "files", "limits"} {
		if props[name] == nil {
			t.Errorf("input schema has no property %q (the fields of api.Request)", name)
		}
	}
	if got := props["script"].(map[string]any)["type"]; got != "string" {
		t.Errorf("script type = %v, want string", got)
	}
	// input is any JSON value: no type at all, and certainly not the array
	// of bytes under json.RawMessage.
	input := props["input"].(map[string]any)
	if input["type"] != nil || input["items"] != nil {
		t.Errorf("input schema = %v, want any JSON value (no type, no items)", input)
	}
	file := props["files"].(map[string]any)["items"].(map[string]any)["properties"].(map[string]any)
	if got := file["encoding"].(map[string]any)["enum"]; !reflect.DeepEqual(got, []any{"utf-8", "base64"}) {
		t.Errorf("files[].encoding enum = %v, want [utf-8 base64]", got)
	}
	limits := props["limits"].(map[string]any)["properties"].(map[string]any)
	if got := limits["timeout_seconds"].(map[string]any)["maximum"]; got != 30.0 {
		t.Errorf("limits.timeout_seconds maximum = %v, want the service's 30", got)
	}
	if got := limits["memory_mb"].(map[string]any)["maximum"]; got != 512.0 {
		t.Errorf("limits.memory_mb maximum = %v, want the service's 512", got)
	}

	out := asMap(t, tool.OutputSchema)
	if !reflect.DeepEqual(out["required"], []any{"result", "stdout"}) {
		t.Errorf("output schema requires %v, want [result stdout]", out["required"])
	}
	outProps := out["properties"].(map[string]any)
	if result := outProps["result"].(map[string]any); result["type"] != nil || result["items"] != nil {
		t.Errorf("output schema of result = %v, want any JSON value", result)
	}
	if outProps["files"] == nil {
		t.Error("output schema has no files")
	}

	for _, want := range []string{"Python 3.11", "pandas", "numpy", "standard library", "No network",
		"main()", "main(input)", "`files`", "outputs/", "30 seconds", "512 MiB", "10MB", "isError", "retry"} {
		if !strings.Contains(tool.Description, want) {
			t.Errorf("description does not mention %q:\n%s", want, tool.Description)
		}
	}
	if tool.Annotations == nil || !tool.Annotations.ReadOnlyHint || tool.Annotations.OpenWorldHint == nil || *tool.Annotations.OpenWorldHint {
		t.Errorf("annotations = %+v, want read-only and closed-world", tool.Annotations)
	}
}

func TestCallThatSucceedsGivesStructuredContentAndTheSameJSONAsText(t *testing.T) {
	withFiles := &api.Success{
		Result: json.RawMessage(`{"sum_a":6,"sum_b":15}`),
		Stdout: "<done> & dusted",
		Files:  []api.OutputFile{{Path: "outputs/out.csv", Content: "eCwxCg==", Encoding: api.EncodingBase64, Bytes: 4}},
	}
	for _, tc := range []struct {
		name    string
		success *api.Success
		want    string
	}{
		{"without files the key is absent", &api.Success{Result: json.RawMessage(`{"sum_a":6,"sum_b":15}`), Stdout: ""},
			`{"result":{"sum_a":6,"sum_b":15},"stdout":""}`},
		{"with files they come back", withFiles,
			`{"result":{"sum_a":6,"sum_b":15},"stdout":"<done> & dusted","files":[{"path":"outputs/out.csv","content":"eCwxCg==","encoding":"base64","bytes":4}]}`},
		{"a result that is not an object", &api.Success{Result: json.RawMessage(`[1,"two",null]`), Stdout: "x"},
			`{"result":[1,"two",null],"stdout":"x"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := answering(Answer{ExecutionID: "exec-1", Success: tc.success})
			cs := connect(t, serve(t, f, testOptions).URL)
			script := pandasExample(t)

			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "run_python", Arguments: map[string]any{"script": script}})
			if err != nil {
				t.Fatalf("CallTool: %v", err)
			}
			if res.IsError {
				t.Fatalf("IsError set on a success: %s", textOf(t, res))
			}
			if got, want := asMap(t, res.StructuredContent), asMap(t, []byte(tc.want)); !reflect.DeepEqual(got, want) {
				t.Errorf("structuredContent = %v, want %v", got, want)
			}
			// The text block is the JSON exactly, with <, > and & as they are.
			if got := textOf(t, res); got != tc.want {
				t.Errorf("text = %s, want %s", got, tc.want)
			}
			if got := res.Meta[MetaExecutionID]; got != "exec-1" {
				t.Errorf("_meta[%s] = %v, want exec-1", MetaExecutionID, got)
			}

			calls := f.recorded()
			if len(calls) != 1 {
				t.Fatalf("RunFunc called %d times, want 1", len(calls))
			}
			var req api.Request
			if err := json.Unmarshal(calls[0].Arguments, &req); err != nil || req.Script != script {
				t.Errorf("RunFunc got arguments %s (%v), want the script sent", calls[0].Arguments, err)
			}
		})
	}
}

func TestScriptFailureIsAToolErrorWithItsTraceback(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failure api.Failure
	}{
		{"exception", api.Failure{
			Error: "ZeroDivisionError: division by zero", ErrorType: "exception", Stdout: "before",
			Traceback: "Traceback (most recent call last):\n  File \"<script>\", line 5, in main\nZeroDivisionError: division by zero",
		}},
		{"timeout", api.Failure{Error: "Execution timed out after 30 seconds", ErrorType: "timeout", Stdout: "tick"}},
		{"invalid request", api.Failure{Error: "Script must be a non-empty string", ErrorType: "invalid_request"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := answering(Answer{ExecutionID: "exec-2", Failure: &tc.failure})
			cs := connect(t, serve(t, f, testOptions).URL)

			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "run_python", Arguments: map[string]any{"script": "def main(): return 1/0"}})
			if err != nil {
				t.Fatalf("CallTool: %v, want a result with isError", err)
			}
			if !res.IsError {
				t.Fatalf("IsError not set on %s", tc.failure.ErrorType)
			}
			want, _ := json.Marshal(tc.failure)
			if got := asMap(t, res.StructuredContent); !reflect.DeepEqual(got, asMap(t, want)) {
				t.Errorf("structuredContent = %v, want %s", got, want)
			}
			if got := asMap(t, []byte(textOf(t, res))); !reflect.DeepEqual(got, asMap(t, want)) {
				t.Errorf("text = %v, want %s", got, want)
			}
			if tc.failure.Traceback != "" && asMap(t, res.StructuredContent)["traceback"] != tc.failure.Traceback {
				t.Errorf("traceback lost: %v", res.StructuredContent)
			}
			if got := res.Meta[MetaExecutionID]; got != "exec-2" {
				t.Errorf("_meta[%s] = %v, want exec-2", MetaExecutionID, got)
			}
		})
	}
}

func TestNoScriptRanIsAProtocolError(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failure   api.Failure
		code      int64
		wantRetry bool
	}{
		{"busy", api.Failure{Error: "Service busy, retry later", ErrorType: "busy"}, CodeUnavailable, true},
		{"sandbox unavailable", api.Failure{Error: "Sandbox unavailable", ErrorType: "sandbox_unavailable"}, CodeUnavailable, true},
		{"internal", api.Failure{Error: "Internal error (execution exec-3)", ErrorType: "internal"}, CodeInternal, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := answering(Answer{ExecutionID: "exec-3", Failure: &tc.failure})
			cs := connect(t, serve(t, f, testOptions).URL)

			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "run_python", Arguments: map[string]any{"script": "def main(): return 1"}})
			var rpcErr *jsonrpc.Error
			if !errors.As(err, &rpcErr) {
				t.Fatalf("CallTool = %+v, %v; want a JSON-RPC error", res, err)
			}
			if rpcErr.Code != tc.code {
				t.Errorf("code = %d, want %d", rpcErr.Code, tc.code)
			}
			if !strings.HasPrefix(rpcErr.Message, tc.failure.Error) {
				t.Errorf("message = %q, want it to start with %q", rpcErr.Message, tc.failure.Error)
			}
			if got := strings.Contains(rpcErr.Message, "retry the call"); got != tc.wantRetry {
				t.Errorf("message %q tells to retry: %v, want %v", rpcErr.Message, got, tc.wantRetry)
			}
			data := asMap(t, []byte(rpcErr.Data))
			if data["error_type"] != tc.failure.ErrorType || data["execution_id"] != "exec-3" {
				t.Errorf("data = %v, want error_type %s and execution_id exec-3", data, tc.failure.ErrorType)
			}
		})
	}
}

func TestAnAnswerThatIsNeitherSuccessNorFailureIsInternal(t *testing.T) {
	cs := connect(t, serve(t, answering(Answer{ExecutionID: "exec-4"}), testOptions).URL)
	_, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "run_python", Arguments: map[string]any{"script": "x"}})
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != CodeInternal || rpcErr.Message != "Internal error (execution exec-4)" {
		t.Fatalf("CallTool error = %v, want internal error naming exec-4", err)
	}
}

func TestNumbersInInputAndResultStayExact(t *testing.T) {
	// 2**100 and 0.1's exact binary value: neither survives a float64.
	const input = `{"big":1267650600228229401496703205376,"tenth":0.1000000000000000055511151231257827021181583404541015625,"list":[-9007199254740993]}`
	const result = `{"big":1267650600228229401496703205377}`
	f := answering(Answer{ExecutionID: "exec-5", Success: &api.Success{Result: json.RawMessage(result), Stdout: ""}})
	cs := connect(t, serve(t, f, testOptions).URL)

	args := json.RawMessage(`{"script":"def main(x):\n    return {'big': x['big'] + 1}","input":` + input + `}`)
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "run_python", Arguments: args})
	if err != nil {
		t.Fatalf("CallTool: %v", err)
	}
	var req api.Request
	if err := json.Unmarshal(f.recorded()[0].Arguments, &req); err != nil {
		t.Fatal(err)
	}
	if string(req.Input) != input {
		t.Errorf("input reached the RunFunc as %s, want %s", req.Input, input)
	}
	// The Go client decodes structuredContent into float64s; the text block
	// shows what was on the wire (http_test.go checks structuredContent's bytes).
	if want := `{"result":` + result + `,"stdout":""}`; textOf(t, res) != want {
		t.Errorf("text = %s, want %s", textOf(t, res), want)
	}
}

func TestCallsAtOnceEachGetTheirOwnAnswer(t *testing.T) {
	f := &fakeService{answer: func(_ context.Context, call Call) Answer {
		var req api.Request
		json.Unmarshal(call.Arguments, &req)
		time.Sleep(20 * time.Millisecond) // let the calls overlap
		return Answer{Success: &api.Success{Result: json.RawMessage(`null`), Stdout: req.Script}}
	}}
	srv := serve(t, f, testOptions)

	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// One client each, as independent agents would be.
			cs := connect(t, srv.URL)
			script := fmt.Sprintf("def main(): return %d", i)
			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "run_python", Arguments: map[string]any{"script": script}})
			if err != nil {
				t.Errorf("call %d: %v", i, err)
				return
			}
			if got := asMap(t, res.StructuredContent)["stdout"]; got != script {
				t.Errorf("call %d got stdout %q, want its own script %q", i, got, script)
			}
		})
	}
	wg.Wait()
	if got := len(f.recorded()); got != n {
		t.Errorf("RunFunc called %d times, want %d", got, n)
	}
}

func TestAClientThatGoesAwayCancelsTheRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(ctx context.Context, t *testing.T, url string)
	}{
		{"the SDK's client on the newest protocol", func(ctx context.Context, t *testing.T, url string) {
			cs := connect(t, url)
			if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "run_python", Arguments: map[string]any{"script": "x"}}); err == nil {
				t.Error("CallTool succeeded although its context was cancelled")
			}
		}},
		{"a client on protocol 2025-06-18", func(ctx context.Context, t *testing.T, url string) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(callPandas))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				t.Error("the request succeeded although its context was cancelled")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started, cancelled := make(chan struct{}), make(chan struct{})
			f := &fakeService{answer: func(ctx context.Context, _ Call) Answer {
				close(started)
				select {
				case <-ctx.Done():
					close(cancelled)
				case <-time.After(10 * time.Second):
				}
				return Answer{Failure: &api.Failure{Error: "cancelled", ErrorType: "timeout"}}
			}}
			srv := serve(t, f, testOptions)

			ctx, cancel := context.WithCancel(t.Context())
			go func() {
				<-started
				cancel()
			}()
			tc.call(ctx, t, srv.URL)
			select {
			case <-cancelled:
			case <-time.After(5 * time.Second):
				t.Fatal("the RunFunc's context was not cancelled when the client went away")
			}
		})
	}
}

func TestAbsentArgumentsReachTheServiceAsAnEmptyRequest(t *testing.T) {
	f := answering(Answer{Failure: &api.Failure{Error: "Script must be a non-empty string", ErrorType: "invalid_request"}})
	srv := serve(t, f, testOptions)
	status, _ := postJSONRPC(t, srv.URL, nil, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_python"}}`)
	if status != http.StatusOK {
		t.Fatalf("status = %d, want 200", status)
	}
	if calls := f.recorded(); len(calls) != 1 || string(calls[0].Arguments) != "{}" {
		t.Errorf("RunFunc got %v, want one call with arguments {}", calls)
	}
}

func TestNewRefusesWiringMistakes(t *testing.T) {
	run := answering(Answer{}).run
	for _, tc := range []struct {
		name string
		run  RunFunc
		opts Options
	}{
		{"nil RunFunc", nil, testOptions},
		{"no timeout", run, Options{MemoryMB: 512, MaxRequestBytes: 1 << 20}},
		{"no memory limit", run, Options{Timeout: time.Second, MaxRequestBytes: 1 << 20}},
		{"no request cap", run, Options{Timeout: time.Second, MemoryMB: 512}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("New did not panic")
				}
			}()
			New(tc.run, tc.opts)
		})
	}
}
