package executor

import "time"

// SessionRequest is what a session starts with: files written into its
// working directory before its first cell, and limits that tighten the
// service's for the whole session. MemoryBytes holds for all the session's
// processes together; Timeout is each cell's unless the cell sets its own.
type SessionRequest struct {
	Files       []File
	MemoryBytes int64
	Timeout     time.Duration
}

// Cell is code to run as a session's next cell, in the session's one
// global namespace, with what it brings. Timeout tightens the session's
// per-cell timeout; zero keeps it.
type Cell struct {
	Code    string
	Stdin   string
	Files   []File
	Timeout time.Duration
}
