// Package sessions keeps the live sessions of one instance: it names each
// with a 128-bit random ID, runs one cell at a time in it, ends it when it
// has been idle too long, has lived too long, is deleted, or the instance
// stops, and remembers for a while why a session ended so that a late
// caller is told. The sessions' processes are the executor's; this package
// only holds them by ID and decides when they end.
package sessions

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor"
)

// Process is one session's process, as the executor runs it.
type Process interface {
	// Run runs one cell. A cell that ends the session returns an error
	// and, from then on, Ended returns why.
	Run(ctx context.Context, cell executor.Cell) (executor.CellResult, error)
	// Ended is nil while the process lives, else why it ended.
	Ended() error
	// MemoryBytes is the memory the session's processes use together.
	MemoryBytes() int64
	// End kills the session's processes and removes what they used; it
	// waits for a running cell's end.
	End() error
}

// Starter starts a session's process.
type Starter func(ctx context.Context, req executor.SessionRequest) (Process, error)

// Config bounds the sessions of one instance.
type Config struct {
	// IdleTimeout ends a session after this long without a call.
	IdleTimeout time.Duration
	// MaxAge ends a session this long after it started, used or not.
	MaxAge time.Duration
	// Max is the most sessions that live at once.
	Max int
	// OnEnd, when set, is told of every session that ends: its ID as Short
	// gives it, why it ended, and what ending its process returned.
	OnEnd func(shortID, why string, err error)
}

// Registry holds the live sessions of one instance.
type Registry struct {
	cfg   Config
	start Starter
	// now is the clock; tests move it.
	now func() time.Time

	mu       sync.Mutex
	live     map[string]*session
	starting int // sessions being started, counted against Max
	ended    endings
	closed   bool

	stopReaper chan struct{}
	reaperDone chan struct{}
}

// session is one live session.
type session struct {
	id      string
	proc    Process
	created time.Time
	expires time.Time

	// Guarded by Registry.mu.
	lastUsed time.Time
	running  bool
	cells    int
}

// The refusals of the registry, as the service answers them.
var (
	// ErrBusy: a cell already runs in the session.
	ErrBusy = &executor.Error{Type: api.ErrorTypeSessionBusy, Message: "A cell is already running in this session; wait for its answer"}
	// ErrClosed: the instance is shutting down.
	ErrClosed = fmt.Errorf("%w: the instance is shutting down", executor.ErrBusy)
)

// FullError is a new session refused because Max sessions live.
type FullError struct{ Max int }

func (e *FullError) Error() string {
	return fmt.Sprintf("This instance holds its maximum of %d sessions (PYEXEC_MAX_SESSIONS); end one, or retry later", e.Max)
}

// Unwrap makes a FullError an executor.ErrBusy: a passing fault, retried
// after Retry-After.
func (e *FullError) Unwrap() error { return executor.ErrBusy }

// New returns a registry that starts sessions with start and ends them as
// cfg says. Close ends them all.
func New(cfg Config, start Starter) *Registry {
	r := &Registry{
		cfg:        cfg,
		start:      start,
		now:        time.Now,
		live:       map[string]*session{},
		ended:      newEndings(maxEndings, endingsTTL),
		stopReaper: make(chan struct{}),
		reaperDone: make(chan struct{}),
	}
	go r.reap()
	return r
}

// Info is what a session's answers say of it.
type Info struct {
	ID          string
	Running     bool
	Created     time.Time
	LastUsed    time.Time
	Expires     time.Time
	IdleTimeout time.Duration
	MemoryBytes int64
	Cells       int
}

// Create starts a session.
func (r *Registry) Create(ctx context.Context, req executor.SessionRequest) (Info, error) {
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return Info{}, ErrClosed
	case len(r.live)+r.starting >= r.cfg.Max:
		r.mu.Unlock()
		return Info{}, &FullError{Max: r.cfg.Max}
	}
	r.starting++
	r.mu.Unlock()

	proc, err := r.start(ctx, req)
	r.mu.Lock()
	r.starting--
	closed := r.closed
	if err != nil || closed {
		r.mu.Unlock()
		if err != nil {
			return Info{}, err
		}
		return Info{}, errors.Join(ErrClosed, proc.End())
	}
	now := r.now()
	s := &session{id: newID(), proc: proc, created: now, expires: now.Add(r.cfg.MaxAge), lastUsed: now}
	r.live[s.id] = s
	info := r.infoLocked(s)
	r.mu.Unlock()
	return info, nil
}

// ErrUnknown is the error of an ID that names no session, as one of
// another shape than a session ID's does.
var ErrUnknown = notFound("")

// newID is a session ID: 128 random bits, URL-safe (api.ValidSessionID).
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Short is the first characters of a session ID, which logs show: enough
// to tell sessions apart, too few to use one.
func Short(id string) string {
	const n = 6
	if len(id) <= n {
		return id
	}
	return id[:n] + "…"
}

// Result is a cell's result, and whether the cell ended its session.
type Result struct {
	executor.CellResult
	SessionEnded bool
}

