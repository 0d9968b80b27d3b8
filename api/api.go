// Package api is pyexec's wire contract: the JSON bodies of POST /execute
// (and of ExecuteEvent's message data, which carries the same request), the
// answers, the error types of failed answers with their HTTP statuses, and
// the OpenAPI document that describes them.
//
// The server decodes requests with its own strict decoder (it must tell an
// absent field from a zero one and keep numbers exact); these types are what
// clients encode, what tool schemas are generated from, and what answers are
// written as. Field order is the order of the JSON the service writes.
package api

import "encoding/json"

// Request is the body of POST /execute. Only Script is required; a request
// with only Script is answered exactly as by the original service.
type Request struct {
	// Script is the Python source. It must bind main at the top level.
	Script string `json:"script" jsonschema:"Python 3.11 source that defines main(); main's return value is the result"`
	// Input, when present, is passed to main as its one positional argument.
	// It is kept as raw JSON so that numbers arrive exactly.
	Input json.RawMessage `json:"input,omitempty" jsonschema:"any JSON value; when given, main is called as main(input)"`
	// Stdin is the script's standard input. Empty means none.
	Stdin string `json:"stdin,omitempty" jsonschema:"text fed to the script's standard input"`
	// Files are written into the execution's working directory before any
	// user code runs.
	Files []File `json:"files,omitempty" jsonschema:"files written into the working directory before the script runs"`
	// Limits may tighten the service's limits for this execution, never
	// loosen them.
	Limits *Limits `json:"limits,omitempty" jsonschema:"per-execution limits; may only tighten the service's caps"`
}

// File is an input file.
type File struct {
	// Path is relative to the working directory, e.g. "data/in.csv".
	Path string `json:"path" jsonschema:"relative path, e.g. data/in.csv; no .., not absolute"`
	// Content is the file's content, encoded as Encoding says.
	Content string `json:"content" jsonschema:"the file's content, as encoding says"`
	// Encoding is EncodingUTF8 (the default when empty) or EncodingBase64.
	Encoding string `json:"encoding,omitempty" jsonschema:"utf-8 (default) or base64"`
}

// Encodings of File and OutputFile contents.
const (
	EncodingUTF8   = "utf-8"
	EncodingBase64 = "base64"
)

// Limits tighten the service's caps for one execution. Zero means the
// service's cap.
type Limits struct {
	TimeoutSeconds float64 `json:"timeout_seconds,omitempty" jsonschema:"wall-clock limit in seconds, at most the service's cap"`
	MemoryMB       int     `json:"memory_mb,omitempty" jsonschema:"memory limit in MiB, at most the service's cap"`
}

// Success is the 200 answer.
type Success struct {
	Result json.RawMessage `json:"result"`
	Stdout string          `json:"stdout"`
	// Files are the regular files the script left under outputs/, sorted by
	// path; absent when there are none.
	Files []OutputFile `json:"files,omitempty"`
	// Display are the rich outputs (figures, tables, texts) in the order
	// produced; absent when there are none.
	Display []DisplayItem `json:"display,omitempty"`
}

// DisplayItem is one rich output: Type is its MIME type, "image/png"
// (Data is base64), "text/html" or "text/plain" (Data is the text).
type DisplayItem struct {
	Type string `json:"type"`
	Data string `json:"data"`
}

// OutputFile is a file the script left under outputs/.
type OutputFile struct {
	Path     string `json:"path"`
	Content  string `json:"content"`  // base64
	Encoding string `json:"encoding"` // always EncodingBase64
	Bytes    int    `json:"bytes"`    // decoded size
}

// Failure is every non-200 answer.
type Failure struct {
	Error     string `json:"error"`
	ErrorType string `json:"error_type"`
	Stdout    string `json:"stdout"`
	// Traceback holds the user's frames of an exception.
	Traceback string `json:"traceback,omitempty"`
	// SessionEnded: the failed cell ended its session (a timeout, the
	// memory limit, or its process exiting); later calls answer
	// session_not_found.
	SessionEnded bool `json:"session_ended,omitempty"`
}

