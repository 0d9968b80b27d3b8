// Package mcpserver serves pyexec as a Model Context Protocol server over
// Streamable HTTP, built with the official Go SDK: the tool run_python, and,
// when the service holds sessions, run_python_cell and end_python_session
// (cell.go), whose state lasts from one call to the next.
//
// The transport is stateless: every HTTP request stands alone (no
// Mcp-Session-Id, nothing kept between requests), so any instance can answer
// any request and Cloud Run may scale or restart instances freely. A Python
// session is named by the ID its tools answer, not by the transport.
// Answers are application/json, not event streams: a tool call has exactly
// one answer and sends no notifications.
//
// The package knows nothing of the executor. It hands each tool call's
// arguments (the body POST /execute takes) to a RunFunc and turns the answer
// the HTTP API would give into an MCP result:
//
//   - 200: a result with structuredContent {result, stdout, files?} and a text
//     block holding the same JSON;
//   - 4xx (the request or the script failed): a result with isError set and
//     structuredContent {error, error_type, traceback?, stdout}, so that an
//     agent sees the failure and can correct its script;
//   - 5xx (busy, sandbox_unavailable, internal): a JSON-RPC error, since no
//     script ran; for 503 its message tells the agent to retry.
//
// HTTP: only POST is served (the stateless transport has no use for GET's
// event stream or DELETE's session end; both answer 405 with Allow: POST).
// Before the SDK sees a request, the body is capped at
// Options.MaxRequestBytes (413) and must be JSON (400, parse error). Every
// refusal, the SDK's own included, is a JSON-RPC error whose data holds the
// service's error_type.
//
// The handler does not judge where a request comes from: its caller puts it
// behind the service's guard against cross-origin requests and foreign Host
// names (package server), the one policy of every path, and refuses with
// WriteRefusal.
package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyexec/pyexec/api"
)

// Call is one run_python call, as the transport needs it.
type Call struct {
	// Arguments are the tool call's arguments exactly as the client sent
	// them: a JSON object with the fields of POST /execute's body
	// (api.Request). They are neither decoded nor validated here, so the
	// service's own decoder judges them as it judges /execute's body, and
	// numbers in input arrive exactly as written.
	Arguments json.RawMessage
	// Header is the HTTP request's header, for the trace context of the
	// execution's log entry.
	Header http.Header
}

// Answer is what running one request gave: a success or a failure, each
// as the HTTP API's body. A failure's error type says what it means to
// the agent (api.ErrorType).
type Answer struct {
	// ExecutionID names the execution, as the X-Execution-Id header does.
	ExecutionID string
	// Success is set when the script ran and main returned; Failure
	// otherwise.
	Success *api.Success
	Failure *api.Failure
}

// RunFunc runs one call through the service (queue, limits, executor, one
// log entry) and returns its answer. ctx ends when the client goes away.
type RunFunc func(ctx context.Context, call Call) Answer

// Options are the limits the tool describes to agents and the caps the
// handler enforces.
type Options struct {
	// Timeout is the service's wall-clock limit per execution.
	Timeout time.Duration
	// MemoryMB is the service's memory limit per execution, in MiB.
	MemoryMB int
	// MaxRequestBytes caps the body of one HTTP request to the MCP endpoint;
	// a larger one is answered 413 without reading past the cap.
	MaxRequestBytes int64
	// Sessions, when set, runs the tools of Python sessions
	// (run_python_cell and end_python_session); nil offers run_python only.
	Sessions Sessions
	// Logger receives the SDK's own diagnostics (malformed messages and the
	// like); nil discards them. Executions are logged by the RunFunc.
	Logger *slog.Logger
}

// New returns the handler of the MCP endpoint. It panics when run is nil or
// a limit in opts is not positive: both are wiring mistakes.
func New(run RunFunc, opts Options) http.Handler {
	if run == nil {
		panic("mcpserver.New: nil RunFunc")
	}
	if opts.Timeout <= 0 || opts.MemoryMB <= 0 || opts.MaxRequestBytes <= 0 {
		panic(fmt.Sprintf("mcpserver.New: limits must be positive, got timeout %v, memory %d MiB, request %d bytes",
			opts.Timeout, opts.MemoryMB, opts.MaxRequestBytes))
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "pyexec", Title: "pyexec", Version: version()}, &mcp.ServerOptions{
		Logger: opts.Logger, // nil: the SDK logs nothing
		// Tools only. A stateless server cannot notify a client that its
		// tool list changed, and it never does change.
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}},
	})
	addRunPython(server, run, opts)
	if opts.Sessions != nil {
		addSessionTools(server, opts.Sessions, opts)
	}

	sdk := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{
		Stateless:    true,
		JSONResponse: true,
		Logger:       opts.Logger,
		// The body is already capped by capBody; the same cap here keeps the
		// SDK from ever falling back to its own default.
		MaxRequestBodyBytes: opts.MaxRequestBytes,
		// An execution whose client has gone away is cancelled, as on
		// POST /execute. This covers protocol 2026-07-28 and later;
		// untilClientGone covers the earlier versions.
		PropagateRequestCancellation: true,
		// The service's own guard decides which Host and Origin may reach
		// the endpoint, for every path alike and by the Host itself (the
		// SDK's check looks at the connection's address, which is not
		// loopback inside a container with a published port).
		DisableLocalhostProtection: true,
	})

	return postOnly(readMessage(opts.MaxRequestBytes, withRequestContext(sdk)))
}

// version is the module version the binary was built from, for serverInfo.
func version() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}
