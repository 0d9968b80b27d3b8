package jail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pyexec/pyexec/executor/internal/cgroups"
	"github.com/pyexec/pyexec/executor/internal/uids"
)

// execution is one run's identity, input and limits.
type execution struct {
	id     string
	job    []byte // what the harness reads on fd 3 (job.go)
	slot   int    // which concurrency slot it holds; picks its outside uid
	limits limits
	draws  bool // the script is likely to draw charts (drawsCharts)
}

// jailRun is what one jail produced, before it is judged. Every byte in it
// came from, or through, untrusted code.
type jailRun struct {
	Stdout         []byte
	StdoutOverflow bool
	Report         []byte
	ReportOverflow bool
	TimedOut       bool
	MemoryLimitHit bool
	// Ended tells that the interpreter ran and ended; false when nsjail
	// failed before starting it. ExitCode or Signal says how it ended.
	Ended    bool
	ExitCode int
	Signal   syscall.Signal
	// SandboxLost tells that the sandbox around the process ended during
	// the execution (procExit.lost).
	SandboxLost bool
	NsjailLog   string
	// report is Report parsed, which collect does once, as soon as it is
	// final: collect needs to know whether the report settles the
	// execution (settled), judge what it says. nil when Report is not a
	// valid report.
	report *report
	// Gone tells that no process of the execution is left; when false,
	// the execution was answered by its report while its process ended.
	Gone bool
	// Cleanup, when set, discards the sandbox (its processes, pipes and
	// cgroup), calling gone as soon as no process of the execution is
	// left: the execution may have been answered before (collect). It
	// must run, even when run returned an error.
	Cleanup func(gone func()) error
}

// sandbox is one mode's way of giving executions their jails (mode_cold.go,
// mode_pool.go, mode_fork.go). Every mode gives each execution the same
// isolation; they differ in what is started before the script arrives.
type sandbox interface {
	// run runs one execution in a jail of its own and returns what the
	// jail produced; the executor judges it.
	run(ctx context.Context, x execution) (jailRun, error)
	// warmCgroups names the cgroups of jails started ahead, waiting for a
	// script: they belong to the next executions, so they are not left over.
	warmCgroups() map[string]bool
	// isolation is what /healthz reports of this mode's jails.
	isolation() Isolation
	// trouble says why no jail can be started now (a server being
	// replaced, starts failing again and again), or "" when they can.
	trouble() string
	// close stops whatever the mode keeps running between executions and
	// discards every jail not yet used.
	close() error
}

// jailIsolation is the isolation every mode's jails have: the namespaces,
// the seccomp filter and the uid jailConfig sets up (or, in fork mode, the
// fork server sets up the same way), with memory and process limits by
// cgroup or rlimit.
func jailIsolation(limits cgroups.Limiter, outsideUIDs string) Isolation {
	return Isolation{
		Namespaces:  []string{"user", "mount", "pid", "net", "ipc", "uts", "cgroup"},
		Seccomp:     true,
		UID:         uids.JailUID,
		OutsideUIDs: outsideUIDs,
		Limits:      string(limits),
	}
}

// maxJailConfig bounds a jail's configuration: startNsjail grows its pipe's
// buffer to hold it (within the kernel's default pipe-max-size of 1 MiB),
// so it can be written whole before nsjail starts reading it. The harness's
// source and one mount per directory of the runtime's shared libraries make
// up most of it.
const maxJailConfig = 256 << 10

// Caps on what is read from a jail besides stdout.
const (
	reportOverhead = 256 << 10 // error text and traceback around the result
	nsjailLogCap   = 64 << 10
	stderrCap      = 4 << 10
	drainTimeout   = 250 * time.Millisecond
)

// pipes holds both ends of the jail's channels; close closes whatever is
// still open.
type pipes []*os.File

func (p *pipes) pair() (r, w *os.File, err error) {
	r, w, err = os.Pipe()
	if err == nil {
		*p = append(*p, r, w)
	}
	return r, w, err
}

func (p pipes) close() {
	for _, f := range p {
		_ = f.Close()
	}
}

