package executor

import "github.com/pyexec/pyexec/executor/internal/jail"

// Session is a live session: a process kept between its cells, which run
// one at a time in its one namespace (Run, End).
type Session = jail.Session

// CellResult is one cell's answer: Result as for a script, and Text when the
// last expression had no JSON form and Value is its text form as a string.
type CellResult = jail.CellResult

// ErrSessionsUnsupported is StartSession in a mode that holds no sessions:
// pool and cold mode start a fresh interpreter per execution, with nothing
// to keep.
var ErrSessionsUnsupported = jail.ErrSessionsUnsupported

// StartSession starts a session with the service's limits, memoryBytes of
// memory when it is not zero.
func (e *Executor) StartSession(memoryBytes int64) (*Session, error) {
	return e.eng.StartSession(memoryBytes)
}
