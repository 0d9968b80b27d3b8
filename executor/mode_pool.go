package executor

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// Pool mode: every execution still gets a jail and an interpreter of its
// own, exactly as in cold mode, but the jail is started ahead of its script
// with numpy and pandas already imported, and discarded after one use. It
// saves the script its wait; it does not save the CPU a fresh interpreter
// costs, so throughput stays near cold mode's.
//
// A jail started ahead has the service's memory limit; an execution that
// asks for less gets it lowered first. When the preloaded interpreter alone
// holds more than that, the execution runs in a jail started for it without
// the preload, as in cold mode, where its own imports count against its
// limit as they would there.

// poolSandbox runs every execution in a jail of its own, started ahead.
type poolSandbox struct {
	pool *warmPool
	// preloaded starts the jails started ahead, fresh those started for
	// one execution; both take their outside uids from uids.
	preloaded, fresh jailStarter
	uids             uidPool
	seq              atomic.Int64
}

// preloaded is pool mode's change to the jail spec: the harness imports
// numpy and pandas before it reads its script, and the jail may wait for
// that script up to maxIdle.
func preloaded(s *jailSpec) { s.Preload, s.MaxIdle = true, maxIdle }

func newPoolSandbox(nsjail string, spec jailSpec, groups cgroups, cfg Config) *poolSandbox {
	fresh := jailStarter{nsjail: nsjail, spec: spec, groups: groups, cfg: cfg}
	ahead := fresh
	ahead.adapt = preloaded
	p := &poolSandbox{
		preloaded: ahead,
		fresh:     fresh,
		// A jail alive, waiting or running, holds its outside uid.
		uids: newUIDPool(spec.IDs.pool()),
	}
	p.pool = newWarmPool(cfg.Concurrency, func() (*jail, error) { return p.start(p.preloaded, serviceLimits(cfg)) })
	return p
}

// start starts a jail with starter under lim, with an outside uid of its
// own for as long as it lives.
func (p *poolSandbox) start(starter jailStarter, lim limits) (*jail, error) {
	uid := p.uids.take()
	j, err := starter.start(fmt.Sprintf("pool-%d", p.seq.Add(1)), uid, lim)
	if err != nil {
		p.uids.give(uid)
		return nil, err
	}
	j.done = func() { p.uids.give(uid) }
	return j, nil
}

func (p *poolSandbox) run(ctx context.Context, x execution) (jailRun, error) {
	j, err := p.pool.take(ctx)
	if err != nil {
		return jailRun{}, err
	}
	if err := j.fit(x.limits); errors.Is(err, errOverMemoryLimit) {
		// Discarded first: its outside uid is the fresh jail's to take.
		_ = j.discard()
		if j, err = p.start(p.fresh, x.limits); err != nil {
			return jailRun{}, err
		}
	}
	return j.finish(ctx, x, p.preloaded.cfg)
}

func (p *poolSandbox) warmCgroups() map[string]bool { return p.pool.cgroupNames() }

func (p *poolSandbox) isolation() Isolation {
	return jailIsolation(p.preloaded.groups.kind, p.preloaded.spec.IDs.describe(ModePool))
}

func (p *poolSandbox) close() error { return p.pool.close() }
