package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/pyexec/pyexec/api"
)

// The forms of a cell's value, as CellResult.ResultFormat holds them.
const (
	// ResultFormatJSON: Value is the last expression's value as JSON.
	ResultFormatJSON = api.ResultFormatJSON
	// ResultFormatText: the value has no JSON form (a DataFrame, say);
	// Value is a JSON string holding its repr().
	ResultFormatText = api.ResultFormatText
)

// CellOption configures one cell; pass them to Session.Run.
type CellOption func(*api.Cell)

// WithStdin is the cell's standard input; without it, input() raises
// EOFError.
func WithStdin(text string) CellOption {
	return func(c *api.Cell) { c.Stdin = text }
}

// WithFiles writes files into the session's working directory before the
// cell runs; they stay there for later cells.
func WithFiles(files ...File) CellOption {
	return func(c *api.Cell) {
		for _, f := range files {
			c.Files = append(c.Files, f.wire())
		}
	}
}

// WithCellTimeout tightens the cell's wall-clock limit, which is otherwise
// the session's. A cell that runs out of time ends its session.
func WithCellTimeout(d time.Duration) CellOption {
	return func(c *api.Cell) {
		if d > 0 {
			c.Limits = &api.Limits{TimeoutSeconds: d.Seconds()}
		}
	}
}

// CellResult is a cell that ran to its end.
type CellResult struct {
	// Value is the value of the cell's last expression, as the JSON the
	// service sent; null when the cell ends with a statement. When
	// ResultFormat is ResultFormatText it is a JSON string: Text returns
	// it decoded.
	Value json.RawMessage
	// ResultFormat is ResultFormatJSON or ResultFormatText.
	ResultFormat string
	// Stdout is everything the cell printed, trailing newlines removed.
	Stdout string
	// Files are the regular files under outputs/ after the cell, sorted by
	// path.
	Files []OutputFile
	// Display are the rich outputs the cell displayed, in the order
	// produced.
	Display []Display
	// ExecutionID names the cell in the service's log.
	ExecutionID string
	// Duration is the time Run took, measured by the client.
	Duration time.Duration
	// Body is the answer's body exactly as received.
	Body []byte
}

// IsText reports whether the value had no JSON form and Value holds its
// text form.
func (r *CellResult) IsText() bool { return r.ResultFormat == ResultFormatText }

// Text is the value as a person reads it: the text form of a value without
// a JSON form, else the JSON as it came.
func (r *CellResult) Text() string {
	var s string
	if r.IsText() && json.Unmarshal(r.Value, &s) == nil {
		return s
	}
	return string(r.Value)
}

// Decode unmarshals the cell's value into v, as json.Unmarshal does.
func (r *CellResult) Decode(v any) error {
	if err := json.Unmarshal(r.Value, v); err != nil {
		return fmt.Errorf("pyexec: decoding result: %w", err)
	}
	return nil
}

// Run runs code in the session (POST /sessions/{id}/execute): in the
// session's global namespace, so that it sees what earlier cells bound and
// binds names for later ones. The value of its last expression is the
// result.
//
// A cell that fails is an *Error; an exception (ErrorTypeException) keeps
// the session, while Error.SessionEnded reports a failure that ended it.
// A cell is not idempotent, so Run sends it again only after the answers
// of pyexec itself that say nothing ran, busy and sandbox_unavailable, as
// Execute does; not after a bare 429 or 503 of a proxy, which may come
// after the cell reached the service, nor after session_busy, which means
// another cell of the session is running.
func (s *Session) Run(ctx context.Context, code string, opts ...CellOption) (*CellResult, error) {
	start := time.Now()
	cell := api.Cell{Code: code}
	for _, opt := range opts {
		opt(&cell)
	}
	body, err := json.Marshal(cell)
	if err != nil {
		return nil, fmt.Errorf("pyexec: encoding request: %w", err)
	}
	res, err := call(ctx, s.c, s.http, nothingRan, http.MethodPost, s.url+"/execute", body, readCellAnswer)
	if err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	return res, nil
}

// nothingRan reports whether pyexec itself said that it ran nothing, and
// the same cell may be sent again.
func nothingRan(e *Error) bool {
	return e.Type != "" && api.ErrorType(e.Type).Retryable()
}

// readCellAnswer turns an answer of a cell into a CellResult or an *Error.
func readCellAnswer(resp *http.Response, raw []byte) (*CellResult, error) {
	if e := failed(resp, raw); e != nil {
		return nil, e
	}
	var s api.CellSuccess
	if json.Unmarshal(raw, &s) != nil || s.Result == nil ||
		(s.ResultFormat != ResultFormatJSON && s.ResultFormat != ResultFormatText) {
		return nil, notPyexec(resp, raw)
	}
	files, shown, err := readOutputs(resp, raw, s.Files, s.Display)
	if err != nil {
		return nil, err
	}
	return &CellResult{Value: s.Result, ResultFormat: s.ResultFormat, Stdout: s.Stdout, Files: files, Display: shown,
		ExecutionID: resp.Header.Get(api.HeaderExecutionID), Body: raw}, nil
}
