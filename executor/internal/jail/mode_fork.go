package jail

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pyexec/pyexec/executor/internal/cgroups"
	"github.com/pyexec/pyexec/executor/internal/seccomp"
	"github.com/pyexec/pyexec/harness"
)

// Fork mode: one long-lived interpreter with numpy and pandas imported (the
// fork server, harness/zygote.py) runs in a jail of its own and forks a
// process per execution. Before any user code runs, that process enters new
// user, pid, mount, net, ipc, uts and cgroup namespaces, mounts its own
// /tmp, /dev/shm and /proc, sets its rlimits, is moved by the executor into
// the execution's cgroup (memory and pids limits), drops every capability,
// sets no_new_privs and installs the seccomp filter of seccomp.Filter, built
// from the rules every mode shares (package seccomp). It is pid 1 of its pid
// namespace, so killing it kills everything the script started. The server itself never runs user code, so every execution starts
// from the state the server had after its imports.
//
// Processes are forked ahead of their scripts (one per concurrency slot) and
// used once, like pool mode's jails; a fork costs milliseconds where a fresh
// interpreter costs a large fraction of a CPU-second.

// jailZygoteConfig is the fork server's configuration file in its jail;
// harness/zygote.py reads it.
const jailZygoteConfig = "/pyexec/zygote.json"

// Timeouts of the fork server's own steps.
const (
	serverStartTimeout = 2 * time.Minute // the server's imports, on a loaded machine
	// forkTimeout bounds one fork, and one answer to the watchdog: the
	// server answers in milliseconds, so one that is silent this long is
	// stopped or hung, and is killed and replaced.
	forkTimeout = 5 * time.Second
	// watchInterval is how often the watchdog asks an idle server whether it
	// still answers, so that a hung server is replaced before a request
	// needs it, and /healthz does not vouch for it long.
	watchInterval = 2 * time.Second
)

// zygoteConfig is harness/zygote.py's configuration file.
type zygoteConfig struct {
	TmpBytes int64            `json:"tmp_bytes"`
	Rlimits  map[string]int64 `json:"rlimits"` // -1 is unlimited
	Seccomp  string           `json:"seccomp"` // hex of the struct sock_filter records
	// Charts makes a chart server: matplotlib.pyplot imported and one chart
	// drawn before the server is ready (chartserver.go).
	Charts bool `json:"charts,omitempty"`
}

// forkFlavor is what a fork server holds beyond numpy and pandas.
type forkFlavor struct {
	name   string // names its executions' cgroups
	charts bool
}

var (
	plainServer = forkFlavor{name: "fork"}
	chartServer = forkFlavor{name: "chart", charts: true}
)

// forkSandbox runs every execution in a process forked from the server.
type forkSandbox struct {
	nsjail string
	spec   jailSpec // the server jail's
	groups cgroups.Hierarchy
	cfg    Config

	mu     sync.Mutex
	server *forkServer
	closed bool
	// prove runs the self-test through a replacement server before it
	// serves; the first server is proven by the executor's Start.
	prove func(context.Context, sandbox) error
	// replacing is set while a replacement server starts and is proven:
	// /healthz answers 503 meanwhile.
	replacing atomic.Bool
	// closing is set when close begins; starting is the nsjail of a server
	// being started or proven (under mu), which close kills so as not to
	// wait for its start.
	closing  atomic.Bool
	starting atomic.Pointer[nsjailProc]

	pool *warmPool
	// charts is the chart server that scripts that draw run in once it is
	// ready (chartserver.go); nil in a chart server itself.
	charts *lazyChartServer
	// cgroups are the executions' cgroups, each reused once the processes
	// of its execution are gone.
	cgroups *cgroups.Pool
}

// forkServer is one running server jail.
type forkServer struct {
	proc   *nsjailProc
	ctl    *net.UnixConn
	log    *capture // the server's stdout, stderr and nsjail's log
	notify func(Event)
	// replaced is set by the first replace: one event, however many
	// requests found the server silent.
	replaced atomic.Bool
	stopped  chan struct{} // closed by stop: the watchdog's end
	stopOnce sync.Once
}

