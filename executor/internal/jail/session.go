package jail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor/internal/cgroups"
)

// A session's process is forked from the fork server like an execution's,
// with the same namespaces, cgroup, seccomp filter and working directory,
// and kept instead of ended: it runs harness/session.py's cell loop, whose
// protocol (a control socket in the script's place, four descriptors per
// cell) that file describes. Its cgroup is its own for its whole life, so
// its memory and process limits hold for all its cells together.

// sessionProc is one live session's process, as the executor holds it.
type sessionProc struct {
	proc *forkProc
	ctl  *net.UnixConn
	cg   *cgroups.Exec
	// freezer: the cgroup freezer holds the session between cells; else
	// SIGSTOP does (hold).
	freezer bool

	endOnce sync.Once
	endErr  error
}

// startSession forks a session's process under a cgroup of its own with
// memBytes of memory.
func (f *forkSandbox) startSession(memBytes int64) (*sessionProc, error) {
	server, err := f.ensureServer()
	if err != nil {
		return nil, err
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	cg, err := f.groups.Create("session-"+hex.EncodeToString(id), memBytes, f.cfg.MaxProcs)
	if err != nil {
		return nil, err
	}
	s := &sessionProc{cg: cg, freezer: f.groups.CanFreeze()}
	if s.freezer {
		cg.Freezable()
	}
	fail := func(err error) (*sessionProc, error) {
		s.end()
		return nil, err
	}
	ctl, ctlTheirs, err := seqpacketPair(false)
	if err != nil {
		return fail(err)
	}
	defer ctlTheirs.Close()
	s.ctl = ctl
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return fail(err)
	}
	defer null.Close()
	status, statusTheirs, err := seqpacketPair(true)
	if err != nil {
		return fail(err)
	}
	defer statusTheirs.Close()
	s.proc = &forkProc{status: status, pidfd: -1}
	// Until its first cell the process's stdout, stderr and report are
	// /dev/null; each cell brings its own.
	rights := unix.UnixRights(int(ctlTheirs.Fd()), int(null.Fd()), int(null.Fd()), int(null.Fd()), int(statusTheirs.Fd()))
	if _, _, err := server.ctl.WriteMsgUnix([]byte("session"), rights, nil); err != nil {
		return fail(server.replace("asking the fork server for a session", err))
	}
	if err := server.admit(s.proc, cg, "session"); err != nil {
		return fail(err)
	}
	return s, nil
}

// cellRun is what one cell produced.
type cellRun struct {
	Report []byte
	Stdout []byte
	// Ended says the session's process is gone (killed at the timeout, at
	// the stdout cap, or by the kernel at the memory limit); its cell has
	// no report.
	Ended          bool
	TimedOut       bool
	StdoutOverflow bool
	MemoryLimitHit bool
}

// errSessionEnded is a cell asked of a session whose process is gone.
var errSessionEnded = errors.New("the session has ended")

// cellDone is what the session's process says on its control socket once a
// cell's report is written.
const cellDone = "done"

// drainAfterDone is how long a cell's stdout and report are read after
// the session said the cell is done: what is in the pipes by then is the
// cell's, and a process the cell left, which holds copies of the pipes,
// must not keep the answer waiting.
const drainAfterDone = 100 * time.Millisecond

// runCell runs one cell's job, at most timeout. A cell that outlives it,
// prints past the stdout cap, or whose process dies, ends the session:
// the process is killed.
func (s *sessionProc) runCell(ctx context.Context, job []byte, timeout time.Duration, cfg Config) (cellRun, error) {
	if !s.proc.alive() {
		// It ended between cells: only the last cell could have ended it.
		_ = s.proc.wait()
		return cellRun{Ended: true}, nil
	}
	var p pipes
	defer p.close()
	jobR, jobW, err1 := p.pair()
	outR, outW, err2 := p.pair()
	errR, errW, err3 := p.pair()
	repR, repW, err4 := p.pair()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return cellRun{}, err
	}
	rights := unix.UnixRights(int(jobR.Fd()), int(outW.Fd()), int(errW.Fd()), int(repW.Fd()))
	if _, _, err := s.ctl.WriteMsgUnix([]byte("cell"), rights, nil); err != nil {
		s.proc.kill()
		return cellRun{Ended: true}, nil
	}
	for _, f := range []*os.File{jobR, outW, errW, repW} {
		_ = f.Close()
	}

	var run cellRun
	var mu sync.Mutex
	timer := time.AfterFunc(timeout, func() {
		mu.Lock()
		run.TimedOut = true
		mu.Unlock()
		s.proc.kill()
	})
	defer timer.Stop()
	stopCtx := context.AfterFunc(ctx, s.proc.kill)
	defer stopCtx()

	go func() {
		_, _ = jobW.Write(job)
		_ = jobW.Close()
	}()
	go func() { _, _ = io.Copy(io.Discard, errR) }()
	stdout := make(chan []byte, 1)
	go func() {
		stdout <- readCapped(outR, cfg.MaxOutputBytes, func() {
			mu.Lock()
			run.StdoutOverflow = true
			mu.Unlock()
			s.proc.kill()
		})
	}()
	// One byte past the cap makes a report over it one parseReport refuses.
	report := make(chan []byte, 1)
	go func() { report <- readCapped(repR, reportCap(cfg)+1, nil) }()
	// The cell is over when the session says so, or when its process is
	// gone (the control socket's end of file).
	s.awaitDone()
	deadline := time.Now().Add(drainAfterDone)
	_ = outR.SetReadDeadline(deadline)
	_ = errR.SetReadDeadline(deadline)
	_ = repR.SetReadDeadline(deadline)
	rep := <-report
	run.Stdout = <-stdout

	mu.Lock()
	defer mu.Unlock()
	if !s.proc.alive() || run.TimedOut || run.StdoutOverflow || len(rep) == 0 {
		s.proc.kill()
		_ = s.proc.wait()
		run.Ended = true
		run.MemoryLimitHit = !run.TimedOut && !run.StdoutOverflow && s.cg.HitMemoryLimit()
		return run, nil
	}
	run.Report = rep
	return run, nil
}