// channels are one execution's pipes. The executor keeps one end of each;
// the sandboxed interpreter gets the other, and the executor closes its copy
// of those once the interpreter has them, so that EOF reaches the executor's
// readers when the last process holding them is gone.
type channels struct {
	all pipes
	// The executor's ends.
	scriptW, reportR, stdoutR, stderrR *os.File
	logR                               *os.File // nsjail's log; nil where there is no nsjail per execution
	// The interpreter's ends.
	scriptR, reportW, stdoutW, stderrW, logW *os.File
}

func newChannels(withLog bool) (*channels, error) {
	c := &channels{}
	var err error
	pair := func(r, w **os.File) {
		if err == nil {
			*r, *w, err = c.all.pair()
		}
	}
	pair(&c.scriptR, &c.scriptW)
	pair(&c.reportR, &c.reportW)
	pair(&c.stdoutR, &c.stdoutW)
	pair(&c.stderrR, &c.stderrW)
	if withLog {
		pair(&c.logR, &c.logW)
	}
	if err != nil {
		c.all.close()
		return nil, fmt.Errorf("creating jail pipes: %w", err)
	}
	return c, nil
}

// closeChildEnds closes the executor's copies of the interpreter's ends.
func (c *channels) closeChildEnds() {
	for _, f := range []*os.File{c.scriptR, c.reportW, c.stdoutW, c.stderrW, c.logW} {
		if f != nil {
			_ = f.Close()
		}
	}
}

// process is a started sandboxed interpreter, as the executor controls it:
// an nsjail process (nsjailProc) or a process of the fork server
// (forkProc, mode_fork.go).
type process interface {
	// kill ends the interpreter and everything it started. It is safe to
	// call at any time, more than once, and after the process has ended.
	kill()
	// alive tells whether the process is still there, waiting for its script.
	alive() bool
	// wait blocks until the interpreter and every process it started are gone.
	wait() error
	// exitStatus tells how the interpreter ended, once wait has returned.
	// ended is false when nothing but nsjail's log can tell.
	exitStatus() procExit
}

// procExit is how an interpreter ended.
type procExit struct {
	ended  bool
	code   int
	signal syscall.Signal
	// lost tells that what ran the process (the fork server) ended before
	// it said how the process ended: the sandbox failed, not the script.
	lost bool
}

// jail is a started sandbox waiting for its script: the process, its
// channels and its cgroup. It is used once.
type jail struct {
	proc process
	ch   *channels
	cg   *cgroups.Exec // nil under the rlimit fallback
	// done releases what the jail held besides its process and cgroup
	// (its outside uid in pool mode); may be nil.
	done     func()
	born     time.Time
	usedOnce sync.Once
}

// jailStarter starts the jails of cold and pool mode: one nsjail per jail,
// each in a cgroup of its own.
type jailStarter struct {
	nsjail string
	// spec is the template every jail's spec is derived from; adapt, when
	// set, is the mode's change to it (pool mode's preload).
	spec   jailSpec
	adapt  func(*jailSpec)
	groups cgroups.Hierarchy
	cfg    Config
}

// start starts one nsjail (and the interpreter in it) as outsideUID, with a
// cgroup of its own named after id, under lim, and returns it waiting for
// its script on fd 3.
func (s jailStarter) start(id string, outsideUID int, lim limits) (*jail, error) {
	j := &jail{born: time.Now()}
	if s.groups.Kind() != cgroups.Rlimit {
		cg, err := s.groups.Create(id, lim.memoryBytes, s.cfg.MaxProcs)
		if err != nil {
			return nil, err
		}
		j.cg = cg
	}
	spec, err := s.spec.derive(func(spec *jailSpec) {
		if s.adapt != nil {
			s.adapt(spec)
		}
		spec.OutsideUID = outsideUID
		spec.Timeout, spec.MemoryBytes = lim.timeout, lim.memoryBytes
		if j.cg != nil {
			spec.CgroupMemMount, spec.CgroupPidsMount, spec.CgroupParent = s.groups.MemMount(), s.groups.PidsMount(), j.cg.Name()
		}
	})
	if err != nil {
		_ = j.discard()
		return nil, err
	}
	ch, err := newChannels(true)
	if err != nil {
		_ = j.discard()
		return nil, err
	}
	j.ch = ch
	proc, err := startNsjail(s.nsjail, spec, ch)
	if err != nil {
		_ = j.discard()
		return nil, err
	}
	j.proc = proc
	return j, nil
}

