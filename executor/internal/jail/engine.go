// Package jail is pyexec's engine: it runs each Python script in an nsjail
// sandbox of its own and judges what the sandbox produced. Package executor
// is its public face, which validates requests and hands them over.
//
// An Engine is built from a validated Config, proves its sandbox with a
// self-test (Start), and only then runs scripts: until the self-test passes,
// Run answers ErrSandboxUnavailable. Concurrency and queueing are bounded;
// beyond them Run answers ErrBusy at once.
//
// A jail is one execution's sandbox: user, mount, pid, net, ipc, uts and
// cgroup namespaces, a seccomp filter, an unprivileged outside uid, a cgroup
// (or rlimits) for memory and processes, a fresh /tmp. Every execution runs
// in a jail of its own under the same isolation whatever the mode (Mode);
// the three modes differ only in what they start before the script arrives:
//
//   - cold (mode_cold.go) starts a fresh nsjail and interpreter when the
//     script arrives;
//   - pool (mode_pool.go) starts them ahead, with numpy and pandas
//     imported, one per concurrency slot;
//   - fork (mode_fork.go) runs one long-lived interpreter with those imports
//     done (the fork server) in a jail of its own, and forks a process per
//     execution that isolates itself before user code runs; a second,
//     chart server (chartserver.go) has matplotlib ready for scripts that
//     draw, and sessions (session.go) keep a forked process between cells.
//
// Start picks the fastest mode whose self-test passes, unless Config.Mode
// names one.
//
// Where each part lives: engine.go admits executions and picks the mode;
// job.go is what the harness is given of a request; pool and fork mode
// share warmpool.go; jail.go starts nsjail and collects what a jail
// produced; jailspec.go describes a jail, validates that description and
// renders it as nsjail's configuration; result.go judges what a jail
// produced, treating it as untrusted; selftest.go proves the isolation from
// inside a jail. The leaf packages beside this one hold the policies every
// jail shares: seccomp (the seccomp rules, as kafel and as BPF), uids (the
// outside ids), cgroups (the per-execution cgroups, v1 or v2, or the rlimit
// fallback) and hosttree (the host files a jail holds, the interpreter's and
// the libraries it loads).
package jail

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/pyexec/pyexec/executor/internal/cgroups"
	"github.com/pyexec/pyexec/executor/internal/hosttree"
	"github.com/pyexec/pyexec/executor/internal/uids"
)

// Engine runs scripts, each in a sandbox of its own.
type Engine struct {
	cfg Config

	mu     sync.Mutex
	health Health
	box    sandbox
	groups cgroups.Hierarchy

	slots   chan int     // free slot numbers; a held slot is a running execution
	waiting atomic.Int64 // executions queued for a slot
	// ending counts the slots held by executions already answered whose
	// process is still ending: an execution may wait for one of them
	// beyond the queue's bound, as it would have found it free had the
	// answer waited for the end.
	ending    atomic.Int64
	closing   chan struct{} // closed, under mu, when Shutdown starts: no new executions
	hardCtx   context.Context
	hardStop  context.CancelFunc // kills running executions
	running   sync.WaitGroup
	teardowns sync.WaitGroup // sandboxes being removed after their answer
	// cleanupErrs are teardowns that failed after their execution was
	// answered (at most a few are kept).
	cleanupErrs      []error
	teardownFailures int64
}

// New prepares an engine. It validates cfg and does no I/O; Start sets the
// sandbox up and proves it.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	e := &Engine{
		cfg:     cfg,
		slots:   make(chan int, cfg.Concurrency),
		closing: make(chan struct{}),
		health:  Health{Reason: "self-test has not run", Mode: string(ModeCold)},
	}
	for i := 0; i < cfg.Concurrency; i++ {
		e.slots <- i
	}
	e.hardCtx, e.hardStop = context.WithCancel(context.Background())
	return e, nil
}

