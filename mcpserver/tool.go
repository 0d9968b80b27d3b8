package mcpserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/internal/size"
)

// ToolName is the name of the one tool the server offers.
const ToolName = "run_python"

// MetaExecutionID is the key, in a result's _meta and in a JSON-RPC error's
// data, of the execution ID that the service's log entry carries too.
const MetaExecutionID = "pyexec/execution_id"

// JSON-RPC error codes of calls that ran no script.
const (
	// CodeUnavailable answers busy and sandbox_unavailable: nothing is wrong
	// with the call, and the same call may succeed a few seconds later. It is
	// the first of JSON-RPC's implementation-defined server errors.
	CodeUnavailable = -32000
	// CodeInternal answers internal: the service failed.
	CodeInternal = jsonrpc.CodeInternalError
)

// addRunPython registers run_python on server.
//
// It uses the SDK's untyped AddTool on purpose. The typed mcp.AddTool
// validates arguments by decoding them into map[string]any and encoding them
// again, and does the same with structured output: every number passes
// through a float64, and an integer like 2**70 in input or in main's result
// would come out rounded. Here arguments reach the RunFunc as the client's
// bytes, and answers go out as the service's bytes.
func addRunPython(server *mcp.Server, run RunFunc, opts Options) {
	tool := &mcp.Tool{
		Name:         ToolName,
		Title:        "Run Python",
		Description:  describe(opts),
		InputSchema:  inputSchema(opts),
		OutputSchema: outputSchema(),
		Annotations: &mcp.ToolAnnotations{
			Title: "Run Python",
			// The script runs in a throwaway sandbox: it cannot change
			// anything outside it, and nothing it does persists.
			ReadOnlyHint:    true,
			DestructiveHint: new(false),
			// No network: the tool cannot reach the outside world.
			OpenWorldHint: new(false),
		},
	}
	server.AddTool(tool, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		call := Call{Arguments: req.Params.Arguments}
		if len(bytes.TrimSpace(call.Arguments)) == 0 {
			// "arguments" is optional in MCP; absent means no arguments,
			// which the service answers as a request without a script.
			call.Arguments = json.RawMessage("{}")
		}
		if req.Extra != nil {
			call.Header = req.Extra.Header
		}
		ctx, cancel := untilClientGone(ctx)
		defer cancel()
		return toolResult(run(ctx, call))
	})
}

// toolResult turns the answer into the tool's result or a JSON-RPC error,
// by the failure's error type.
func toolResult(a Answer) (*mcp.CallToolResult, error) {
	if a.Failure != nil {
		return failureResult(a.ExecutionID, a.Failure, a.Failure)
	}
	if a.Success == nil {
		return nil, brokenContract(a.ExecutionID)
	}
	brief := *a.Success
	brief.Display = nil
	return successResult(a.ExecutionID, a.Success, &brief, a.Success.Display), nil
}

// brokenContract answers an answer that is neither a success nor a
// failure: the service broke its own contract.
func brokenContract(executionID string) error {
	return protocolError(CodeInternal, fmt.Sprintf("Internal error (execution %s)", executionID), executionID, string(api.ErrorTypeInternal))
}

// failureResult turns a failure into the tool's result or a JSON-RPC
// error, by its error type; body is what a result holds (f, or f with more
// fields beside it).
func failureResult(executionID string, f *api.Failure, body any) (*mcp.CallToolResult, error) {
	failed := api.ErrorType(f.ErrorType)
	switch {
	case failed.Retryable():
		// Nothing ran and the service may run it later.
		return nil, protocolError(CodeUnavailable, f.Error+"; retry the call in a few seconds", executionID, f.ErrorType)
	case failed.Status() >= 400 && failed.Status() < 500:
		// The request or the script was at fault: a result the agent
		// reads, with the traceback it needs to fix the script.
		return jsonResult(executionID, body, true), nil
	default:
		return nil, protocolError(CodeInternal, f.Error, executionID, f.ErrorType)
	}
}

// jsonResult is a result whose structured content and one text block hold
// body as the HTTP API writes it.
func jsonResult(executionID string, body any, isError bool) *mcp.CallToolResult {
	text := encodeJSON(body)
	res := &mcp.CallToolResult{
		Content: []mcp.Content{&mcp.TextContent{Text: string(text)}},
		// A json.RawMessage goes out as it is: the result's numbers stay
		// exactly as main returned them.
		StructuredContent: json.RawMessage(text),
		IsError:           isError,
	}
	// Calls refused before they reached the service have no execution.
	if executionID != "" {
		res.Meta = mcp.Meta{MetaExecutionID: executionID}
	}
	return res
}