// prove is the self-test a replacement server passes before it serves.
func newForkSandbox(nsjail string, spec jailSpec, groups cgroups.Hierarchy, cfg Config, flavor forkFlavor, prove func(context.Context, sandbox) error) (*forkSandbox, error) {
	if groups.Kind() == cgroups.Rlimit {
		// Without a cgroup, per-execution memory and process limits would
		// rest on rlimits that executions of one uid share.
		return nil, errors.New("fork mode needs a cgroup hierarchy for per-execution limits")
	}
	serverSpec, err := forkServerSpec(spec, cfg, flavor)
	if err != nil {
		return nil, err
	}
	f := &forkSandbox{nsjail: nsjail, spec: serverSpec, groups: groups, cfg: cfg, prove: prove, cgroups: cgroups.NewPool(groups, flavor.name, 8*cfg.Concurrency)}
	if _, err := f.ensureServer(); err != nil {
		return nil, err
	}
	f.pool = newWarmPool(cfg.Concurrency, f.fork)
	return f, nil
}

// forkServerSpec derives the server jail's spec from the executor's: the
// server and its configuration, with everything the executions' processes
// need to set their own limits and filter up.
func forkServerSpec(spec jailSpec, cfg Config, flavor forkFlavor) (jailSpec, error) {
	filter, err := seccomp.Filter()
	if err != nil {
		return jailSpec{}, err
	}
	zc := zygoteConfig{
		TmpBytes: cfg.TmpBytes,
		Rlimits: map[string]int64{
			"cpu":    int64(cpuSeconds(cfg.Timeout)),
			"fsize":  cfg.TmpBytes,
			"nofile": rlimitNofile,
			"stack":  rlimitStackMiB << 20,
			"core":   0,
			"as":     -1, // the cgroup limits memory; see jailConfig
		},
		Seccomp: hex.EncodeToString(filter),
		Charts:  flavor.charts,
	}
	zcJSON, err := json.Marshal(zc)
	if err != nil {
		return jailSpec{}, err
	}
	return spec.derive(func(s *jailSpec) {
		s.Server = true
		s.OutsideUID = s.IDs.ForkServer()
		// Every execution, warm or running, each with a process to spare,
		// plus the server.
		s.MaxProcs = 2*cfg.Concurrency*(cfg.MaxProcs+2) + 16
		s.Files = []jailFile{{jailZygote, string(harness.Zygote)}, {jailSession, string(harness.Session)}, {jailZygoteConfig, string(zcJSON)}}
	})
}

func (f *forkSandbox) run(ctx context.Context, x execution) (jailRun, error) {
	if x.draws && f.charts != nil {
		if charts, release := f.charts.acquire(); charts != nil {
			defer release()
			return charts.run(ctx, x)
		}
	}
	j, err := f.pool.take(ctx, x.limits.timeout+sandboxWaitMargin)
	if err != nil {
		return jailRun{}, err
	}
	return j.finish(ctx, x, f.cfg)
}

// trouble says why no sandbox can be started now, or "".
func (f *forkSandbox) trouble() string {
	if f.replacing.Load() {
		return "the fork server is being replaced"
	}
	return f.pool.trouble()
}

func (f *forkSandbox) warmCgroups() map[string]bool {
	names := f.pool.cgroupNames()
	for name := range f.cgroups.IdleNames() {
		names[name] = true
	}
	if f.charts != nil {
		if charts := f.charts.running(); charts != nil {
			maps.Copy(names, charts.warmCgroups())
		}
	}
	return names
}

func (f *forkSandbox) isolation() Isolation {
	return jailIsolation(f.groups.Kind(), f.spec.IDs.Describe(string(ModeFork)))
}

func (f *forkSandbox) close() error {
	// Nothing more is started, and a server that is starting or stopped is
	// killed now: the fillers waiting for it then fail at once, rather
	// than after its start or forkTimeout.
	f.closing.Store(true)
	if p := f.starting.Load(); p != nil {
		p.kill()
	}
	if f.mu.TryLock() {
		if f.server != nil {
			f.server.proc.kill()
		}
		f.mu.Unlock()
	}
	var err error
	if f.charts != nil {
		err = f.charts.close()
	}
	err = errors.Join(err, f.pool.close())
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if f.server != nil {
		f.server.stop()
		f.server = nil
	}
	return errors.Join(err, f.cgroups.Close())
}

