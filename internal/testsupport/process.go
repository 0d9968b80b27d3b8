package testsupport

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/leakcheck"
)

// NameProcess is Python that names the calling process, and the children it
// forks afterwards, so that a test can find them from the host with
// leakcheck.DescendantsNamed. The kernel keeps 15 bytes of a name.
func NameProcess(name string) string {
	return fmt.Sprintf("import ctypes as _ct\n_ct.CDLL(None).prctl(15, %q.encode(), 0, 0, 0)  # PR_SET_NAME\n", name)
}

// SettledDescendants waits until the number of pid's descendant processes
// holds still (modes that keep warm sandboxes refill them after each
// execution) and returns it.
func SettledDescendants(t testing.TB, pid int) int {
	t.Helper()
	return Settled(t, "the service's process count", 300*time.Millisecond, 30*time.Second,
		func() []int { return []int{len(leakcheck.Descendants(pid))} })[0]
}

// Settled samples until sample has returned the same counts for steady,
// and returns them, failing t if they have not settled within limit.
func Settled(t testing.TB, what string, steady, limit time.Duration, sample func() []int) []int {
	t.Helper()
	var last []int
	since := time.Now()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if counts := sample(); !slices.Equal(counts, last) {
			last, since = counts, time.Now()
		} else if time.Since(since) >= steady {
			return last
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never settled (last %v)", what, last)
	return nil
}

// PollUntil polls cond until it holds, failing t if timeout passes first.
func PollUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
