package testsupport

import (
	"fmt"
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
	last, since := -1, time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		n := len(leakcheck.Descendants(pid))
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > 300*time.Millisecond {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the service's process count never settled (last %d)", last)
	return 0
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