// awaitDone waits for the session's word that its cell is done, or for the
// end of its control socket. Other messages, which only a cell could have
// sent, are dropped.
func (s *sessionProc) awaitDone() {
	buf := make([]byte, 64)
	for {
		n, _, _, _, err := s.ctl.ReadMsgUnix(buf, nil)
		if err != nil || n == 0 || string(buf[:n]) == cellDone {
			return
		}
	}
}

// kill kills the session's process, and with it its whole pid namespace.
// Under cgroup v1 a frozen process dies only once thawed, so it is thawed
// too.
func (s *sessionProc) kill() {
	s.proc.kill()
	if s.freezer {
		_ = s.cg.Thaw()
	}
}

// hold stops every process of the session until resume: the cgroup
// freezer where there is one. Where cgroup v1 has no freezer hierarchy,
// the session's own process (all its threads) is stopped with SIGSTOP;
// a process a cell started in the background keeps running there, within
// the session's cgroup limits.
func (s *sessionProc) hold() error {
	if s.freezer {
		return s.cg.Freeze()
	}
	return s.proc.signal(unix.SIGSTOP)
}

// resume lets the session's processes run again.
func (s *sessionProc) resume() error {
	if s.freezer {
		return s.cg.Thaw()
	}
	return s.proc.signal(unix.SIGCONT)
}

// memoryBytes is the memory the session's processes use together.
func (s *sessionProc) memoryBytes() int64 { return s.cg.MemoryBytes() }

// end kills the session's process and removes its cgroup once every
// process of it is gone; later calls return what the first did.
func (s *sessionProc) end() error {
	s.endOnce.Do(func() { s.endErr = s.release() })
	return s.endErr
}

func (s *sessionProc) release() error {
	reaped := false
	if s.proc != nil {
		s.proc.kill()
		_ = s.proc.wait()
		reaped = s.proc.exitStatus().ended
	}
	if s.ctl != nil {
		_ = s.ctl.Close()
	}
	return s.cg.Release(reaped)
}

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

// Session is a live session: a process kept between its cells, which run
// one at a time in its one namespace, and which is frozen between them.
type Session struct {
	cfg  Config
	proc *sessionProc
	lim  limits

	// mu is held while a cell runs.
	mu      sync.Mutex
	endedMu sync.Mutex
	// ended, once set, is why the session is over.
	ended error
}

// ErrSessionsUnsupported is StartSession in a mode that holds no sessions:
// pool and cold mode start a fresh interpreter per execution, with nothing
// to keep.
var ErrSessionsUnsupported = &Error{
	Type:    api.ErrorTypeInvalidRequest,
	Message: "Sessions need the fork mode (PYEXEC_MODE=fork): this service runs in a mode that starts a fresh interpreter for each execution and keeps nothing between them",
}

// CellResult is one cell's answer: Result as for a script, and Text when the
// last expression had no JSON form and Value is its text form as a string.
type CellResult struct {
	Result
	Text bool
}

// StartSession starts a session with the service's limits, tightened by
// req's (which the caller has checked), and writes req's files into its
// working directory. Its process is frozen until its first cell.
func (e *Engine) StartSession(ctx context.Context, req SessionRequest) (*Session, error) {
	e.mu.Lock()
	box, ready := e.box, e.health.Ready
	e.mu.Unlock()
	if !ready {
		return nil, ErrSandboxUnavailable
	}
	f, ok := box.(*forkSandbox)
	if !ok {
		return nil, ErrSessionsUnsupported
	}
	lim := limitsOf(e.cfg, Request{Timeout: req.Timeout, MemoryBytes: req.MemoryBytes})
	proc, err := f.startSession(lim.memoryBytes)
	if err != nil {
		return nil, err
	}
	s := &Session{cfg: e.cfg, proc: proc, lim: lim}
	if len(req.Files) > 0 {
		// The files are written by a cell of no code: the session's
		// process writes them as any cell's, inside its jail, within the
		// service's timeout (writing them is the service's work, not a
		// cell's).
		if _, err := s.run(ctx, Request{Files: req.Files}, e.cfg.Timeout); err != nil {
			_ = s.End()
			return nil, err
		}
	} else if err := proc.hold(); err != nil {
		_ = s.End()
		return nil, err
	}
	return s, nil
}