// ensureServer returns the running server, starting one if there is none or
// the last one died or was killed. A replacement serves only once it has
// passed the self-test.
func (f *forkSandbox) ensureServer() (*forkServer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.closing.Load() {
		return nil, ErrBusy
	}
	// A server killed to be replaced may not have been reaped yet.
	if f.server != nil && f.server.proc.alive() && !f.server.replaced.Load() {
		return f.server, nil
	}
	replacement := f.server != nil
	if replacement {
		f.replacing.Store(true)
		defer f.replacing.Store(false)
		old := f.server
		f.server = nil
		old.stop()
		if !old.replaced.Load() {
			f.cfg.notify(Event{Warning: true, Message: "fork server exited; starting a new one: " + lastLines(old.log.String(), 3)})
		}
	}
	s, err := startForkServer(f.nsjail, f.spec, f.cfg.notify, func(p *nsjailProc) {
		f.starting.Store(p)
		if f.closing.Load() {
			p.kill() // close began before it could see p
		}
	})
	defer f.starting.Store(nil)
	if err != nil {
		if f.closing.Load() {
			return nil, ErrBusy
		}
		f.cfg.notify(Event{Warning: true, Message: "fork server did not start: " + err.Error()})
		return nil, fmt.Errorf("%w: %w", ErrSandboxUnavailable, err)
	}
	if replacement {
		ctx, cancel := context.WithTimeout(context.Background(), serverStartTimeout)
		defer cancel()
		err := f.prove(ctx, oneServer{f, s})
		if f.closing.Load() {
			s.stop()
			return nil, ErrBusy
		}
		if err != nil {
			s.stop()
			f.cfg.notify(Event{Warning: true, Message: "the new fork server failed its self-test: " + err.Error()})
			return nil, fmt.Errorf("%w: the new fork server failed its self-test: %w", ErrSandboxUnavailable, err)
		}
		f.cfg.notify(Event{Message: "fork server replaced; the new one passed its self-test"})
	}
	f.server = s
	go f.watch(s)
	return s, nil
}

// watch asks s, every watchInterval, whether it still answers. One that
// does not within forkTimeout is killed and replaced at once, not when the
// next request needs it.
func (f *forkSandbox) watch(s *forkServer) {
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.stopped:
			return
		case <-tick.C:
		}
		if err := s.ping(); err != nil {
			select {
			case <-s.stopped:
				return // stopped meanwhile: not a fault
			default:
			}
			_ = s.replace("answering the watchdog", err)
			_, _ = f.ensureServer()
			return
		}
	}
}

// ping asks the server whether it still answers.
func (s *forkServer) ping() error {
	if _, err := s.ctl.Write([]byte("ping")); err != nil {
		return err
	}
	_ = s.ctl.SetReadDeadline(time.Now().Add(forkTimeout))
	defer s.ctl.SetReadDeadline(time.Time{}) //nolint:errcheck // a closed socket fails the next read anyway
	buf := make([]byte, 16)
	n, err := s.ctl.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "pong" {
		return fmt.Errorf("answered %q, not pong", buf[:n])
	}
	return nil
}

// oneServer runs executions in processes forked from one server that does
// not serve yet: a replacement's self-test.
type oneServer struct {
	f      *forkSandbox
	server *forkServer
}

func (o oneServer) run(ctx context.Context, x execution) (jailRun, error) {
	j, err := o.f.forkFrom(o.server)
	if err != nil {
		return jailRun{}, err
	}
	return j.finish(ctx, x, o.f.cfg)
}

func (o oneServer) warmCgroups() map[string]bool { return nil }
func (o oneServer) isolation() Isolation         { return o.f.isolation() }
func (o oneServer) trouble() string              { return "" }
func (o oneServer) close() error                 { return nil }

// startForkServer starts a server and waits for it to be ready; started is
// told of its nsjail as soon as it runs.
func startForkServer(nsjail string, spec jailSpec, notify func(Event), started func(*nsjailProc)) (*forkServer, error) {
	ctl, theirs, err := seqpacketPair(false)
	if err != nil {
		return nil, err
	}
	defer theirs.Close()
	logR, logW, err := os.Pipe()
	if err != nil {
		ctl.Close()
		return nil, err
	}
	log := newCapture(logR, nsjailLogCap)
	ch := &channels{scriptR: theirs, stdoutW: logW, stderrW: logW, logW: logW}
	proc, err := startNsjail(nsjail, spec, ch)
	_ = logW.Close()
	if err != nil {
		ctl.Close()
		return nil, err
	}
	started(proc)
	s := &forkServer{proc: proc, ctl: ctl, log: log, notify: notify, stopped: make(chan struct{})}
	_ = ctl.SetReadDeadline(time.Now().Add(serverStartTimeout))
	buf := make([]byte, 16)
	n, err := ctl.Read(buf)
	_ = ctl.SetReadDeadline(time.Time{})
	if err != nil || string(buf[:n]) != "ready" {
		s.stop()
		return nil, fmt.Errorf("fork server did not start: %v: %s", err, lastLines(log.String(), 5))
	}
	return s, nil
}