// Run runs cell in the session id. A cell that ends the session removes
// it: later calls get session_not_found saying why.
func (r *Registry) Run(ctx context.Context, id string, cell executor.Cell) (Result, error) {
	r.mu.Lock()
	s, err := r.lookupLocked(id)
	if err == nil && s.running {
		err = ErrBusy
	}
	if err != nil {
		r.mu.Unlock()
		return Result{}, err
	}
	s.running = true
	s.lastUsed = r.now()
	r.mu.Unlock()

	res, err := s.proc.Run(ctx, cell)

	r.mu.Lock()
	s.running = false
	s.lastUsed = r.now()
	s.cells++
	why := s.proc.Ended()
	r.mu.Unlock()
	if why != nil {
		_ = r.end(s, "a cell ended it: "+reason(why))
	}
	return Result{CellResult: res, SessionEnded: why != nil}, err
}

// reason is why a process ended, as a NotFoundError says it.
func reason(err error) string {
	var e *executor.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// State is the session id's state.
func (r *Registry) State(id string) (Info, error) {
	r.mu.Lock()
	s, err := r.lookupLocked(id)
	if err != nil {
		r.mu.Unlock()
		return Info{}, err
	}
	info := r.infoLocked(s)
	r.mu.Unlock()
	// Read outside the lock: it reads the session's cgroup.
	info.MemoryBytes = s.proc.MemoryBytes()
	return info, nil
}

// Delete ends the session id.
func (r *Registry) Delete(id string) error {
	r.mu.Lock()
	s, err := r.lookupLocked(id)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	return r.end(s, "it was deleted")
}

// Len is the number of live sessions.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.live)
}

// Close ends every session and takes no new one; it returns once their
// processes are gone.
func (r *Registry) Close() error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.stopReaper)
	}
	all := make([]*session, 0, len(r.live))
	for _, s := range r.live {
		all = append(all, s)
	}
	r.mu.Unlock()
	<-r.reaperDone
	var errs []error
	for _, s := range all {
		errs = append(errs, r.end(s, "the instance stopped"))
	}
	return errors.Join(errs...)
}

// end removes s, remembers why it ended, and ends its process. Only the
// first end of a session counts.
func (r *Registry) end(s *session, why string) error {
	r.mu.Lock()
	if r.live[s.id] != s {
		r.mu.Unlock()
		return nil
	}
	delete(r.live, s.id)
	r.ended.add(s.id, why, r.now())
	r.mu.Unlock()
	err := s.proc.End()
	if r.cfg.OnEnd != nil {
		r.cfg.OnEnd(Short(s.id), why, err)
	}
	return err
}

// lookupLocked finds the live session id, or says why there is none.
func (r *Registry) lookupLocked(id string) (*session, error) {
	if s, ok := r.live[id]; ok {
		return s, nil
	}
	why, _ := r.ended.get(id, r.now())
	return nil, notFound(why)
}

func (r *Registry) infoLocked(s *session) Info {
	return Info{
		ID: s.id, Running: s.running, Created: s.created, LastUsed: s.lastUsed,
		Expires: s.expires, IdleTimeout: r.cfg.IdleTimeout, Cells: s.cells,
	}
}

// notFound is the error of a session ID that names no live session here;
// why is why it ended, when this instance remembers it. How to start over
// is the caller's to add: it depends on how the caller reaches sessions.
func notFound(why string) error {
	msg := "Session not found: no live session has this ID on this instance. It never existed, ended over an hour ago, or lives on another instance (send back the cookies the service set, for session affinity)"
	if why != "" {
		msg = "Session not found: it has ended (" + why + ")"
	}
	return &executor.Error{Type: api.ErrorTypeSessionNotFound, Message: msg}
}

// reapEvery is how often idle and expired sessions are looked for.
const reapEvery = time.Second

// reap ends sessions idle longer than IdleTimeout or older than MaxAge,
// until Close.
func (r *Registry) reap() {
	defer close(r.reaperDone)
	tick := time.NewTicker(reapEvery)
	defer tick.Stop()
	for {
		select {
		case <-r.stopReaper:
			return
		case <-tick.C:
			r.reapOnce()
		}
	}
}

// reapOnce ends the sessions due now. A running cell keeps its session
// from idling out, not from expiring.
func (r *Registry) reapOnce() {
	type due struct {
		s   *session
		why string
	}
	var ending []due
	r.mu.Lock()
	now := r.now()
	for _, s := range r.live {
		switch {
		case !now.Before(s.expires):
			ending = append(ending, due{s, fmt.Sprintf("it reached its maximum lifetime of %s (PYEXEC_SESSION_MAX_SECONDS)", seconds(r.cfg.MaxAge))})
		case !s.running && now.Sub(s.lastUsed) >= r.cfg.IdleTimeout:
			ending = append(ending, due{s, fmt.Sprintf("it was idle for %s (PYEXEC_SESSION_IDLE_SECONDS)", seconds(r.cfg.IdleTimeout))})
		}
	}
	r.mu.Unlock()
	for _, d := range ending {
		_ = r.end(d.s, d.why)
	}
}

func seconds(d time.Duration) string { return fmt.Sprintf("%d s", int(d/time.Second)) }
