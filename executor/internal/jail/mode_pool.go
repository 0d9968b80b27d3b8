package jail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pyexec/pyexec/executor/internal/cgroups"
	"github.com/pyexec/pyexec/executor/internal/uids"
	"github.com/pyexec/pyexec/harness"
)

// Pool mode: every execution still gets a jail and an interpreter of its
// own, exactly as in cold mode, but the jail is started ahead of its script
// with numpy and pandas already imported, and discarded after one use. It
// saves the script its wait; it does not save the CPU a fresh interpreter
// costs, so throughput stays near cold mode's.
//
// A jail started ahead has the service's memory limit; for an execution
// that asks for less, it is tightened before the script is sent
// (jail.fit), counting from what the preloaded interpreter holds once its
// imports are done, which the harness says on its report channel.

// poolSandbox runs every execution in a jail of its own, started ahead.
type poolSandbox struct {
	pool  *warmPool
	jails jailStarter
	// firstImports is how long the first jail's imports took (0 before
	// any finished): what the machine needs, which bounds the later ones.
	firstImports atomic.Int64
	// closing ends the waits for jails' imports when the pool closes.
	closing     context.Context
	stopImports context.CancelFunc
}

// preloaded is pool mode's change to the jail spec: the harness imports
// numpy and pandas before it reads its script, and the jail may wait for
// that script up to maxIdle.
func preloaded(s *jailSpec) { s.Preload, s.MaxIdle = true, maxIdle }

func newPoolSandbox(nsjail string, spec jailSpec, groups cgroups.Hierarchy, cfg Config) *poolSandbox {
	p := &poolSandbox{jails: jailStarter{nsjail: nsjail, spec: spec, adapt: preloaded, groups: groups, cfg: cfg}}
	p.closing, p.stopImports = context.WithCancel(context.Background())
	// A jail alive, waiting or running, holds its outside uid.
	free := uids.NewPool(spec.IDs.Pool())
	var seq sync.Mutex
	n := 0
	start := func() (*jail, error) {
		uid := free.Take()
		seq.Lock()
		n++
		id := fmt.Sprintf("pool-%d", n)
		seq.Unlock()
		j, err := p.jails.start(id, uid, serviceLimits(cfg))
		if err != nil {
			free.Give(uid)
			return nil, err
		}
		j.done = func() { free.Give(uid) }
		began := time.Now()
		if err := awaitPreload(p.closing, j, p.importBound()); err != nil {
			if p.closing.Err() != nil {
				return nil, errors.Join(err, j.discard())
			}
			cfg.notify(Event{Warning: true, Message: fmt.Sprintf("pool jail %s killed, to be replaced: %v", id, err)})
			return nil, errors.Join(err, j.discard())
		}
		p.firstImports.CompareAndSwap(0, int64(time.Since(began)))
		return j, nil
	}
	p.pool = newWarmPool(cfg.Concurrency, start)
	return p
}

func (p *poolSandbox) run(ctx context.Context, x execution) (jailRun, error) {
	j, err := p.pool.take(ctx, x.limits.timeout+sandboxWaitMargin)
	if err != nil {
		return jailRun{}, err
	}
	return j.finish(ctx, x, p.jails.cfg)
}

// preloadTimeout bounds a jail's imports: they take well under a second,
// and a few seconds on a loaded machine, so a jail silent this long is hung
// or stopped, and is killed and replaced. On a machine where the first
// jail's imports took longer than a quarter of it (an emulated one), the
// bound is four times theirs; the first jail has serverStartTimeout.
const preloadTimeout = 15 * time.Second

// importBound is how long the next jail's imports may take.
func (p *poolSandbox) importBound() time.Duration {
	first := time.Duration(p.firstImports.Load())
	if first == 0 {
		return serverStartTimeout
	}
	return max(preloadTimeout, 4*first)
}

// awaitPreload waits until the jail's harness has imported numpy and pandas
// (harness.py's PRELOADED on the report channel, which it consumes), so
// that what the jail holds is settled before its limits are fitted, and
// only jails that answer are handed to executions.
func awaitPreload(ctx context.Context, j *jail, bound time.Duration) error {
	r := j.ch.reportR
	_ = r.SetReadDeadline(time.Now().Add(bound))
	stop := context.AfterFunc(ctx, func() { _ = r.SetReadDeadline(time.Now()) })
	defer stop()
	var b [1]byte
	_, err := io.ReadFull(r, b[:])
	_ = r.SetReadDeadline(time.Time{})
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("the pool closed while the jail's interpreter imported: %w", ErrBusy)
	case err != nil:
		return fmt.Errorf("the jail's interpreter did not finish its imports: %w", err)
	case b[0] != harness.Preloaded:
		return fmt.Errorf("the jail's interpreter said %q, not that its imports are done", b[0])
	}
	return nil
}

func (p *poolSandbox) warmCgroups() map[string]bool { return p.pool.cgroupNames() }

func (p *poolSandbox) isolation() Isolation {
	return jailIsolation(p.jails.groups.Kind(), p.jails.spec.IDs.Describe(string(ModePool)))
}

func (p *poolSandbox) trouble() string { return p.pool.trouble() }

func (p *poolSandbox) close() error {
	p.stopImports()
	return p.pool.close()
}