// discard kills a jail that will not be used (or is used up) and releases
// what it held. It reports a cgroup that could not be removed.
func (j *jail) discard() error { return j.teardown(func() {}) }

// teardown is discard, calling gone once no process of the jail is left.
func (j *jail) teardown(gone func()) error {
	reaped := false
	if j.proc != nil {
		j.proc.kill()
		_ = j.proc.wait()
		gone()
		reaped = j.proc.exitStatus().ended
	} else {
		gone()
	}
	if j.ch != nil {
		j.ch.all.close()
	}
	var err error
	if j.cg != nil {
		err = j.cg.Release(reaped)
	}
	j.usedOnce.Do(func() {
		if j.done != nil {
			j.done()
		}
	})
	return err
}

// finish fits the jail to x's limits, feeds it x's job, collects what it
// produced and discards it. The wall-clock limit runs from here: time a
// jail spent waiting for its job does not count.
func (j *jail) finish(ctx context.Context, x execution, cfg Config) (jailRun, error) {
	var run jailRun
	err := j.fit(x.limits)
	if err == nil {
		run, err = collect(ctx, j.proc, j.ch, x.job, x.limits.timeout, cfg)
		if j.cg != nil && err == nil && !run.settled() {
			// Only an execution without a valid report is judged by its
			// end; its processes are gone by now, so the counters are final.
			run.MemoryLimitHit = run.MemoryLimitHit || j.cg.HitMemoryLimit()
		}
	}
	// The process may still be ending (collect), and removing the cgroup
	// waits for the kernel to let go of the last process, which can take
	// milliseconds; the executor does both after the answer (Shutdown
	// waits for them).
	run.Cleanup = j.teardown
	return run, err
}

// fit tightens the memory limit of a jail started ahead (with the
// service's limit) to an execution's tighter one; a jail started for its
// execution has that limit already. Under the rlimit fallback the job
// tightens it instead (job.RlimitAS).
func (j *jail) fit(lim limits) error {
	if j.cg == nil {
		return nil
	}
	return j.cg.TightenMemoryLimit(lim.memoryBytes)
}

// jailOOMScoreAdj makes every process of a jail the kernel's first choice
// when memory runs short, before the service: an execution that fills the
// instance's memory is killed, never the service that answers for it.
const jailOOMScoreAdj = "1000"

// nsjailProc is one nsjail process, which runs one interpreter.
type nsjailProc struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// startNsjail starts nsjail for spec, passing the interpreter's ends of ch
// as fds 3, 4 and 5 (script, report, nsjail's log) and stdout/stderr. spec
// comes from derive, which validated it.
func startNsjail(nsjail string, spec jailSpec, ch *channels) (*nsjailProc, error) {
	config := jailConfig(spec)
	if len(config) > maxJailConfig {
		return nil, errors.New("jail configuration too large for its pipe")
	}
	configR, configW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating jail pipes: %w", err)
	}
	defer configR.Close()
	defer configW.Close()
	if _, err := unix.FcntlInt(configW.Fd(), unix.F_SETPIPE_SZ, maxJailConfig); err != nil {
		return nil, fmt.Errorf("sizing the jail configuration's pipe: %w", err)
	}
	if _, err := io.WriteString(configW, config); err != nil {
		return nil, fmt.Errorf("writing jail configuration: %w", err)
	}
	_ = configW.Close()

	args := append([]string{"--config", fmt.Sprintf("/proc/self/fd/%d", fdConfig), "--"}, jailArgv(spec)...)
	cmd := exec.Command(nsjail, args...)
	cmd.Env = []string{} // nsjail gets nothing of the service's environment
	cmd.Stdin = nil      // /dev/null: input() raises EOFError at once
	cmd.Stdout, cmd.Stderr = ch.stdoutW, ch.stderrW
	cmd.ExtraFiles = []*os.File{ch.scriptR, ch.reportW, ch.logW, configR} // fd 3..6
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the service dies, nsjail dies, and with it the jail.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting nsjail: %w", err)
	}
	ch.closeChildEnds()
	// Written as soon as nsjail has started, before it has read its
	// configuration and cloned the jail's first process, which inherits it.
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", cmd.Process.Pid), []byte(jailOOMScoreAdj), 0)
	p := &nsjailProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *nsjailProc) kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
	}
}

