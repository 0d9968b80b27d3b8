package executor

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

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
}

// preloaded is pool mode's change to the jail spec: the harness imports
// numpy and pandas before it reads its script, and the jail may wait for
// that script up to maxIdle.
func preloaded(s *jailSpec) { s.Preload, s.MaxIdle = true, maxIdle }

func newPoolSandbox(nsjail string, spec jailSpec, groups cgroups, cfg Config) *poolSandbox {
	p := &poolSandbox{jails: jailStarter{nsjail: nsjail, spec: spec, adapt: preloaded, groups: groups, cfg: cfg}}
	// A jail alive, waiting or running, holds its outside uid.
	uids := newUIDPool(spec.IDs.pool())
	var seq sync.Mutex
	n := 0
	start := func() (*jail, error) {
		uid := uids.take()
		seq.Lock()
		n++
		id := fmt.Sprintf("pool-%d", n)
		seq.Unlock()
		j, err := p.jails.start(id, uid, serviceLimits(cfg))
		if err != nil {
			uids.give(uid)
			return nil, err
		}
		j.done = func() { uids.give(uid) }
		return j, nil
	}
	p.pool = newWarmPool(cfg.Concurrency, start)
	return p
}

func (p *poolSandbox) run(ctx context.Context, x execution) (jailRun, error) {
	j, err := p.pool.take(ctx)
	if err != nil {
		return jailRun{}, err
	}
	if err := awaitPreload(ctx, j); err != nil {
		return jailRun{Cleanup: j.teardown}, err
	}
	return j.finish(ctx, x, p.jails.cfg)
}

// preloadTimeout bounds the wait for a jail's imports, on a loaded machine.
const preloadTimeout = 2 * time.Minute

// awaitPreload waits until the jail's harness has imported numpy and pandas
// (harness.py's PRELOADED on the report channel, which it consumes), so
// that what the jail holds is settled before its limits are fitted.
func awaitPreload(ctx context.Context, j *jail) error {
	r := j.ch.reportR
	_ = r.SetReadDeadline(time.Now().Add(preloadTimeout))
	stop := context.AfterFunc(ctx, func() { _ = r.SetReadDeadline(time.Now()) })
	defer stop()
	var b [1]byte
	_, err := io.ReadFull(r, b[:])
	_ = r.SetReadDeadline(time.Time{})
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("waiting for a started sandbox: %w", context.Cause(ctx))
	case err != nil:
		return fmt.Errorf("the jail's interpreter did not finish its imports: %w", err)
	case b[0] != harness.Preloaded:
		return fmt.Errorf("the jail's interpreter said %q, not that its imports are done", b[0])
	}
	return nil
}

func (p *poolSandbox) warmCgroups() map[string]bool { return p.pool.cgroupNames() }

func (p *poolSandbox) isolation() Isolation {
	return jailIsolation(p.jails.groups.kind, p.jails.spec.IDs.describe(ModePool))
}

func (p *poolSandbox) close() error { return p.pool.close() }