// Outcome is what ExecuteEvent publishes to its results topic for one
// message: the execution's answer, in the shape of Success and Failure,
// plus the IDs that tie it to the message.
type Outcome struct {
	ExecutionID string `json:"execution_id"`
	MessageID   string `json:"message_id"`
	// ID is the caller's own "id" from the message data, if it had one.
	ID     string          `json:"id,omitempty"`
	Status string          `json:"status"` // OutcomeOK or OutcomeError
	Result json.RawMessage `json:"result,omitempty"`
	Stdout string          `json:"stdout"`
	// Files are Success's output files, when the script left some.
	Files []OutputFile `json:"files,omitempty"`
	// Display is Success's rich outputs, when the script displayed some.
	Display []DisplayItem `json:"display,omitempty"`
	// Error, ErrorType and Traceback are Failure's, set when Status is
	// OutcomeError.
	Error      string `json:"error,omitempty"`
	ErrorType  string `json:"error_type,omitempty"`
	Traceback  string `json:"traceback,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// Statuses of an Outcome.
const (
	OutcomeOK    = "ok"
	OutcomeError = "error"
)

// Headers of the answers.
const (
	// HeaderExecutionID names the execution on every answer; the same ID is
	// in the service's log entry.
	HeaderExecutionID = "X-Execution-Id"
)

// SessionRequest is the optional body of POST /sessions: files written into
// the session's working directory before its first cell, and limits for the
// whole session (MemoryMB holds for all its processes together,
// TimeoutSeconds is each cell's).
type SessionRequest struct {
	Files  []File  `json:"files,omitempty" jsonschema:"files written into the session's working directory"`
	Limits *Limits `json:"limits,omitempty" jsonschema:"the session's limits; may only tighten the service's caps"`
}

// Session is the 201 answer of POST /sessions.
type Session struct {
	// ID is the session's bearer secret: whoever holds it can run code in
	// the session.
	ID                 string `json:"session_id"`
	IdleTimeoutSeconds int    `json:"idle_timeout_seconds"`
	// ExpiresAt is when the session ends at the latest (RFC 3339).
	ExpiresAt string `json:"expires_at"`
}

// ValidSessionID tells whether id has the shape of a session ID: 22
// characters of URL-safe base64, the encoding of 128 random bits. One ID in
// 64 begins with "-", which a command line must not take for a flag.
func ValidSessionID(id string) bool {
	if len(id) != 22 {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Cell is the body of POST /sessions/{id}/execute: code run in the
// session's one global namespace. Only Limits.TimeoutSeconds may be set.
type Cell struct {
	Code   string  `json:"code" jsonschema:"Python source run in the session's namespace; the value of its last expression is the result"`
	Stdin  string  `json:"stdin,omitempty" jsonschema:"text fed to the cell's standard input"`
	Files  []File  `json:"files,omitempty" jsonschema:"files written into the session's working directory before the cell runs"`
	Limits *Limits `json:"limits,omitempty" jsonschema:"the cell's timeout_seconds; memory is the session's"`
}

// CellSuccess is the 200 answer of a cell: Success, with ResultFormat
// saying whether Result is the last expression's JSON value
// (ResultFormatJSON) or, for a value without a JSON form, its text form as
// a JSON string (ResultFormatText).
type CellSuccess struct {
	Result       json.RawMessage `json:"result"`
	ResultFormat string          `json:"result_format"`
	Stdout       string          `json:"stdout"`
	Files        []OutputFile    `json:"files,omitempty"`
	Display      []DisplayItem   `json:"display,omitempty"`
}

// The forms of a cell's result.
const (
	ResultFormatJSON = "json"
	ResultFormatText = "text"
)

// SessionState is the answer of GET /sessions/{id}.
type SessionState struct {
	ID                 string `json:"session_id"`
	State              string `json:"state"` // SessionIdle or SessionRunning
	CreatedAt          string `json:"created_at"`
	LastUsedAt         string `json:"last_used_at"`
	ExpiresAt          string `json:"expires_at"`
	IdleTimeoutSeconds int    `json:"idle_timeout_seconds"`
	// MemoryBytes is the memory the session's processes use together.
	MemoryBytes int64 `json:"memory_bytes"`
	Cells       int   `json:"cells"`
}

// States of a session.
const (
	SessionIdle    = "idle"
	SessionRunning = "running"
)