func (p *nsjailProc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// wait waits for nsjail, which outlives every process of its jail.
func (p *nsjailProc) wait() error {
	<-p.exited
	var exitErr *exec.ExitError
	if p.waitErr != nil && !errors.As(p.waitErr, &exitErr) {
		return fmt.Errorf("waiting for nsjail: %w", p.waitErr)
	}
	return nil
}

// exitStatus is unknown here: nsjail's exit code cannot be told from a
// script's exit(255). How the interpreter ended is in nsjail's log, which
// collect reads (parseNsjailLog).
func (p *nsjailProc) exitStatus() procExit { return procExit{} }

// collect feeds the job to a started process and waits for it, at most
// timeout, collecting stdout, the report and nsjail's log, each capped. It
// decides the execution is over when the process says so, never by pipe
// EOF: a process the script left behind could hold a pipe open.
func collect(ctx context.Context, proc process, ch *channels, job []byte, timeout time.Duration, cfg Config) (jailRun, error) {
	var (
		run      jailRun
		killOnce sync.Once
		mu       sync.Mutex
	)
	kill := func(reason func()) {
		mu.Lock()
		reason()
		mu.Unlock()
		killOnce.Do(proc.kill)
	}
	timer := time.AfterFunc(timeout, func() { kill(func() { run.TimedOut = true }) })
	defer timer.Stop()
	stopCtx := context.AfterFunc(ctx, func() { kill(func() {}) })
	defer stopCtx()

	var readers sync.WaitGroup
	read := func(r *os.File, limit int, dst *[]byte, overflow func()) {
		readers.Add(1)
		go func() {
			defer readers.Done()
			buf := readCapped(r, limit, overflow)
			mu.Lock()
			if dst != nil {
				*dst = buf
			}
			mu.Unlock()
		}()
	}
	var nsjailLog []byte
	read(ch.stdoutR, cfg.MaxOutputBytes, &run.Stdout, func() { kill(func() { run.StdoutOverflow = true }) })
	read(ch.reportR, reportCap(cfg), &run.Report, func() {
		mu.Lock()
		run.ReportOverflow = true
		mu.Unlock()
	})
	readFiles := []*os.File{ch.stdoutR, ch.reportR, ch.stderrR}
	if ch.logR != nil {
		read(ch.logR, nsjailLogCap, &nsjailLog, nil)
		readFiles = append(readFiles, ch.logR)
	}
	var stderrTail []byte
	read(ch.stderrR, stderrCap, &stderrTail, nil)
	scriptW := ch.scriptW
	go func() {
		_, _ = scriptW.Write(job)
		_ = scriptW.Close()
	}()

	// The execution is over when the process has ended, or as soon as
	// every channel is at end of file (no process holds one any more, so
	// nothing of the execution can write to the answer) with a valid report
	// in: the harness closes its channels after writing the report, before
	// the process's exit tears its address space down. The process is then
	// killed, so that nothing of it runs on, and its end is awaited after
	// the answer, by Cleanup.
	var waitErr error
	gone := true
	// parsed tells that the report, final, has been parsed: whichever
	// comes first, the process's end or every channel's, it is parsed once.
	parsed := false
	ended := make(chan error, 1)
	go func() { ended <- proc.wait() }()
	drained := make(chan struct{})
	go func() { readers.Wait(); close(drained) }()
	select {
	case waitErr = <-ended:
	case <-drained:
		// Every reader is done: the report is final.
		mu.Lock()
		run.report, parsed = readReport(run.Report, cfg), true
		settled := run.settled()
		mu.Unlock()
		select {
		case waitErr = <-ended:
		default:
			if settled {
				killOnce.Do(proc.kill)
				gone = false
			} else {
				waitErr = <-ended
			}
		}
	}
	if waitErr != nil {
		killOnce.Do(proc.kill)
	}
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		for _, r := range readFiles {
			_ = r.SetReadDeadline(time.Now())
		}
		<-drained
	}
	if waitErr != nil {
		return jailRun{}, waitErr
	}

	mu.Lock()
	defer mu.Unlock()
	run.Gone = gone
	if !parsed {
		run.report = readReport(run.Report, cfg)
	}
	if ch.logR != nil {
		// An nsjail per execution: its log says how the interpreter ended.
		run.NsjailLog = string(nsjailLog)
		if len(run.NsjailLog) == 0 {
			// nsjail writes to stderr until it has read its configuration.
			run.NsjailLog = string(stderrTail)
		}
		parseNsjailLog(&run)
	} else {
		ex := procExit{ended: true}
		if !run.settled() {
			// The report does not settle the outcome: how the process
			// ended does.
			mu.Unlock()
			ex = proc.exitStatus()
			mu.Lock()
		}
		run.Ended, run.ExitCode, run.Signal, run.SandboxLost = ex.ended, ex.code, ex.signal, ex.lost
		if !ex.ended {
			run.NsjailLog = string(stderrTail)
		}
	}
	if err := ctx.Err(); err != nil && !run.TimedOut {
		return jailRun{}, fmt.Errorf("execution cancelled: %w", context.Cause(ctx))
	}
	return run, nil
}

