package leakcheck

// What an executor left can be told only by the executor itself: a cgroup
// of a jail started ahead, waiting for its script, looks on the host like
// one an execution left. Package executor gives its account here rather
// than in its public API, so that only this module's tests ask for it.

// executorLeftovers is package executor's account (SetExecutorLeftovers).
var executorLeftovers func(executor any) []string

// SetExecutorLeftovers is how package executor, at its initialization,
// gives ExecutorLeftovers its account; nothing else calls it.
func SetExecutorLeftovers(account func(executor any) []string) {
	executorLeftovers = account
}

// ExecutorLeftovers lists what x, an *executor.Executor, left: its cgroups
// that still exist but those of jails started ahead, waiting for a script
// (they belong to the next executions); after its Shutdown its own parent
// cgroups too; and the teardowns that failed after their execution was
// answered. Between executions there must be none, and after Shutdown none
// at all.
func ExecutorLeftovers(x any) []string {
	if executorLeftovers == nil {
		return []string{"package executor gave no account of its leftovers"}
	}
	return executorLeftovers(x)
}
