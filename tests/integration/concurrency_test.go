//go:build integration

package integration

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// Executions at once and in the queue: each answered with its own outcome,
// and beyond the queue, busy.

func TestParallelRequestsAreEachAnsweredCorrectly(t *testing.T) {
	// Room for all of them: this is about correctness, not admission.
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_QUEUE": "64"})
	type job struct {
		script     string
		wantStatus int
		wantType   string
		wantResult string
		wantStdout string
	}
	var jobs []job
	for i := 0; i < 20; i++ {
		switch i % 5 {
		case 0:
			jobs = append(jobs, job{
				script:     fmt.Sprintf("def main():\n    print('job %d')\n    return {'job': %d}\n", i, i),
				wantStatus: 200, wantResult: fmt.Sprintf(`{"job":%d}`, i), wantStdout: fmt.Sprintf("job %d", i),
			})
		case 1:
			jobs = append(jobs, job{
				script:     fmt.Sprintf("import numpy as np\n\ndef main():\n    return int(np.arange(%d).sum())\n", i),
				wantStatus: 200, wantResult: fmt.Sprint(i * (i - 1) / 2),
			})
		case 2:
			jobs = append(jobs, job{
				script:     fmt.Sprintf("def main():\n    print('failing %d')\n    raise ValueError('job %d')\n", i, i),
				wantStatus: 400, wantType: "exception", wantStdout: fmt.Sprintf("failing %d", i),
			})
		case 3:
			jobs = append(jobs, job{
				script:     fmt.Sprintf("import time\n\ndef main():\n    time.sleep(0.3)\n    with open('/tmp/mine', 'w') as f:\n        f.write('%d')\n    time.sleep(0.3)\n    with open('/tmp/mine') as f:\n        return f.read()\n", i),
				wantStatus: 200, wantResult: fmt.Sprintf(`"%d"`, i),
			})
		case 4:
			jobs = append(jobs, job{
				script:     fmt.Sprintf("def run():\n    return %d\n", i),
				wantStatus: 400, wantType: "no_main",
			})
		}
	}
	answers := make([]testsupport.Response, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = ts.Execute(t, j.script)
		}()
	}
	wg.Wait()
	for i, j := range jobs {
		r := answers[i]
		if r.Status != j.wantStatus || r.ErrorType != j.wantType || (j.wantResult != "" && string(r.Result) != j.wantResult) || deref(r.Stdout) != j.wantStdout {
			t.Errorf("job %d: POST /execute %q = %d %s, want %d error_type %q result %s stdout %q",
				i, j.script, r.Status, testsupport.Clip(r.Raw), j.wantStatus, j.wantType, j.wantResult, j.wantStdout)
		}
	}
	ids := map[string]bool{}
	for i, r := range answers {
		id := r.Header.Get("X-Execution-Id")
		if ids[id] {
			t.Errorf("job %d: X-Execution-Id %s given to two responses", i, id)
		}
		ids[id] = true
	}
}

func TestRequestsBeyondTheQueueAreBusy(t *testing.T) {
	// One slot and two places in the queue: of six sleepers sent at once,
	// three are run and three are turned away at once.
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_CONCURRENCY": "1", "PYEXEC_QUEUE": "2"})
	const sent, admitted = 6, 3
	answers := make([]testsupport.Response, sent)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = ts.Execute(t, fmt.Sprintf("import time\n\ndef main():\n    time.sleep(1.5)\n    return %d\n", i))
		}()
	}
	wg.Wait()
	ok, busy := 0, 0
	for i, r := range answers {
		switch {
		case r.Status == http.StatusOK && string(r.Result) == fmt.Sprint(i):
			ok++
		case r.Status == http.StatusServiceUnavailable && r.ErrorType == "busy":
			busy++
			checkFailure(t, "beyond the queue", r, failure{503, "busy", "Service busy, retry later"})
			if r.Header.Get("Retry-After") == "" {
				t.Errorf("request %d: busy answer without Retry-After: %v", i, r.Header)
			}
		default:
			t.Errorf("request %d: POST /execute = %d %s, want 200 %d or 503 busy", i, r.Status, testsupport.Clip(r.Raw), i)
		}
	}
	if ok != admitted || busy != sent-admitted {
		t.Errorf("of %d requests at once with 1 slot and a queue of 2: %d answered, %d busy; want %d and %d",
			sent, ok, busy, admitted, sent-admitted)
	}
}
