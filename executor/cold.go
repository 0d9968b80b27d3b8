package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// execution is one run's identity and input.
type execution struct {
	id     string
	script []byte
	slot   int // which concurrency slot it holds; picks its outside uid
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
	Ended     bool
	ExitCode  int
	Signal    syscall.Signal
	NsjailLog string
}

// sandbox runs executions; cold mode's is one nsjail per execution. Faster
// modes implement the same interface with the same isolation.
type sandbox interface {
	run(ctx context.Context, x execution) (jailRun, error)
}

// outsideUIDBase is the first host uid jails map to: slot N runs as
// outsideUIDBase+N, so concurrent executions never share a uid (nor an
// RLIMIT_NPROC count) with each other or with anything on the host.
const outsideUIDBase = 200000

// Caps on what is read from a jail besides stdout.
const (
	reportOverhead = 256 << 10 // error text and traceback around the result
	nsjailLogCap   = 64 << 10
	stderrCap      = 4 << 10
	drainTimeout   = 250 * time.Millisecond
)

// coldSandbox starts a fresh nsjail and interpreter for every execution.
type coldSandbox struct {
	nsjail  string
	spec    jailSpec // the parts shared by every execution
	cgroups cgroups
	cfg     Config
}

func (c *coldSandbox) run(ctx context.Context, x execution) (run jailRun, err error) {
	spec := c.spec
	spec.OutsideUID = outsideUIDBase + x.slot
	if c.cgroups.kind != limitRlimit {
		cg, err := c.cgroups.create(x.id, c.cfg.MemoryBytes, c.cfg.MaxProcs)
		if err != nil {
			return jailRun{}, err
		}
		defer func() {
			if rmErr := cg.remove(); rmErr != nil && err == nil {
				err = rmErr
			}
		}()
		defer func() { run.MemoryLimitHit = run.MemoryLimitHit || cg.hitMemoryLimit() }()
		spec.CgroupMemMount, spec.CgroupPidsMount, spec.CgroupParent = c.cgroups.memMount, c.cgroups.pidsMount, cg.name
	}
	config := jailConfig(spec)
	return launch(ctx, c.nsjail, config, jailArgv(spec), x.script, c.cfg)
}

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

// launch runs nsjail with config and waits for it, feeding the script and
// collecting stdout, the report and nsjail's log, each capped. It decides the
// execution is over when nsjail exits, never by pipe EOF: a process the
// script left behind could hold a pipe open.
func launch(ctx context.Context, nsjail, config string, argv []string, script []byte, cfg Config) (jailRun, error) {
	var ps pipes
	defer ps.close()
	var files [4]*os.File // fd 3..6 in the child
	var scriptW, reportR, logR, configW, stdoutR, stdoutW, stderrR, stderrW *os.File
	var err error
	pair := func(r, w **os.File) {
		if err == nil {
			*r, *w, err = ps.pair()
		}
	}
	pair(&files[0], &scriptW)
	pair(&reportR, &files[1])
	pair(&logR, &files[2])
	pair(&files[3], &configW)
	pair(&stdoutR, &stdoutW)
	pair(&stderrR, &stderrW)
	if err != nil {
		return jailRun{}, fmt.Errorf("creating jail pipes: %w", err)
	}
	// The configuration fits a pipe's buffer, so it can be written before
	// nsjail starts reading it.
	if len(config) > 60<<10 {
		return jailRun{}, errors.New("jail configuration too large for its pipe")
	}
	if _, err := io.WriteString(configW, config); err != nil {
		return jailRun{}, fmt.Errorf("writing jail configuration: %w", err)
	}
	_ = configW.Close()

	args := append([]string{"--config", fmt.Sprintf("/proc/self/fd/%d", fdConfig), "--"}, argv...)
	cmd := exec.Command(nsjail, args...)
	cmd.Env = []string{} // nsjail gets nothing of the service's environment
	cmd.Stdin = nil      // /dev/null: input() raises EOFError at once
	cmd.Stdout, cmd.Stderr = stdoutW, stderrW
	cmd.ExtraFiles = files[:]
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the service dies, nsjail dies, and with it the jail.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return jailRun{}, fmt.Errorf("starting nsjail: %w", err)
	}
	// Only the child keeps its ends; EOF then reaches our readers when the
	// jail's last process is gone.
	for _, f := range append(files[:], stdoutW, stderrW) {
		_ = f.Close()
	}

	var (
		run      jailRun
		killOnce sync.Once
		mu       sync.Mutex
	)
	kill := func(reason func()) {
		mu.Lock()
		reason()
		mu.Unlock()
		killOnce.Do(func() { _ = cmd.Process.Kill() })
	}
	timer := time.AfterFunc(cfg.Timeout, func() { kill(func() { run.TimedOut = true }) })
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
	read(stdoutR, cfg.MaxOutputBytes, &run.Stdout, func() { kill(func() { run.StdoutOverflow = true }) })
	read(reportR, cfg.MaxResultBytes+reportOverhead, &run.Report, func() {
		mu.Lock()
		run.ReportOverflow = true
		mu.Unlock()
	})
	read(logR, nsjailLogCap, &nsjailLog, nil)
	var stderrTail []byte
	read(stderrR, stderrCap, &stderrTail, nil)
	go func() {
		_, _ = scriptW.Write(script)
		_ = scriptW.Close()
	}()

	waitErr := cmd.Wait()
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		return jailRun{}, fmt.Errorf("waiting for nsjail: %w", waitErr)
	}
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		for _, r := range []*os.File{stdoutR, reportR, logR, stderrR} {
			_ = r.SetReadDeadline(time.Now())
		}
		<-done
	}

	mu.Lock()
	defer mu.Unlock()
	run.NsjailLog = string(nsjailLog)
	if len(run.NsjailLog) == 0 {
		// nsjail writes to stderr until it has read its configuration.
		run.NsjailLog = string(stderrTail)
	}
	parseNsjailLog(&run)
	if err := ctx.Err(); err != nil && !run.TimedOut {
		return jailRun{}, fmt.Errorf("execution cancelled: %w", context.Cause(ctx))
	}
	return run, nil
}

// readCapped reads r to EOF (or its read deadline), keeping at most limit
// bytes and discarding the rest, so a writer is never blocked. overflow, if
// set, is called once, as soon as the limit is passed.
func readCapped(r io.Reader, limit int, overflow func()) []byte {
	var buf bytes.Buffer
	chunk := make([]byte, 32<<10)
	over := false
	for {
		n, err := r.Read(chunk)
		if n > 0 {
			if room := limit - buf.Len(); n > room {
				n = max(room, 0)
				if !over && overflow != nil {
					overflow()
				}
				over = true
			}
			buf.Write(chunk[:n])
		}
		if err != nil {
			return buf.Bytes()
		}
	}
}

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
