package server

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/pyexec/pyexec/execlog"
	"github.com/pyexec/pyexec/mcpserver"
)

// mcpPath is where Execute serves its MCP server.
const mcpPath = "/mcp"

// newMCPHandler builds the handler of POST /mcp: the run_python tool,
// described with the executor's limits, run by runTool, and the tools of
// Python sessions, run by sessionTools. The session tools are offered even
// when the service holds no sessions (no registry, or a mode without
// them): a call then answers why, as the session paths do.
func (s *Server) newMCPHandler() http.Handler {
	caps := s.exec.Limits()
	return mcpserver.New(s.runTool, mcpserver.Options{
		Timeout:         caps.Timeout,
		MemoryMB:        int(caps.MemoryBytes >> 20),
		MaxRequestBytes: s.cfg.requestCap(),
		Sessions:        sessionTools{s},
	})
}

// serveMCP hands a request to the MCP handler, with the execution ID serve
// gave it for the tool call it carries.
func (s *Server) serveMCP(w http.ResponseWriter, r *http.Request, id string) {
	ctx := context.WithValue(r.Context(), executionIDKey{}, &requestExecutionID{id: id})
	s.mcp.ServeHTTP(w, r.WithContext(ctx))
}

// runTool runs one run_python call as POST /execute runs its body: the
// call's arguments go through the same decoder, then through run, so the
// queue, the limits, the error mapping and the one log entry are
// /execute's. Only the log's function differs: "mcp".
func (s *Server) runTool(ctx context.Context, call mcpserver.Call) mcpserver.Answer {
	x := execution{id: executionIDOf(ctx), arrived: time.Now()}
	x.req, x.err = s.decoder().decode(call.Arguments, requestBody)
	x.trace, x.span = execlog.TraceFromHeaders(call.Header, s.log.ProjectID())
	o := s.run(ctx, viaMCP, x)
	a := mcpserver.Answer{ExecutionID: x.id}
	if o.err != nil {
		f := o.answered()
		a.Failure = &f.body
		return a
	}
	success := o.success()
	a.Success = &success
	return a
}

// executionIDKey is the context key of an MCP request's requestExecutionID.
type executionIDKey struct{}

// requestExecutionID is the ID in an MCP request's X-Execution-Id header,
// which the first tool call the request carries takes as its own, so that
// the header, the result's _meta and the log entry name the same
// execution. Protocol versions before 2025-06-18 allow a batch of calls in
// one request; each further call gets an ID of its own.
type requestExecutionID struct {
	id    string
	taken atomic.Bool
}

// executionIDOf is the ID of the tool call running with ctx.
func executionIDOf(ctx context.Context) string {
	if r, ok := ctx.Value(executionIDKey{}).(*requestExecutionID); ok && r.taken.CompareAndSwap(false, true) {
		return r.id
	}
	return uuid.NewString()
}