// replace kills a server that cannot be written to or did not answer within
// forkTimeout (stopped, hung), so the next fork or session starts a new one
// (ensureServer) rather than waiting on this one again. It returns the request's error: sandbox_unavailable.
func (s *forkServer) replace(step string, err error) error {
	s.proc.kill()
	if s.replaced.CompareAndSwap(false, true) {
		s.notify(Event{Warning: true, Message: fmt.Sprintf("fork server killed, to be replaced: %s: %v", step, err)})
	}
	return fmt.Errorf("%w: %s: %w: %s", ErrSandboxUnavailable, step, err, lastLines(s.log.String(), 3))
}

func (s *forkServer) stop() {
	s.stopOnce.Do(func() { close(s.stopped) })
	_ = s.ctl.Close() // the server exits on EOF
	s.proc.kill()
	_ = s.proc.wait()
}

// fork asks the server for one sandboxed process, moves it into a cgroup of
// its own (no process of another execution is left in it) and returns it
// waiting for its script.
func (f *forkSandbox) fork() (*jail, error) {
	server, err := f.ensureServer()
	if err != nil {
		return nil, err
	}
	return f.forkFrom(server)
}

// forkFrom asks server for one sandboxed process (fork).
func (f *forkSandbox) forkFrom(server *forkServer) (*jail, error) {
	j := &jail{born: time.Now()}
	fail := func(err error) (*jail, error) {
		_ = j.discard()
		return nil, err
	}
	cg, err := f.cgroups.Take(f.cfg.MemoryBytes, f.cfg.MaxProcs)
	if err != nil {
		return nil, err
	}
	j.cg = cg
	ch, err := newChannels(false)
	if err != nil {
		return fail(err)
	}
	j.ch = ch
	// The execution's process says on this socket, with its pid, that it
	// is ready; the server says how it ended.
	status, theirs, err := seqpacketPair(true)
	if err != nil {
		return fail(err)
	}
	p := &forkProc{status: status, pidfd: -1}
	j.proc = p
	rights := unix.UnixRights(int(ch.scriptR.Fd()), int(ch.stdoutW.Fd()), int(ch.stderrW.Fd()), int(ch.reportW.Fd()), int(theirs.Fd()))
	_, _, err = server.ctl.WriteMsgUnix([]byte("fork"), rights, nil)
	ch.closeChildEnds()
	_ = theirs.Close()
	if err != nil {
		return fail(server.replace("asking the fork server for a process", err))
	}

	if err := server.admit(p, cg, "execution"); err != nil {
		return fail(err)
	}
	return j, nil
}

// admit waits for the process the server made (for an execution or a
// session: what) to say it is ready, holds on to it by a pidfd, moves it
// into cg and lets it go on. A server that does not answer is replaced.
func (s *forkServer) admit(p *forkProc, cg *cgroups.Exec, what string) error {
	_ = p.status.SetReadDeadline(time.Now().Add(forkTimeout))
	msg, pid, err := readStatus(p.status)
	if err != nil {
		return s.replace("fork server", err)
	}
	if msg != "ready" || pid <= 0 {
		return fmt.Errorf("fork server: setting up the %s: %s", what, truncate(msg, 500))
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("opening the %s's pidfd: %w", what, err)
	}
	p.pidfd = pidfd
	// The process is waiting for "go", so pid is still the process the
	// kernel vouched for; the pidfd holds on to it from here.
	if err := cg.Attach(pid); err != nil {
		return err
	}
	if _, err := p.status.Write([]byte("go")); err != nil {
		return fmt.Errorf("starting the %s's process: %w", what, err)
	}
	_ = p.status.SetReadDeadline(time.Time{})
	return nil
}

// readStatus reads one message from an execution's status socket, with the
// sender's pid when the kernel attached one.
func readStatus(c *net.UnixConn) (string, int, error) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return "", 0, err
	}
	if n == 0 {
		return "", 0, errors.New("the process ended without a word")
	}
	pid := 0
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for i := range msgs {
			if cred, err := unix.ParseUnixCredentials(&msgs[i]); err == nil {
				pid = int(cred.Pid)
			}
		}
	}
	return string(buf[:n]), pid, nil
}

