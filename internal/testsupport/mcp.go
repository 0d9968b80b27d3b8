package testsupport

import (
	"encoding/json"
	"net/http"
	"reflect"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyexec/pyexec/mcpserver"
)

// ConnectMCP connects the official Go SDK's client to the MCP server of the
// service at baseURL (POST /mcp) over real HTTP, and closes the session at
// cleanup. The server is stateless, so sessions are cheap: a test may open
// one per call.
func ConnectMCP(t testing.TB, baseURL string) *mcp.ClientSession {
	t.Helper()
	return ConnectMCPWith(t, baseURL, nil)
}

// ConnectMCPWith is ConnectMCP sending the requests with client (nil: the
// default client).
func ConnectMCPWith(t testing.TB, baseURL string, client *http.Client) *mcp.ClientSession {
	t.Helper()
	sdk := mcp.NewClient(&mcp.Implementation{Name: "pyexec-test", Version: "v0"}, nil)
	// No standalone event stream: a stateless server never sends one.
	transport := &mcp.StreamableClientTransport{Endpoint: baseURL + "/mcp", HTTPClient: client, DisableStandaloneSSE: true}
	cs, err := sdk.Connect(t.Context(), transport, nil)
	if err != nil {
		t.Fatalf("connecting to %s/mcp: %v", baseURL, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// HeaderRecorder is an HTTP transport that adds Add to every request and
// keeps the header of the last answer: what the HTTP request that carried
// an MCP call was answered with.
type HeaderRecorder struct {
	Add http.Header

	mu   sync.Mutex
	last http.Header
}

// RoundTrip sends req with the default transport.
func (h *HeaderRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for name, values := range h.Add {
		req.Header[name] = values
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		h.mu.Lock()
		h.last = resp.Header.Clone()
		h.mu.Unlock()
	}
	return resp, err
}

// Last is the header of the last answer.
func (h *HeaderRecorder) Last() http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// CallRunPython calls the run_python tool with args over cs, failing t on
// a protocol error (a call that ran no script).
func CallRunPython(t testing.TB, cs *mcp.ClientSession, args any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "run_python", Arguments: args})
	if err != nil {
		t.Fatalf("tools/call run_python: %v", err)
	}
	return res
}

// ToolResponse decodes a run_python result as Do decodes the answer of
// POST /execute to the same request. Raw is the result's text block, which
// holds the body /execute answers byte for byte (the structured content,
// decoded by the SDK into float64s, must hold the same JSON). Status is 200
// for a success and 400 for a result with isError: every failure a tool
// call can have as a result is one that /execute answers 400 (413 is
// refused by the transport before any tool runs; busy,
// sandbox_unavailable and internal are protocol errors).
func ToolResponse(t testing.TB, res *mcp.CallToolResult) Response {
	t.Helper()
	if len(res.Content) != 1 {
		t.Fatalf("run_python's result has %d content blocks, want one text block", len(res.Content))
	}
	text, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("run_python's content block is %T, want text", res.Content[0])
	}
	raw := []byte(text.Text)
	var fromText, structured any
	data, err := json.Marshal(res.StructuredContent)
	if err != nil || json.Unmarshal(raw, &fromText) != nil || json.Unmarshal(data, &structured) != nil || !reflect.DeepEqual(fromText, structured) {
		t.Fatalf("run_python's text block %q and structured content %s differ", Clip(raw), Clip(data))
	}
	r := Response{Request: "MCP run_python", Status: http.StatusOK, Raw: raw}
	if res.IsError {
		r.Status = http.StatusBadRequest
	}
	if err := r.decodeBody(); err != nil {
		t.Fatalf("run_python's result %q is not a JSON object: %v", Clip(raw), err)
	}
	return r
}

// RunPython runs script through the run_python tool of the service's
// POST /mcp, as an agent would, in a session of its own, and decodes the
// result as ToolResponse does, with the header of the HTTP answer that
// carried it. It is Execute's counterpart: a test that runs a script
// through either gets the same Response for the same outcome. It fails t
// unless the answer's X-Execution-Id is the execution the result names.
func (s *Service) RunPython(t testing.TB, script string) Response {
	t.Helper()
	rec := &HeaderRecorder{}
	cs := ConnectMCPWith(t, s.URL, &http.Client{Transport: rec})
	defer cs.Close()
	res := CallRunPython(t, cs, map[string]string{"script": script})
	r := ToolResponse(t, res)
	r.Header = rec.Last()
	if id := r.Header.Get("X-Execution-Id"); id == "" || res.Meta[mcpserver.MetaExecutionID] != id {
		t.Errorf("run_python's answer has X-Execution-Id %q and names execution %v, want one ID", id, res.Meta[mcpserver.MetaExecutionID])
	}
	return r
}
