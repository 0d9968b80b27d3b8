package jail

import (
	"context"

	"github.com/pyexec/pyexec/executor/internal/cgroups"
)

// Cold mode: every execution gets a fresh nsjail and a fresh interpreter,
// started when its script arrives. It is the slowest mode and the simplest:
// nothing runs between executions, and it needs no cgroup (without one,
// rlimits hold the limits; see jailConfig).

// coldSandbox starts a fresh nsjail and interpreter for every execution.
type coldSandbox struct {
	jails jailStarter
}

func newColdSandbox(nsjail string, spec jailSpec, groups cgroups.Hierarchy, cfg Config) *coldSandbox {
	return &coldSandbox{jails: jailStarter{nsjail: nsjail, spec: spec, groups: groups, cfg: cfg}}
}

// run starts the execution's jail as its slot's outside uid, so that no two
// executions running at once share one.
func (c *coldSandbox) run(ctx context.Context, x execution) (jailRun, error) {
	j, err := c.jails.start(x.id, c.jails.spec.IDs.Cold(x.slot), x.limits)
	if err != nil {
		return jailRun{}, err
	}
	return j.finish(ctx, x, c.jails.cfg)
}

// warmCgroups is empty: no jail waits for a script.
func (c *coldSandbox) warmCgroups() map[string]bool { return nil }

func (c *coldSandbox) isolation() Isolation {
	return jailIsolation(c.jails.groups.Kind(), c.jails.spec.IDs.Describe(string(ModeCold)))
}

// trouble is "": a failed start fails only its own execution.
func (c *coldSandbox) trouble() string { return "" }

// close has nothing to stop.
func (c *coldSandbox) close() error { return nil }
