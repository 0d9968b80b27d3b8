package executor

import (
	"context"
	"unicode/utf8"

	"github.com/pyexec/pyexec/executor/internal/jail"
)

// SessionRequest is what a session starts with: files written into its
// working directory before its first cell, and limits that tighten the
// service's for the whole session. MemoryBytes holds for all the session's
// processes together; Timeout is each cell's unless the cell sets its own.
type SessionRequest = jail.SessionRequest

// Cell is code to run as a session's next cell, in the session's one
// global namespace, with what it brings. Timeout tightens the session's
// per-cell timeout; zero keeps it.
type Cell = jail.Cell

// CellResult is one cell's answer: Result as for a script, and Text when the
// last expression had no JSON form and Value is its text form as a string.
type CellResult = jail.CellResult

// ErrSessionsUnsupported is StartSession in a mode that holds no sessions:
// pool and cold mode start a fresh interpreter per execution, with nothing
// to keep.
var ErrSessionsUnsupported = jail.ErrSessionsUnsupported

// Session is a live session: a process kept between its cells, which run
// one at a time in its one namespace, frozen between them.
type Session struct {
	s    *jail.Session
	cfg  Config
	caps Limits
}

// StartSession starts a session with the service's limits, tightened by
// req's, and writes req's files into its working directory.
func (e *Executor) StartSession(ctx context.Context, req SessionRequest) (*Session, error) {
	caps := e.Limits()
	if err := checkLimits(req.Timeout, req.MemoryBytes, caps); err != nil {
		return nil, err
	}
	if err := checkFiles(req.Files, caps); err != nil {
		return nil, err
	}
	s, err := e.eng.StartSession(ctx, req)
	if err != nil {
		return nil, err
	}
	return &Session{s: s, cfg: e.cfg, caps: caps}, nil
}

// Run runs cell as the session's next cell. A cell past its timeout, or
// killed at the memory limit, ends the session: its answer says so, and
// Ended returns why from then on.
func (s *Session) Run(ctx context.Context, cell Cell) (CellResult, error) {
	if err := checkSource(cell.Code, "Code", s.cfg.MaxScriptBytes); err != nil {
		return CellResult{}, err
	}
	if err := checkLimits(cell.Timeout, 0, s.caps); err != nil {
		return CellResult{}, err
	}
	if err := checkFiles(cell.Files, s.caps); err != nil {
		return CellResult{}, err
	}
	if !utf8.ValidString(cell.Stdin) {
		return CellResult{}, invalid("'stdin' must be valid UTF-8")
	}
	return s.s.Run(ctx, cell)
}

// Ended is nil while the session lives, and why it ended once it has.
func (s *Session) Ended() error { return s.s.Ended() }

// MemoryBytes is the memory the session's processes use together.
func (s *Session) MemoryBytes() int64 { return s.s.MemoryBytes() }

// End ends the session: its processes are killed, a running cell ends, and
// its cgroup is removed.
func (s *Session) End() error { return s.s.End() }