// settled tells that the run's report is valid and whole: the execution
// is judged by it, not by how its process ended.
func (run jailRun) settled() bool { return run.report != nil && !run.ReportOverflow }

// readCapped reads r to EOF (or its read deadline), keeping at most limit
// bytes and discarding the rest, so a writer is never blocked. overflow, if
// set, is called once, as soon as the limit is passed.
func readCapped(r io.Reader, limit int, overflow func()) []byte {
	var buf bytes.Buffer
	chunk := readChunks.Get().(*[]byte)
	defer readChunks.Put(chunk)
	over := false
	for {
		n, err := r.Read(*chunk)
		if n > 0 {
			if room := limit - buf.Len(); n > room {
				n = max(room, 0)
				if !over && overflow != nil {
					overflow()
				}
				over = true
			}
			buf.Write((*chunk)[:n])
		}
		if err != nil {
			return buf.Bytes()
		}
	}
}

// readChunks are readCapped's read buffers: four channels are read per
// execution, each usually of a few bytes, and a fresh buffer each would be
// most of what an execution allocates.
var readChunks = sync.Pool{New: func() any { chunk := make([]byte, 32<<10); return &chunk }}

var (
	exitedRE     = regexp.MustCompile(`exited with status: (\d+)`)
	terminatedRE = regexp.MustCompile(`terminated with signal: \S+ \((\d+)\)`)
)

// parseNsjailLog reads how the interpreter ended from nsjail's own log, which
// unlike nsjail's exit code cannot be confused with a script's exit(255).
func parseNsjailLog(run *jailRun) {
	if m := terminatedRE.FindStringSubmatch(run.NsjailLog); m != nil {
		n, _ := strconv.Atoi(m[1])
		run.Ended, run.Signal = true, syscall.Signal(n)
	} else if m := exitedRE.FindStringSubmatch(run.NsjailLog); m != nil {
		n, _ := strconv.Atoi(m[1])
		run.Ended, run.ExitCode = true, n
	}
	if bytes.Contains([]byte(run.NsjailLog), []byte("run time >= time limit")) {
		run.TimedOut = true
	}
}
