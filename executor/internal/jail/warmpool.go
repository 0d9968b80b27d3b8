package jail

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// A warm pool keeps jails started ahead of their scripts, used once each:
// pool mode's (a fresh nsjail each) and fork mode's (a process of the fork
// server each).

// maxIdle is how long a started jail may wait for its script before it is
// replaced.
const maxIdle = 10 * time.Minute

// warmPool keeps jails started ahead of their scripts: one filler per warm
// jail starts it and hands it over, then starts the next.
type warmPool struct {
	start func() (*jail, error)
	ready chan *jail
	stop  chan struct{}
	wg    sync.WaitGroup

	mu       sync.Mutex
	waiting  map[*jail]bool // started, not yet taken
	failures int            // consecutive failed starts
	lastErr  error
}

func newWarmPool(size int, start func() (*jail, error)) *warmPool {
	p := &warmPool{start: start, ready: make(chan *jail), stop: make(chan struct{}), waiting: map[*jail]bool{}}
	for i := 0; i < size; i++ {
		p.wg.Add(1)
		go p.fill()
	}
	return p
}

func (p *warmPool) fill() {
	defer p.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		j, err := p.start()
		p.mu.Lock()
		if err != nil {
			p.failures++
			p.lastErr = err
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		p.failures, p.lastErr = 0, nil
		p.waiting[j] = true
		p.mu.Unlock()
		backoff = 50 * time.Millisecond
		if !p.handOver(j) {
			return
		}
	}
}

// deadCheckInterval is how often a jail waiting to be taken is checked: one
// that died meanwhile (killed from outside, or with its server) is replaced
// rather than kept until an execution takes it.
const deadCheckInterval = time.Second

// handOver waits until an execution takes j, or j dies (it is discarded),
// and says whether the filler goes on: false once the pool stops.
func (p *warmPool) handOver(j *jail) bool {
	check := time.NewTicker(deadCheckInterval)
	defer check.Stop()
	for {
		select {
		case p.ready <- j:
			return true
		case <-p.stop:
			p.forget(j)
			_ = j.discard()
			return false
		case <-check.C:
			if !j.proc.alive() {
				p.forget(j)
				_ = j.discard()
				return true
			}
		}
	}
}

func (p *warmPool) forget(j *jail) {
	p.mu.Lock()
	delete(p.waiting, j)
	p.mu.Unlock()
}

// sandboxWaitMargin is how much longer than its own timeout an execution
// may wait for a started jail before it answers sandbox_unavailable.
const sandboxWaitMargin = 5 * time.Second

// failuresBeforeTrouble is how many starts in a row must fail before the
// pool says it cannot start jails: executions fail at once rather than
// wait, and /healthz answers 503.
const failuresBeforeTrouble = 3

// take returns a started jail that is still waiting for its script,
// waiting at most bound for one. It fails rather than waits when starting
// jails keeps failing.
func (p *warmPool) take(ctx context.Context, bound time.Duration) (*jail, error) {
	check := time.NewTicker(250 * time.Millisecond)
	defer check.Stop()
	expired := time.NewTimer(bound)
	defer expired.Stop()
	for {
		select {
		case j := <-p.ready:
			p.forget(j)
			if !j.proc.alive() || time.Since(j.born) > maxIdle {
				_ = j.discard()
				continue
			}
			return j, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a started sandbox: %w", ctx.Err())
		case <-expired.C:
			return nil, fmt.Errorf("%w: no sandbox was started within %s", ErrSandboxUnavailable, bound)
		case <-p.stop:
			return nil, ErrBusy
		case <-check.C:
			p.mu.Lock()
			failures, err := p.failures, p.lastErr
			p.mu.Unlock()
			if failures >= failuresBeforeTrouble {
				return nil, fmt.Errorf("%w: starting sandboxes failed %d times in a row: %w", ErrSandboxUnavailable, failures, err)
			}
		}
	}
}

// trouble says, once starts have failed failuresBeforeTrouble times in a
// row, that the pool cannot start jails, and why; "" otherwise.
func (p *warmPool) trouble() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failures < failuresBeforeTrouble {
		return ""
	}
	return fmt.Sprintf("starting sandboxes failed %d times in a row: %v", p.failures, p.lastErr)
}

// close stops the fillers and discards every jail not taken.
func (p *warmPool) close() error {
	close(p.stop)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for j := range p.waiting {
		errs = append(errs, j.discard())
	}
	p.waiting = map[*jail]bool{}
	return errors.Join(errs...)
}

// cgroupNames lists the cgroups of the jails waiting for a script.
func (p *warmPool) cgroupNames() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := map[string]bool{}
	for j := range p.waiting {
		if j.cg != nil {
			names[j.cg.Name()] = true
		}
	}
	return names
}