// Health reports readiness, mode, isolation and versions. It is not ready
// while the self-test has not passed, and while the sandbox cannot start
// jails: a fork server being replaced, starts failing again and again.
func (e *Engine) Health() Health {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.health
	if h.Ready && e.box != nil {
		if trouble := e.box.trouble(); trouble != "" {
			h.Ready, h.Reason = false, trouble
		}
	}
	h.Isolation.Namespaces = append([]string(nil), h.Isolation.Namespaces...)
	h.TeardownFailures = e.teardownFailures
	return h
}

// Start sets the sandbox up and runs the self-test: real scripts through the
// full sandbox that check, from inside, the isolation it promises. Until it
// passes, Run refuses to run anything. The error says why it failed.
func (e *Engine) Start(ctx context.Context) error {
	err := e.start(ctx)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.health.Ready = false
		e.health.Reason = err.Error()
		return err
	}
	e.health.Ready, e.health.Reason = true, ""
	return nil
}

func (e *Engine) start(ctx context.Context) error {
	select {
	case <-e.closing:
		return ErrBusy // shut down: nothing more is set up
	default:
	}
	if fi, err := os.Stat(e.cfg.NsjailPath); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("nsjail not found or not executable at %s (PYEXEC_NSJAIL)", e.cfg.NsjailPath)
	}
	facts, err := uids.ReadFacts()
	if err != nil {
		return err
	}
	ids, err := uids.Choose(facts, e.cfg.Concurrency)
	if err != nil {
		return err
	}
	interp, err := hosttree.Probe(ctx, e.cfg.PythonPath)
	if err != nil {
		return err
	}
	groups := cgroups.Detect(e.cfg.CgroupRoot)
	groups.Sweep()
	spec := baseSpec(interp, ids, e.cfg, groups.Kind())
	lib := interp.Libraries
	versions := Versions{
		Python: interp.Python, Pandas: lib["pandas"], Numpy: lib["numpy"],
		Matplotlib: lib["matplotlib"], Scipy: lib["scipy"], ScikitLearn: lib["scikit-learn"],
		Pyarrow: lib["pyarrow"], Openpyxl: lib["openpyxl"],
		Nsjail: hosttree.NsjailVersion(e.cfg.NsjailPath),
	}
	// The fastest mode whose self-test passes, unless one is configured.
	modes := []Mode{ModeFork, ModePool, ModeCold}
	if e.cfg.Mode != ModeAuto {
		modes = []Mode{e.cfg.Mode}
	}
	e.closeBox()
	var failed []string
	for _, mode := range modes {
		err := e.tryMode(ctx, mode, spec, groups, versions)
		if err == nil {
			e.mu.Lock()
			e.health.Fallback = strings.Join(failed, "; ")
			e.mu.Unlock()
			return nil
		}
		e.closeBox()
		failed = append(failed, fmt.Sprintf("%s mode: %v", mode, err))
	}
	return errors.New(strings.Join(failed, "; "))
}

// newSandbox sets up one mode's sandbox.
func (e *Engine) newSandbox(mode Mode, spec jailSpec, groups cgroups.Hierarchy) (sandbox, error) {
	switch mode {
	case ModeFork:
		f, err := newForkSandbox(e.cfg.NsjailPath, spec, groups, e.cfg, plainServer, e.proveReplacement)
		if err != nil {
			return nil, err
		}
		f.charts = newChartServer(e.cfg.NsjailPath, spec, groups, e.cfg, e.selfTest, e.proveReplacement)
		return f, nil
	case ModePool:
		return newPoolSandbox(e.cfg.NsjailPath, spec, groups, e.cfg), nil
	default:
		return newColdSandbox(e.cfg.NsjailPath, spec, groups, e.cfg), nil
	}
}

