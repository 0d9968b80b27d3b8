package mcpserver

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/internal/size"
)

// sessionIDSchema describes a session's ID.
func sessionIDSchema(description string) *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Description: description}
}

// cellInputSchema is the body of POST /sessions/{id}/execute and
// session_id. The files and the limit are run_python's, so that they read
// alike; a cell's limits take only the time (a session's memory is set when
// it starts).
func cellInputSchema(opts Options) *jsonschema.Schema {
	script := inputSchema(opts)
	limits := script.Properties["limits"]
	delete(limits.Properties, "memory_mb")
	return &jsonschema.Schema{
		Type:     "object",
		Required: []string{"code"},
		Properties: map[string]*jsonschema.Schema{
			"session_id": sessionIDSchema("the session to run in, as an earlier call answered it; absent: start a new session"),
			"code":       {Type: "string", Description: "Python statements; the value of the last line, if it is an expression, is the result"},
			"stdin":      {Type: "string", Description: "what the cell reads from sys.stdin"},
			"files":      script.Properties["files"],
			"limits":     limits,
		},
	}
}

// cellOutputSchema is cellSuccess's schema.
func cellOutputSchema() *jsonschema.Schema {
	s := schemaFor[cellSuccess]()
	s.Properties["session_id"].Description = "the session the cell ran in: pass it to the next call"
	s.Properties["result"].Description = "the value of the cell's last expression (null when it ends with a statement)"
	s.Properties["result_format"].Enum = []any{api.ResultFormatJSON, api.ResultFormatText}
	s.Properties["result_format"].Description = "json: result is the value; text: the value has no JSON form and result is its repr() as a string"
	s.Properties["stdout"].Description = "what the cell printed, trailing newlines removed"
	s.Properties["files"].Description = "regular files the cell left under outputs/, sorted by path, base64-encoded"
	return s
}

// endInputSchema is end_python_session's arguments.
func endInputSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Type:       "object",
		Required:   []string{"session_id"},
		Properties: map[string]*jsonschema.Schema{"session_id": sessionIDSchema("the session to end, as run_python_cell answered it")},
	}
}

// endOutputSchema is sessionEnded's schema.
func endOutputSchema() *jsonschema.Schema {
	return schemaFor[sessionEnded]()
}

// describeCell is run_python_cell's description.
func describeCell(opts Options) string {
	timeout := strconv.FormatFloat(opts.Timeout.Seconds(), 'f', -1, 64)
	var b strings.Builder
	b.WriteString("Run Python 3.11 code as a cell of a session, like a notebook: variables, imports and files persist from one call to the next, so data loaded once can be queried by later calls.\n\n")
	b.WriteString("The first call, without `session_id`, starts a session and answers its `session_id`; pass it to every later call to run in the same interpreter. `result` is the value of the cell's last line when it is an expression (like a notebook's Out), else null; `result_format` is \"json\" when `result` is that value, \"text\" when the value has no JSON form (a DataFrame, an object) and `result` holds its repr(). Everything printed comes back in `stdout`.\n\n")
	b.WriteString("Available: the standard library, pandas and numpy. No network, no access to the host. `files` are written into the session's working directory before the cell runs; regular files a cell leaves under `outputs/` come back base64-encoded in `files`.\n\n")
	fmt.Fprintf(&b, "Limits: %s seconds of wall time per cell (`limits.timeout_seconds` may lower it), %d MiB of memory for the session, %s per request. A session ends after an idle while, or with end_python_session.\n\n",
		timeout, opts.MemoryMB, size.Text(opts.MaxRequestBytes, ""))
	b.WriteString("If the cell raises, the result has isError set and holds `error`, `error_type`, `traceback` and `stdout`; the session lives on, with what ran before the error. A timeout, the memory limit or exiting ends the session (`session_ended`: true); error_type session_not_found means the session is gone: call again without `session_id` to start a new one, and load the data again. session_busy: a cell is still running in the session. If the service is busy, the call fails with an error that says to retry.")
	return b.String()
}