// successResult is jsonResult of a success body, with its rich outputs
// (display) as content blocks of their own as well: each PNG an image the
// client can show (and a model can see), each text a text block. The JSON
// text block holds brief, the body without its display, so a model does
// not read a PNG as base64; the structured content has it whole.
func successResult(executionID string, body, brief any, display []api.DisplayItem) *mcp.CallToolResult {
	res := jsonResult(executionID, body, false)
	if len(display) == 0 {
		return res
	}
	res.Content = []mcp.Content{&mcp.TextContent{Text: string(encodeJSON(brief))}}
	for _, d := range display {
		switch d.Type {
		case "image/png":
			// The SDK writes Data as base64: it takes the decoded bytes.
			png, err := base64.StdEncoding.DecodeString(d.Data)
			if err != nil {
				continue // the service encoded it; it cannot be invalid
			}
			res.Content = append(res.Content, &mcp.ImageContent{Data: png, MIMEType: d.Type})
		case "text/plain":
			res.Content = append(res.Content, &mcp.TextContent{Text: d.Data})
		}
	}
	return res
}

// protocolError is a JSON-RPC error whose data names the error type and the
// execution.
func protocolError(code int64, message, executionID, errorType string) *jsonrpc.Error {
	return &jsonrpc.Error{
		Code:    code,
		Message: message,
		Data: encodeJSON(struct {
			ErrorType   string `json:"error_type"`
			ExecutionID string `json:"execution_id,omitempty"`
		}{errorType, executionID}),
	}
}

// encodeJSON encodes v without escaping <, > and & (tracebacks and stdout
// are read by models and people, not embedded in HTML).
func encodeJSON(v any) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only api types and strings get here, whose encoding cannot fail
		// unless the service handed over invalid JSON as a result.
		panic(fmt.Sprintf("mcpserver: encoding an answer: %v", err))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// anyJSON describes a json.RawMessage field as any JSON value. Left to
// itself, jsonschema.For would describe the []byte under it: an array of
// integers.
var anyJSON = map[reflect.Type]*jsonschema.Schema{reflect.TypeFor[json.RawMessage](): {}}

// schemaFor is T's schema, a raw JSON value in it any JSON value. T is
// this package's choice, so a T without a schema is a bug: it panics.
func schemaFor[T any]() *jsonschema.Schema {
	s, err := jsonschema.For[T](&jsonschema.ForOptions{TypeSchemas: anyJSON})
	if err != nil {
		panic(fmt.Sprintf("mcpserver: schema of %v: %v", reflect.TypeFor[T](), err))
	}
	return s
}

// inputSchema is api.Request's schema, with the encodings a file may have
// and the service's caps as the maxima of the per-execution limits.
func inputSchema(opts Options) *jsonschema.Schema {
	s := schemaFor[api.Request]()
	s.Properties["files"].Items.Properties["encoding"].Enum = []any{api.EncodingUTF8, api.EncodingBase64}
	limits := s.Properties["limits"].Properties
	limits["timeout_seconds"].ExclusiveMinimum = new(0.0)
	limits["timeout_seconds"].Maximum = new(opts.Timeout.Seconds())
	limits["memory_mb"].Minimum = new(1.0)
	limits["memory_mb"].Maximum = new(float64(opts.MemoryMB))
	return s
}

// outputSchema is api.Success's schema: the structured content of a
// successful call.
func outputSchema() *jsonschema.Schema {
	s := schemaFor[api.Success]()
	s.Properties["result"].Description = "main()'s return value: any JSON value"
	s.Properties["stdout"].Description = "what the script printed, trailing newlines removed"
	s.Properties["files"].Description = "regular files the script left under outputs/, sorted by path, base64-encoded"
	return s
}

// describe is the tool's description: what an agent needs to know to write a
// script that works the first time.
func describe(opts Options) string {
	timeout := strconv.FormatFloat(opts.Timeout.Seconds(), 'f', -1, 64)
	var b strings.Builder
	b.WriteString("Run a Python 3.11 script in an isolated sandbox and return what its main() returned.\n\n")
	b.WriteString("The script must define main() at the top level. It is called once (awaited if async) and its return value comes back as JSON in `result`; everything printed comes back in `stdout`. When `input` is given (any JSON value), main is called as main(input).\n\n")
	b.WriteString("Available: the standard library, pandas and numpy. No network, no access to the host; /tmp is writable and nothing persists between calls.\n\n")
	b.WriteString("Files: each entry of `files` is written into the working directory before the script runs (e.g. path `data/in.csv`, read with pd.read_csv('data/in.csv')). Regular files the script leaves under `outputs/` (e.g. df.to_csv('outputs/out.csv')) come back base64-encoded in the result's `files`.\n\n")
	fmt.Fprintf(&b, "Limits: %s seconds of wall time, %d MiB of memory, %s per request. `limits` may tighten the time and memory limits, never raise them.\n\n",
		timeout, opts.MemoryMB, size.Text(opts.MaxRequestBytes, ""))
	b.WriteString("main() must return JSON: dicts, lists, strings, numbers, booleans, None (tuples and numpy values are converted). Convert a DataFrame with df.to_dict(orient=\"records\"); NaN and Infinity are refused.\n\n")
	b.WriteString("If the script fails, the result has isError set and holds `error`, `error_type` (syntax_error, exception, timeout, memory_limit, output_limit, ...), `traceback` and `stdout`: fix the script and call again. If the service is busy, the call fails with an error that says to retry.")
	return b.String()
}
