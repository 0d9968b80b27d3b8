package cgroups

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Pool keeps the cgroups of executions whose processes are gone for
// the next executions: reusing one costs a few reads and writes where
// making one and removing it costs a directory in each hierarchy (with its
// control files) and a removal that waits for the kernel to let go of the
// last process. A cgroup is reused only once nothing is charged to it any
// more; one idle for idleLimit is removed, and the pool keeps at most
// maxIdle, so that it holds what the executions of the last moments needed,
// not what a burst did.
type Pool struct {
	groups  Hierarchy
	prefix  string // of the names of its cgroups
	maxIdle int    // the most idle cgroups it keeps

	mu       sync.Mutex
	idle     []idleCgroup // oldest first
	made     int
	trimming *time.Timer // pending trim, if any
	closed   bool
}

// Made returns how many cgroups the pool has created.
func (p *Pool) Made() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.made
}

type idleCgroup struct {
	e     *Exec
	since time.Time
}

// idleLimit is how long a cgroup may stay idle in the pool.
const idleLimit = 5 * time.Second

// freshTries is how many of the oldest idle cgroups a take checks.
const freshTries = 4

// NewPool makes a pool that keeps at most maxIdle idle cgroups.
func NewPool(groups Hierarchy, prefix string, maxIdle int) *Pool {
	return &Pool{groups: groups, prefix: prefix, maxIdle: maxIdle}
}

// Take returns a cgroup with no process and nothing charged to it, with the
// given limits: an idle one that is fresh again, or a new one.
func (p *Pool) Take(memBytes int64, procs int) (*Exec, error) {
	p.mu.Lock()
	// The oldest idle cgroups are the likeliest to be fresh. One can stay
	// charged for a while (the kernel frees what a network namespace held
	// in a work queue of its own), so a few are tried, not only the first.
	var ready *Exec
	for i := 0; i < min(len(p.idle), freshTries); i++ {
		if p.idle[i].e.fresh() {
			ready = p.idle[i].e
			p.idle = slices.Delete(p.idle, i, i+1)
			break
		}
	}
	if ready == nil {
		p.made++
	}
	id := fmt.Sprintf("%s-%d", p.prefix, p.made)
	p.mu.Unlock()
	if ready != nil {
		if err := ready.setLimits(memBytes, procs); err != nil {
			return nil, errors.Join(fmt.Errorf("setting the limits of cgroup %s: %w", ready.name, err), ready.Remove())
		}
		return ready, nil
	}
	e, err := p.groups.Create(id, memBytes, procs)
	if err != nil {
		return nil, err
	}
	e.pool = p
	return e, nil
}

// put takes back a cgroup whose execution's processes have all been reaped,
// or removes it if a process is left or the pool is closed.
func (p *Pool) put(e *Exec) error {
	if !e.drain() {
		return e.Remove()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return e.Remove()
	}
	p.idle = append(p.idle, idleCgroup{e, time.Now()})
	var excess *Exec
	if len(p.idle) > p.maxIdle {
		// A burst made more than the pool keeps: the oldest goes.
		excess, p.idle = p.idle[0].e, p.idle[1:]
	}
	if p.trimming == nil {
		p.trimming = time.AfterFunc(idleLimit, p.trim)
	}
	p.mu.Unlock()
	if excess != nil {
		return excess.Remove()
	}
	return nil
}

// trim removes the cgroups idle for idleLimit, and comes back for the rest
// when the oldest of them will be.
func (p *Pool) trim() {
	p.mu.Lock()
	var old []*Exec
	for len(p.idle) > 0 && time.Since(p.idle[0].since) >= idleLimit {
		old = append(old, p.idle[0].e)
		p.idle = p.idle[1:]
	}
	p.trimming = nil
	if len(p.idle) > 0 && !p.closed {
		p.trimming = time.AfterFunc(idleLimit-time.Since(p.idle[0].since), p.trim)
	}
	p.mu.Unlock()
	for _, e := range old {
		_ = e.Remove() // one that cannot be removed shows in Leftovers
	}
}

// IdleNames names the idle cgroups: they belong to the next executions, so
// they are not left over.
func (p *Pool) IdleNames() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := map[string]bool{}
	for _, c := range p.idle {
		names[c.e.name] = true
	}
	return names
}

// Close removes the idle cgroups; those still in use are removed when they
// come back.
func (p *Pool) Close() error {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	if p.trimming != nil {
		p.trimming.Stop()
		p.trimming = nil
	}
	p.mu.Unlock()
	var errs []error
	for _, c := range idle {
		errs = append(errs, c.e.Remove())
	}
	return errors.Join(errs...)
}