// tryMode sets the sandbox of one mode up and runs the self-test through it.
func (e *Engine) tryMode(ctx context.Context, mode Mode, spec jailSpec, groups cgroups.Hierarchy, versions Versions) error {
	box, err := e.newSandbox(mode, spec, groups)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.box, e.groups = box, groups
	e.health.Mode = string(mode)
	e.health.Isolation = box.isolation()
	e.health.Versions = versions
	e.mu.Unlock()
	return e.selfTest(ctx, box)
}

// closeBox stops the current sandbox, if there is one, and forgets it: a
// sandbox is closed once.
func (e *Engine) closeBox() {
	e.mu.Lock()
	box := e.box
	e.box = nil
	e.mu.Unlock()
	if box != nil {
		_ = box.close()
	}
}

// Run waits for a slot (or answers ErrBusy when the queue is full) and runs
// req in a fresh sandbox. req keeps the rules of a request: package
// executor's Run has applied them.
func (e *Engine) Run(ctx context.Context, req Request) (Result, error) {
	e.mu.Lock()
	ready, box := e.health.Ready, e.box
	e.mu.Unlock()
	if !ready {
		return Result{}, ErrSandboxUnavailable
	}
	return e.runIn(ctx, box, req, req.extended())
}

// runIn runs req in box once it has a slot. prepareOutputs gives the script
// an empty outputs/ to write to. req has been validated, or is the
// executor's own.
func (e *Engine) runIn(ctx context.Context, box sandbox, req Request, prepareOutputs bool) (Result, error) {
	return e.runAs(ctx, box, req, prepareOutputs, e.admit)
}

// proveReplacement runs the self-test through a replacement server's
// sandbox without waiting for a slot: the executions that hold the slots may
// be the ones waiting for that server. Slot 0 picks no uid in fork mode,
// whose processes all run as the server's.
func (e *Engine) proveReplacement(ctx context.Context, box sandbox) error {
	unadmitted := func(context.Context) (int, func(), error) { return 0, func() {}, nil }
	return e.selfTestWith(ctx, func(ctx context.Context, req Request) (Result, error) {
		return e.runAs(ctx, box, req, false, unadmitted)
	})
}

