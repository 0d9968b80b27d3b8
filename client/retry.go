package client

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Backoff between attempts: it starts at firstBackoff and doubles up to
// maxBackoff. A longer Retry-After wins over it.
const (
	firstBackoff = 500 * time.Millisecond
	maxBackoff   = 10 * time.Second
)

// retryPolicy bounds how often and how long Execute retries.
type retryPolicy struct {
	maxAttempts int           // requests in all, the first included
	maxWait     time.Duration // total time spent waiting between them
	sleep       func(context.Context, time.Duration) error
}

var defaultRetry = retryPolicy{maxAttempts: 5, maxWait: 30 * time.Second, sleep: sleep}

// WithRetry bounds the retries of answers that say the script was not run
// (busy, sandbox_unavailable, or a 429 or 503 of the platform in front of
// the service): at most maxAttempts requests in all, the
// first included, and at most maxWait spent waiting between them.
// maxAttempts of 1 or less turns retrying off. The default is 5 attempts
// and 30 seconds; the service asks for 1 second after busy and 10 after
// sandbox_unavailable.
func WithRetry(maxAttempts int, maxWait time.Duration) Option {
	return func(o *options) {
		o.retry.maxAttempts, o.retry.maxWait = maxAttempts, maxWait
	}
}

// next is how long to wait after the given attempt failed, with waited
// spent waiting so far, and whether to try again at all.
func (p retryPolicy) next(attempt int, waited, retryAfter time.Duration) (time.Duration, bool) {
	if attempt >= p.maxAttempts {
		return 0, false
	}
	backoff := maxBackoff
	if attempt <= 10 { // beyond, the shift would pass maxBackoff anyway
		backoff = min(firstBackoff<<(attempt-1), maxBackoff)
	}
	// Jitter keeps clients that were turned away together from coming
	// back together; the fixed half keeps the wait growing.
	wait := backoff/2 + rand.N(backoff/2+1)
	wait = max(wait, retryAfter)
	if waited+wait > p.maxWait {
		return 0, false
	}
	return wait, true
}

// sleep waits for d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryAfter is the wait a Retry-After header asks for, in seconds or as an
// HTTP date; 0 when absent or unreadable.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		// Clamped so that the multiplication cannot overflow; a day is
		// beyond any sensible retry budget already.
		return time.Duration(min(max(secs, 0), 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