// Run runs cell, which the caller has checked, as the session's next cell.
// A cell past its timeout, or killed at the memory limit, ends the session:
// its answer says so, and Ended returns why from then on.
func (s *Session) Run(ctx context.Context, cell Cell) (CellResult, error) {
	timeout := s.lim.timeout
	if cell.Timeout > 0 && cell.Timeout < timeout {
		timeout = cell.Timeout
	}
	return s.run(ctx, Request{Script: cell.Code, Stdin: cell.Stdin, Files: cell.Files}, timeout)
}

// run thaws the session, runs req's script as a cell and freezes it again.
func (s *Session) run(ctx context.Context, req Request, timeout time.Duration) (CellResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.Ended(); err != nil {
		return CellResult{}, fmt.Errorf("%w: %w", errSessionEnded, err)
	}
	job, err := newJob(req, s.cfg, req.extended(), 0)
	if err != nil {
		return CellResult{}, err
	}
	lim := limits{timeout: timeout, memoryBytes: s.lim.memoryBytes}
	started := time.Now()
	if err := s.proc.resume(); err != nil {
		return CellResult{}, s.endWith(&Error{Type: api.ErrorTypeExited, Message: "The session could not be resumed; the session has ended"}, err)
	}
	run, err := s.proc.runCell(ctx, job, timeout, s.cfg)
	if err != nil {
		return CellResult{}, s.endWith(err, nil)
	}
	res := CellResult{Result: Result{Stdout: cleanStdout(run.Stdout), Duration: time.Since(started)}}
	if run.Ended {
		switch {
		case run.TimedOut:
			return res, s.endWith(&Error{Type: api.ErrorTypeTimeout, Message: timeoutMessage(lim) + "; the session has ended"}, nil)
		case run.StdoutOverflow:
			return res, s.endWith(&Error{Type: api.ErrorTypeOutputLimit, Message: outputLimitMessage(s.cfg.MaxOutputBytes) + "; the session has ended"}, nil)
		case run.MemoryLimitHit:
			return res, s.endWith(&Error{Type: api.ErrorTypeMemoryLimit, Message: memoryLimitMessage(lim) + "; the session has ended"}, nil)
		case ctx.Err() != nil:
			return res, s.endWith(&Error{Type: api.ErrorTypeExited, Message: "The cell was stopped because its caller went away; the session has ended"}, nil)
		}
		return res, s.endWith(&Error{Type: api.ErrorTypeExited, Message: "The session's process ended during the cell; the session has ended"}, nil)
	}
	rep, err := parseReport(run.Report, s.cfg)
	if err != nil {
		return res, s.endWith(&Error{Type: api.ErrorTypeExited, Message: "The cell interfered with its result channel; the session has ended"}, err)
	}
	if err := s.proc.hold(); err != nil {
		return res, s.endWith(&Error{Type: api.ErrorTypeExited, Message: "The session could not be frozen after its cell; the session has ended"}, err)
	}
	res.Result, err = judgeReport(res.Result, rep, s.cfg, lim)
	res.Text = rep.resultText() && err == nil
	return res, err
}

// endWith ends the session because of why (cause, when not nil, is the
// fault behind it) and returns why.
func (s *Session) endWith(why error, cause error) error {
	s.endedMu.Lock()
	if s.ended == nil {
		s.ended = why
	}
	s.endedMu.Unlock()
	_ = s.proc.end()
	if cause != nil && s.cfg.Notify != nil {
		s.cfg.notify(Event{Warning: true, Message: fmt.Sprintf("a session ended: %v: %v", why, cause)})
	}
	return why
}

// Ended is nil while the session lives, and why it ended once it has.
func (s *Session) Ended() error {
	s.endedMu.Lock()
	defer s.endedMu.Unlock()
	return s.ended
}

// MemoryBytes is the memory the session's processes use together; 0
// where no cgroup counts it.
func (s *Session) MemoryBytes() int64 { return s.proc.memoryBytes() }

// End ends the session: its processes are killed, a running cell ends, and
// its cgroup is removed.
func (s *Session) End() error {
	s.proc.kill()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endedMu.Lock()
	if s.ended == nil {
		s.ended = errors.New("the session was ended")
	}
	s.endedMu.Unlock()
	return s.proc.end()
}
