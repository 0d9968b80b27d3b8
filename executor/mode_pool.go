package executor

import (
	"context"
	"fmt"
	"sync"
)

// Pool mode: every execution still gets a jail and an interpreter of its
// own, exactly as in cold mode, but the jail is started ahead of its script
// with numpy and pandas already imported, and discarded after one use. It
// saves the script its wait; it does not save the CPU a fresh interpreter
// costs, so throughput stays near cold mode's.

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
	uids := newUIDPool(poolUIDBase, poolUIDCount(cfg.Concurrency))
	var seq sync.Mutex
	n := 0
	start := func() (*jail, error) {
		uid := uids.take()
		seq.Lock()
		n++
		id := fmt.Sprintf("pool-%d", n)
		seq.Unlock()
		j, err := p.jails.start(id, uid)
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
	return j.finish(ctx, x.script, p.jails.cfg)
}

func (p *poolSandbox) warmCgroups() map[string]bool { return p.pool.cgroupNames() }

func (p *poolSandbox) isolation() Isolation {
	return jailIsolation(p.jails.groups.kind, outsideUIDs(ModePool, p.jails.cfg.Concurrency))
}

func (p *poolSandbox) close() error { return p.pool.close() }
