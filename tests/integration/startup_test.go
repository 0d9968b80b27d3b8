//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/load"
	"github.com/pyexec/pyexec/internal/testsupport"
	"github.com/pyexec/pyexec/server"
)

// A fresh instance does not turn away what arrives while its first sandbox
// self-test runs: executions wait for it, up to server.DefaultSelfTestWait.

// slowNsjail is an nsjail that takes delay to start: the real one behind a
// pause, so that the first self-test (whose first step starts nsjail) runs
// at least that long.
func slowNsjail(t *testing.T, delay time.Duration) string {
	t.Helper()
	real := testsupport.ExecutorConfig(t, nil).NsjailPath
	path := filepath.Join(t.TempDir(), "nsjail")
	script := fmt.Sprintf("#!/bin/sh\nsleep %.1f\nexec %q \"$@\"\n", delay.Seconds(), real)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkSelfTestRuns fails t unless the service's first self-test still
// runs, so that what the test sends next arrives during it.
func checkSelfTestRuns(t *testing.T, b *testsupport.Binary) {
	t.Helper()
	resp, err := http.Get(b.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /healthz right after start = %d, want 503: the self-test ended before the test could send anything during it", resp.StatusCode)
	}
}

func TestAnExecutionDuringTheFirstSelfTestWaitsForIt(t *testing.T) {
	b := testsupport.StartBinary(t, nil)
	checkSelfTestRuns(t, b)
	start := time.Now()
	outcome, body := load.Execute(context.Background(), http.DefaultClient, b.URL, "def main():\n    return 'after the self-test'\n")
	if outcome != "200" || body != `{"result":"after the self-test","stdout":""}`+"\n" {
		t.Errorf("POST /execute during the first self-test = %s %s after %v, want 200 once it passed (within %v)",
			outcome, body, time.Since(start), server.DefaultSelfTestWait)
	}
}

func TestAnExecutionWaitsForTheFirstSelfTestNoLongerThanTheBound(t *testing.T) {
	const selfTestAtLeast = 8 * time.Second
	b := testsupport.StartBinary(t, map[string]string{"PYEXEC_NSJAIL": slowNsjail(t, selfTestAtLeast)})
	checkSelfTestRuns(t, b)
	start := time.Now()
	outcome, body := load.Execute(context.Background(), http.DefaultClient, b.URL, "def main():\n    return 1\n")
	took := time.Since(start)
	if outcome != "503 sandbox_unavailable" {
		t.Errorf("POST /execute during a self-test of %v or more = %s %s, want 503 sandbox_unavailable", selfTestAtLeast, outcome, body)
	}
	if took < server.DefaultSelfTestWait || took >= selfTestAtLeast {
		t.Errorf("POST /execute answered after %v, want the wait's bound %v (the self-test takes %v or more)", took, server.DefaultSelfTestWait, selfTestAtLeast)
	}
	// The self-test still passes, and then scripts run.
	b.Health(t, http.StatusOK)
	if outcome, body := load.Execute(context.Background(), http.DefaultClient, b.URL, "def main():\n    return 1\n"); outcome != "200" {
		t.Errorf("POST /execute after the self-test = %s %s, want 200", outcome, body)
	}
}
