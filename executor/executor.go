// Package executor runs Python scripts in nsjail sandboxes and reports what
// their main() returned.
//
// An Executor is built from a validated Config, proves its sandbox with a
// self-test (Start), and only then runs scripts: until the self-test passes,
// Run answers ErrSandboxUnavailable. Concurrency and queueing are bounded;
// beyond them Run answers ErrBusy at once.
//
// Every execution runs in a jail of its own, under the same namespaces,
// seccomp filter, uid mapping and limits whatever the mode (Mode): cold,
// pool and fork differ only in what they start before the script arrives.
// Start picks the fastest mode whose self-test passes, unless Config.Mode
// names one. A session (StartSession, fork mode only) keeps one jail's
// interpreter between the cells it runs.
//
// This package is what a caller needs: the configuration (config.go), the
// rules a request keeps (request.go), the types of a request and its
// answer (api.go, errors.go) and the Executor. The engine behind it, the
// jails, the three modes and the judging of what a jail produced, is
// package jail under executor/internal, beside the leaf packages of the
// policies every jail shares (seccomp, uids, cgroups, hosttree).
package executor

import (
	"context"

	"github.com/pyexec/pyexec/executor/internal/jail"
	"github.com/pyexec/pyexec/internal/leakcheck"
)

// Executor runs scripts, each in a sandbox of its own.
type Executor struct {
	cfg Config
	eng *jail.Engine
}

// New prepares an executor. It validates cfg and does no I/O; Start sets the
// sandbox up and proves it.
func New(cfg Config) (*Executor, error) {
	eng, err := jail.New(cfg)
	if err != nil {
		return nil, err
	}
	return &Executor{cfg: cfg, eng: eng}, nil
}

// Health reports readiness, mode, isolation and versions. It is not ready
// while the self-test has not passed, and while the sandbox cannot start
// jails: a fork server being replaced, starts failing again and again.
func (e *Executor) Health() Health { return e.eng.Health() }

// Start sets the sandbox up and runs the self-test: real scripts through the
// full sandbox that check, from inside, the isolation it promises. Until it
// passes, Run refuses to run anything. The error says why it failed.
func (e *Executor) Start(ctx context.Context) error { return e.eng.Start(ctx) }

// Run validates the request (request.go), waits for a slot (or answers
// ErrBusy when the queue is full) and runs it in a fresh sandbox.
func (e *Executor) Run(ctx context.Context, req Request) (Result, error) {
	if err := e.validate(req); err != nil {
		return Result{}, err
	}
	return e.eng.Run(ctx, req)
}

// Shutdown stops taking executions, lets running ones finish until ctx is
// done, then kills what is left and removes the executor's cgroups. Nothing
// it started survives it.
func (e *Executor) Shutdown(ctx context.Context) error { return e.eng.Shutdown(ctx) }

func init() {
	// The tests' check that nothing is left behind (testsupport's
	// AssertNothingLeft) asks the engine, which alone can tell a warm
	// jail's cgroup from one an execution left; it is no part of the API.
	leakcheck.SetExecutorLeftovers(func(x any) []string { return x.(*Executor).eng.Leftovers() })
}
