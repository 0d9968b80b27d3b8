package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCheckURLAllowsOnlyLoopback(t *testing.T) {
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://[::1]:8080", true},
		{"http://localhost:8080", true},
		{"https://127.0.0.1:8080", false},
		{"http://127.0.0.2:8080", false},
		{"http://10.0.0.1:8080", false},
		{"http://example.com", false},
		{"http://169.254.169.254", false},
		{"http://0.0.0.0:8080", false},
		{"http://localhost.example.com", false},
	} {
		if err := CheckURL(tt.url); (err == nil) != tt.ok {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", tt.url, err, tt.ok)
		}
	}
}

func TestParseMixNamesOnlyKnownClasses(t *testing.T) {
	if _, err := ParseMix("good=1,evil=2"); err == nil {
		t.Error("ParseMix accepted an unknown class")
	}
	mix, err := ParseMix("good=6,failing=2,hostile=2")
	if err != nil || mix["hostile"] != 2 {
		t.Errorf("ParseMix = %v, %v", mix, err)
	}
}

// With a Duration, a run stops sending once it has passed, however large
// Count is, lets the requests in flight finish, and reports the scripts it
// sent.
func TestRunStopsAfterItsDuration(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		w.Header().Set("X-Execution-Id", "x")
		_, _ = w.Write([]byte(`{"result": 1, "stdout": ""}`))
	}))
	defer srv.Close()
	started := time.Now()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Count: 1 << 30, Duration: 200 * time.Millisecond, Concurrency: 4, Mix: map[string]int{"good": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(started); took > 5*time.Second {
		t.Errorf("the run took %v, want it to stop soon after 200ms", took)
	}
	if rep.Count == 0 || rep.Count != rep.Requests || rep.ByOutcome["200"] != rep.Requests || len(rep.Latencies) != rep.Requests {
		t.Errorf("report: %d scripts, %d requests, outcomes %v, %d latencies; want every script sent once and answered 200", rep.Count, rep.Requests, rep.ByOutcome, len(rep.Latencies))
	}
}
