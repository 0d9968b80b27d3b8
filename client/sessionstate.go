package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/pyexec/pyexec/api"
)

// The states of a session, as SessionState.State holds them.
const (
	SessionIdle    = api.SessionIdle    // waiting for a cell
	SessionRunning = api.SessionRunning // running a cell
)

// SessionState is what the service knows of a session.
type SessionState struct {
	// ID is the session's ID.
	ID string
	// State is SessionIdle or SessionRunning.
	State string
	// CreatedAt, LastUsedAt and ExpiresAt are when the session started,
	// when it last ran a cell (or started), and when it ends at the latest.
	CreatedAt, LastUsedAt, ExpiresAt time.Time
	// IdleTimeout is how long the service keeps the session without a call.
	IdleTimeout time.Duration
	// MemoryBytes is the memory the session's processes use together.
	MemoryBytes int64
	// Cells is how many cells the session has run.
	Cells int
	// Body is the answer's body exactly as received.
	Body []byte
}

// State asks the service for the session's state (GET /sessions/{id}).
// An ended session is an *Error of ErrorTypeSessionNotFound.
func (s *Session) State(ctx context.Context) (*SessionState, error) {
	return call(ctx, s.c, s.http, (*Error).retryable, http.MethodGet, s.url, nil, readState)
}

// readState turns an answer of GET /sessions/{id} into a SessionState or
// an *Error.
func readState(resp *http.Response, raw []byte) (*SessionState, error) {
	if e := failed(resp, raw); e != nil {
		return nil, e
	}
	var w api.SessionState
	if json.Unmarshal(raw, &w) != nil || w.ID == "" {
		return nil, notPyexec(resp, raw)
	}
	st := &SessionState{ID: w.ID, State: w.State, IdleTimeout: time.Duration(w.IdleTimeoutSeconds) * time.Second,
		MemoryBytes: w.MemoryBytes, Cells: w.Cells, Body: raw}
	for _, t := range []struct {
		name string
		text string
		into *time.Time
	}{{"created_at", w.CreatedAt, &st.CreatedAt}, {"last_used_at", w.LastUsedAt, &st.LastUsedAt}, {"expires_at", w.ExpiresAt, &st.ExpiresAt}} {
		var err error
		if *t.into, err = time.Parse(time.RFC3339, t.text); err != nil {
			return nil, unreadable(resp, raw, fmt.Sprintf("%s %q is not an RFC 3339 time", t.name, t.text))
		}
	}
	return st, nil
}
