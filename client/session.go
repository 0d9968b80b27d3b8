package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"time"

	"github.com/pyexec/pyexec/api"
)

// closeTimeout bounds the DELETE sent when NewSession's context is done:
// it runs in the background, after the caller has moved on.
const closeTimeout = 10 * time.Second

// Session is a Python interpreter on the service whose global namespace
// lives from cell to cell: a DataFrame a cell builds is there for the next
// one. Its methods are safe for concurrent use, but the service runs one
// cell of a session at a time and answers ErrorTypeSessionBusy to a second.
//
// A session holds the cookies the service's answers set and sends them
// back on its later calls: Cloud Run's session affinity routes a call by
// its cookie to the instance that holds the session. The cookies go to the
// Client's own cookie jar when its http.Client (WithHTTPClient) has one,
// else to a jar of the session's own.
type Session struct {
	// ID names the session on the service. Whoever holds it can run code
	// in the session: keep it as secret as the data the session holds.
	ID string
	// ExpiresAt is when the service ends the session at the latest; zero
	// for a session from AttachSession.
	ExpiresAt time.Time
	// IdleTimeout is how long the service keeps the session without a
	// call; zero for a session from AttachSession.
	IdleTimeout time.Duration

	c    *Client
	http *http.Client // c's, with a cookie jar
	url  string       // base + "/sessions/" + ID
	stop func() bool  // unties the session from NewSession's ctx; nil when not tied
}

// SessionOption configures a session; pass them to NewSession.
type SessionOption func(*api.SessionRequest)

// WithSessionFiles writes files into the session's working directory
// before its first cell.
func WithSessionFiles(files ...File) SessionOption {
	return func(r *api.SessionRequest) {
		for _, f := range files {
			r.Files = append(r.Files, f.wire())
		}
	}
}

// WithSessionLimits tightens the service's limits for the session:
// MemoryMB holds for all its processes together, Timeout is each cell's
// (WithCellTimeout tightens it for one cell).
func WithSessionLimits(l Limits) SessionOption {
	return func(r *api.SessionRequest) {
		if l != (Limits{}) {
			r.Limits = &api.Limits{TimeoutSeconds: l.Timeout.Seconds(), MemoryMB: l.MemoryMB}
		}
	}
}

// NewSession starts a session on the service (POST /sessions).
//
// The session lives until Close, until it has been idle for IdleTimeout,
// until ExpiresAt, or until ctx is done, whichever comes first: when ctx is
// done, the session is deleted in the background (within 10 seconds), so
// a caller who forgets Close leaks nothing on the service. Pass a context
// that lives as long as the session should, or call Detach to keep the
// session beyond ctx.
//
// Answers that say no session was started (busy, when the service holds
// as many sessions as it may, and sandbox_unavailable) are retried as
// Execute retries them.
func (c *Client) NewSession(ctx context.Context, opts ...SessionOption) (*Session, error) {
	var req api.SessionRequest
	for _, opt := range opts {
		opt(&req)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("pyexec: encoding request: %w", err)
	}
	s := c.session("")
	var started api.Session
	err = c.retrying(ctx, (*Error).retryable, func() error {
		resp, raw, err := c.send(ctx, s.http, http.MethodPost, c.base+"/sessions", body)
		if err != nil {
			return err
		}
		if e := failed(resp, raw); e != nil {
			return e
		}
		if json.Unmarshal(raw, &started) != nil || started.ID == "" {
			return notPyexec(resp, raw)
		}
		if s.ExpiresAt, err = time.Parse(time.RFC3339, started.ExpiresAt); err != nil {
			return unreadable(resp, raw, fmt.Sprintf("expires_at %q is not an RFC 3339 time", started.ExpiresAt))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.ID, s.url = started.ID, c.base+"/sessions/"+url.PathEscape(started.ID)
	s.IdleTimeout = time.Duration(started.IdleTimeoutSeconds) * time.Second
	s.stop = context.AfterFunc(ctx, func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		s.Close(ctx) // nobody is left to hear of a failure; the idle timeout ends it then
	})
	return s, nil
}

// AttachSession is the session of the given ID, started earlier by
// NewSession, perhaps by another process. It sends nothing: a wrong ID
// shows as ErrorTypeSessionNotFound on the first call. The attached
// session is not tied to a context, and it sends only the cookies of the
// Client's own jar (WithHTTPClient): on a Cloud Run service of more than
// one instance, unless that jar holds the cookies the session's start set,
// its calls may reach another instance and answer session_not_found.
func (c *Client) AttachSession(id string) *Session {
	s := c.session(id)
	s.url = c.base + "/sessions/" + url.PathEscape(id)
	return s
}

// session is a Session of c with the given ID, sending through c's
// http.Client with a cookie jar.
func (c *Client) session(id string) *Session {
	hc := c.http
	if hc.Jar == nil {
		jar, _ := cookiejar.New(nil) // it fails only for a bad PublicSuffixList
		withJar := *hc
		withJar.Jar = jar
		hc = &withJar
	}
	return &Session{ID: id, c: c, http: hc}
}

// Detach unties the session from the context given to NewSession: the
// session then lives until Close, its idle timeout or its expiry, as for a
// command that starts a session for later commands.
func (s *Session) Detach() {
	if s.stop != nil {
		s.stop()
	}
}

// Close ends the session (DELETE /sessions/{id}) and frees what it holds
// on the service. A session that has already ended, by Close or on its
// own, is not an error: Close returns nil for ErrorTypeSessionNotFound,
// so it may be called more than once, and deferred.
func (s *Session) Close(ctx context.Context) error {
	s.Detach()
	return s.c.retrying(ctx, (*Error).retryable, func() error {
		resp, raw, err := s.c.send(ctx, s.http, http.MethodDelete, s.url, nil)
		if err != nil {
			return err
		}
		if e := failed(resp, raw); e != nil && e.Type != ErrorTypeSessionNotFound {
			return e
		}
		return nil
	})
}
