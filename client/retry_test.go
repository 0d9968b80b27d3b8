package client

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"
)

var (
	busy               = answer{status: 503, header: map[string]string{"Retry-After": "1"}, body: `{"error": "Service busy, retry later", "error_type": "busy", "stdout": ""}`}
	sandboxUnavailable = answer{status: 503, header: map[string]string{"Retry-After": "10"}, body: `{"error": "Sandbox unavailable", "error_type": "sandbox_unavailable", "stdout": ""}`}
	ok                 = answer{status: 200, body: `{"result": {"answer": 4}, "stdout": ""}`}
)

// recordWaits makes c's waits instant and returns the waits it was asked
// for, so that backoff can be checked without spending its time.
func recordWaits(c *Client) func() []time.Duration {
	var mu sync.Mutex
	var waits []time.Duration
	c.retry.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		return ctx.Err()
	}
	return func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Duration(nil), waits...)
	}
}

func TestRetryUntilTheServiceAnswers(t *testing.T) {
	tests := []struct {
		name        string
		answers     []answer
		wantMinWait []time.Duration // each wait at least this (Retry-After)
	}{
		{"busy twice", []answer{busy, busy, ok}, []time.Duration{time.Second, time.Second}},
		{"sandbox unavailable once", []answer{sandboxUnavailable, ok}, []time.Duration{10 * time.Second}},
		{"a platform 429 without Retry-After", []answer{{status: 429, header: map[string]string{"Content-Type": "text/html"}, body: "Rate exceeded."}, ok}, []time.Duration{firstBackoff / 2}},
		{"a platform 503", []answer{{status: 503, header: map[string]string{"Content-Type": "text/html"}, body: "Service Unavailable"}, ok}, []time.Duration{firstBackoff / 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newFakeService(t, tt.answers...)
			c := newClient(t, svc.URL)
			waits := recordWaits(c)

			res, err := c.Execute(context.Background(), Request{Script: "s"})
			if err != nil {
				t.Fatalf("Execute = %v, want the success after retries", err)
			}
			if string(res.Value) != `{"answer": 4}` {
				t.Errorf("Value = %s, want the last answer's", res.Value)
			}
			if got := len(svc.requests()); got != len(tt.answers) {
				t.Errorf("%d requests, want %d", got, len(tt.answers))
			}
			got := waits()
			if len(got) != len(tt.wantMinWait) {
				t.Fatalf("waits = %v, want %d of them", got, len(tt.wantMinWait))
			}
			for i, w := range got {
				if w < tt.wantMinWait[i] {
					t.Errorf("wait %d = %v, want at least %v", i, w, tt.wantMinWait[i])
				}
			}
			// The body is sent whole each time.
			for i, r := range svc.requests() {
				if string(r.body) != `{"script":"s"}` {
					t.Errorf("request %d body = %s, want the request again", i, r.body)
				}
			}
		})
	}
}

func TestBackoffGrowsWithoutRetryAfter(t *testing.T) {
	p := retryPolicy{maxAttempts: 20, maxWait: time.Hour}
	for attempt := 1; attempt < 20; attempt++ {
		backoff := min(firstBackoff<<min(attempt-1, 10), maxBackoff)
		wait, ok := p.next(attempt, 0, 0)
		if !ok || wait < backoff/2 || wait > backoff {
			t.Errorf("next(%d) = %v, %v; want a wait in [%v, %v]", attempt, wait, ok, backoff/2, backoff)
		}
	}
}

func TestRetriesAreBounded(t *testing.T) {
	tests := []struct {
		name         string
		answer       answer
		wantType     string
		opts         []Option
		wantRequests int
	}{
		{"by attempts", busy, ErrorTypeBusy, []Option{WithRetry(3, time.Hour)}, 3},
		{"by the default attempts", busy, ErrorTypeBusy, nil, defaultRetry.maxAttempts},
		// Waits of 1 s (the Retry-After), 1 s, then at least 1 s: the third
		// would pass 2.5 s.
		{"by total wait", busy, ErrorTypeBusy, []Option{WithRetry(100, 2500*time.Millisecond)}, 3},
		{"by a Retry-After beyond the total wait", sandboxUnavailable, ErrorTypeSandboxUnavailable, []Option{WithRetry(5, 5*time.Second)}, 1},
		{"off with one attempt", busy, ErrorTypeBusy, []Option{WithRetry(1, time.Hour)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newFakeService(t, tt.answer)
			c := newClient(t, svc.URL, tt.opts...)
			recordWaits(c)

			_, err := c.Execute(context.Background(), Request{Script: "s"})
			var e *Error
			if !errors.As(err, &e) || e.Type != tt.wantType {
				t.Errorf("Execute = %v, want the last answer's *Error", err)
			}
			if got := len(svc.requests()); got != tt.wantRequests {
				t.Errorf("%d requests, want %d", got, tt.wantRequests)
			}
		})
	}
}

func TestNoWaitBeyondTheContextsDeadline(t *testing.T) {
	svc := newFakeService(t, sandboxUnavailable, ok)
	c := newClient(t, svc.URL)
	waits := recordWaits(c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, err := c.Execute(ctx, Request{Script: "s"})
	var e *Error
	if !errors.As(err, &e) || e.Type != ErrorTypeSandboxUnavailable {
		t.Errorf("Execute = %v, want sandbox_unavailable at once: its 10 s wait outlasts the context", err)
	}
	if got := waits(); len(got) != 0 {
		t.Errorf("waits = %v, want none", got)
	}
}

// The real wait, not a recorded one: the Retry-After is kept.
func TestRetryAfterIsWaitedFor(t *testing.T) {
	svc := newFakeService(t, busy, ok)
	start := time.Now()
	if _, err := newClient(t, svc.URL).Execute(context.Background(), Request{Script: "s"}); err != nil {
		t.Fatalf("Execute = %v, want success on the second attempt", err)
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("Execute took %v, want at least the Retry-After of 1s", elapsed)
	}
}

func TestCancellingDuringAWaitStopsAtOnce(t *testing.T) {
	svc := newFakeService(t, sandboxUnavailable)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()

	_, err := newClient(t, svc.URL).Execute(ctx, Request{Script: "s"})
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Execute took %v after cancel, want it to stop waiting at once", elapsed)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Execute = %v, want context.Canceled", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Type != ErrorTypeSandboxUnavailable {
		t.Errorf("Execute = %v, want the sandbox_unavailable answer kept in the error", err)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 7 ", 7 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{"99999999999999", 24 * time.Hour},
		{time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		h := http.Header{"Retry-After": {tt.value}}
		if got := retryAfter(h); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.value, got, tt.want)
		}
	}
	future := time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)
	if got := retryAfter(http.Header{"Retry-After": {future}}); got < 55*time.Second || got > time.Minute {
		t.Errorf("retryAfter(%q) = %v, want about a minute", future, got)
	}
}