// runAs runs req in box in the slot admit gives it.
func (e *Engine) runAs(ctx context.Context, box sandbox, req Request, prepareOutputs bool, admit func(context.Context) (int, func(), error)) (Result, error) {
	lim := limitsOf(e.cfg, req)
	var rlimitAS int64
	if box.isolation().Limits == string(cgroups.Rlimit) {
		// The harness lowers the jail's address-space ceiling to what the
		// interpreter holds plus the limit, before any user code runs.
		rlimitAS = lim.memoryBytes
	}
	job, err := newJob(req, e.cfg, prepareOutputs, rlimitAS)
	if err != nil {
		return Result{}, err
	}
	slot, release, err := admit(ctx)
	if err != nil {
		return Result{}, err
	}
	if req.ID == "" {
		req.ID = uuid.NewString()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(e.hardCtx, cancel)
	defer stop()

	start := time.Now()
	run, err := box.run(ctx, execution{id: req.ID, job: job, slot: slot, limits: lim, draws: drawsCharts(req.Script)})
	if run.Cleanup != nil {
		// The execution's process may still be ending (its report is
		// complete and it has been killed), and its cgroup outlives it; both
		// are seen to after the answer, off the request's path. The slot
		// stays taken until no process of the execution is left, so that
		// the limit on concurrent executions (and a slot's uid) holds.
		gone := func() {}
		if run.Gone {
			release()
		} else {
			e.ending.Add(1)
			gone = func() {
				release()
				e.ending.Add(-1)
			}
		}
		e.teardowns.Add(1)
		go func() {
			defer e.teardowns.Done()
			if err := run.Cleanup(gone); err != nil {
				e.noteCleanupError(fmt.Errorf("execution %s: %w", req.ID, err))
			}
		}()
	} else {
		release()
	}
	if err == nil {
		var res Result
		res, err = judge(run, e.cfg, lim)
		res.Duration = time.Since(start)
		if err == nil || e.hardCtx.Err() == nil {
			return res, err
		}
	}
	if e.hardCtx.Err() != nil {
		// Shutdown's grace ran out and killed it: the script did not fail
		// and the service did not break; it is going away, and the client
		// may run the script again elsewhere.
		return Result{Duration: time.Since(start)}, fmt.Errorf("execution %s killed at shutdown: %w", req.ID, ErrBusy)
	}
	return Result{Duration: time.Since(start)}, fmt.Errorf("execution %s: %w", req.ID, err)
}

// admit takes a free slot, waiting in the bounded queue for one if needed.
func (e *Engine) admit(ctx context.Context) (int, func(), error) {
	// Under mu, with Shutdown's closing: an execution is either counted
	// before Shutdown waits for the running ones, or refused.
	e.mu.Lock()
	select {
	case <-e.closing:
		e.mu.Unlock()
		return 0, nil, ErrBusy
	default:
	}
	e.running.Add(1)
	e.mu.Unlock()
	take := func(slot int) (int, func(), error) {
		return slot, func() { e.slots <- slot; e.running.Done() }, nil
	}
	select {
	case slot := <-e.slots:
		return take(slot)
	default:
	}
	if e.waiting.Add(1) > int64(e.cfg.Queue)+e.ending.Load() {
		e.waiting.Add(-1)
		e.running.Done()
		return 0, nil, ErrBusy
	}
	defer e.waiting.Add(-1)
	select {
	case slot := <-e.slots:
		return take(slot)
	case <-ctx.Done():
		e.running.Done()
		return 0, nil, fmt.Errorf("waiting for a slot: %w", ctx.Err())
	case <-e.closing:
		e.running.Done()
		return 0, nil, ErrBusy
	}
}

// Shutdown stops taking executions, lets running ones finish until ctx is
// done, then kills what is left and removes the executor's cgroups. Nothing
// it started survives it.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	select {
	case <-e.closing:
	default:
		close(e.closing)
	}
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.running.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		e.hardStop()
		<-done
		err = fmt.Errorf("executions killed at shutdown: %w", ctx.Err())
	}
	e.hardStop()
	// Every execution has returned, so every teardown has been started.
	e.teardowns.Wait()
	e.mu.Lock()
	e.health.Ready, e.health.Reason = false, "shutting down"
	e.mu.Unlock()
	e.closeBox()
	e.mu.Lock()
	defer e.mu.Unlock()
	return errors.Join(err, e.groups.Release())
}

// Leftovers lists the cgroups of this executor that still exist. Between
// executions there must be none but those of warm processes, and after
// Shutdown none at all, the executor's own parent included.
func (e *Engine) Leftovers() []string {
	e.mu.Lock()
	groups, box := e.groups, e.box
	e.mu.Unlock()
	// The cgroups of jails started ahead, waiting for a script, are not
	// left over: they belong to the next executions.
	var warm map[string]bool
	if box != nil {
		warm = box.warmCgroups()
	}
	var found []string
	for _, path := range groups.Leftovers() {
		isWarm := false
		for name := range warm {
			if strings.HasSuffix(path, "/"+name) {
				isWarm = true
			}
		}
		if !isWarm {
			found = append(found, path)
		}
	}
	select {
	case <-e.closing:
		found = append(found, groups.Parents()...)
	default:
	}
	e.mu.Lock()
	for _, err := range e.cleanupErrs {
		found = append(found, "teardown failed: "+err.Error())
	}
	e.mu.Unlock()
	return found
}

// noteCleanupError keeps a failed teardown for Leftovers: it happens after
// the execution has been answered, so there is no caller to return it to.
func (e *Engine) noteCleanupError(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.teardownFailures++
	if len(e.cleanupErrs) < 16 {
		e.cleanupErrs = append(e.cleanupErrs, err)
	}
}