// forkProc is one execution's process in fork mode, as the executor holds
// it: a pidfd (kills reach exactly that process, and with it its whole pid
// namespace) and the status socket on which the server reports how it ended.
type forkProc struct {
	status *net.UnixConn
	// mu guards pidfd: kill (from a timer or the output cap) may race with
	// wait closing it, and a closed descriptor's number can be reused at once
	// by another execution's pidfd, which the kill would then reach.
	mu    sync.Mutex
	pidfd int

	waitOnce sync.Once
	once     sync.Once
	ex       procExit
}

func (p *forkProc) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pidfd >= 0 {
		_ = unix.PidfdSendSignal(p.pidfd, unix.SIGKILL, nil, 0)
	}
}

// signal sends sig to the process, if it has not ended.
func (p *forkProc) signal(sig unix.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pidfd < 0 {
		return errors.New("the process has ended")
	}
	return unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
}

func (p *forkProc) alive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pidfd < 0 {
		return false
	}
	fds := []unix.PollFd{{Fd: int32(p.pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 0
}

// wait returns once the process has ended. Its pidfd says so as soon as it
// has, and as the process was pid 1 of its pid namespace, its end comes only
// after every other process of that namespace has ended: nothing of the
// execution is left. How it ended (exitStatus) comes from the server a
// moment later, and is needed only when the report does not settle the
// outcome.
func (p *forkProc) wait() error {
	p.waitOnce.Do(p.awaitEnd)
	return nil
}

// awaitEnd polls the pidfd until the process has ended. Only it polls the
// pidfd, and exitStatus, which closes it, runs only after it.
func (p *forkProc) awaitEnd() {
	p.mu.Lock()
	pidfd := p.pidfd
	p.mu.Unlock()
	if pidfd < 0 {
		p.exitStatus()
		return
	}
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EINTR) {
			// Without the pidfd, the server's word is the only signal left.
			p.exitStatus()
			return
		}
	}
	// The server's report is read (and the descriptors closed) in the
	// background; exitStatus waits for it when it is wanted.
	go p.exitStatus()
}

// exitStatus reads the server's report of how the process ended, once, and
// releases the process's descriptors.
func (p *forkProc) exitStatus() procExit {
	p.once.Do(func() {
		defer func() {
			_ = p.status.Close()
			p.mu.Lock()
			if p.pidfd >= 0 {
				_ = unix.Close(p.pidfd)
				p.pidfd = -1
			}
			p.mu.Unlock()
		}()
		msg, _, err := readStatus(p.status)
		if err != nil {
			// Only the server writes here: it ended (killed, or failed)
			// before it could.
			p.ex = procExit{lost: true}
			return
		}
		kind, num, _ := strings.Cut(msg, " ")
		n, convErr := strconv.Atoi(num)
		switch {
		case convErr != nil:
		case kind == "exit":
			p.ex = procExit{ended: true, code: n}
		case kind == "signal":
			p.ex = procExit{ended: true, signal: syscall.Signal(n)}
		}
	})
	return p.ex
}

// seqpacketPair returns a connected pair of SOCK_SEQPACKET unix sockets:
// message boundaries are kept, and descriptors travel with their message.
// The executor keeps ours as a connection; theirs goes to the sandbox.
// With passCred, the kernel attaches the sender's pid, translated into our
// pid namespace, to what arrives on ours.
func seqpacketPair(passCred bool) (ours *net.UnixConn, theirs *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("creating a socket pair: %w", err)
	}
	oursFile, theirs := os.NewFile(uintptr(fds[0]), "executor"), os.NewFile(uintptr(fds[1]), "sandbox")
	defer oursFile.Close()
	if passCred {
		if err := unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
			theirs.Close()
			return nil, nil, err
		}
	}
	conn, err := net.FileConn(oursFile)
	if err != nil {
		theirs.Close()
		return nil, nil, err
	}
	return conn.(*net.UnixConn), theirs, nil
}

// capture keeps the first bytes read from r, discarding the rest, until EOF.
type capture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newCapture(r *os.File, limit int) *capture {
	c := &capture{}
	go func() {
		defer r.Close()
		chunk := make([]byte, 4096)
		for {
			n, err := r.Read(chunk)
			c.mu.Lock()
			if room := limit - c.buf.Len(); room > 0 {
				c.buf.Write(chunk[:min(n, room)])
			}
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return c
}

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}
