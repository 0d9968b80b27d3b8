package jail

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pyexec/pyexec/executor/internal/cgroups"
)

// A chart server is a second fork server (mode_fork.go) whose interpreter
// has matplotlib.pyplot imported and one chart drawn before it forks: a
// script that draws then pays neither pyplot's import nor the setup of its
// first drawing. It holds some 80 MiB more than the plain server, and every
// execution forked from it copies more pages, so scripts that do not draw
// keep the plain server, and the chart server is started only when the first
// script that draws arrives. That script, and any that arrive before the
// chart server has passed its self-test, run in the plain server, which
// imports matplotlib like any other module: the chart server changes how
// fast a chart is drawn, never where or how isolated.

// chartIdle is how long the chart server runs without a script that draws
// before it is stopped, returning its memory: the service at rest holds
// only the plain server.
const chartIdle = 5 * time.Minute

// chartRetry is how long after a chart server failed to start (or its
// self-test failed) scripts that draw keep the plain server before another
// start is tried.
const chartRetry = time.Minute

// drawsCharts says whether a script is likely to draw with matplotlib: it
// names matplotlib, or calls a pandas plotting method, which imports it.
// A wrong guess costs only speed.
func drawsCharts(script string) bool {
	return strings.Contains(script, "matplotlib") || strings.Contains(script, ".plot") || strings.Contains(script, ".hist(")
}

// lazyChartServer starts the chart server on first use and holds it.
type lazyChartServer struct {
	// start builds a chart server's sandbox and proves it with the
	// self-test every sandbox passes before it serves.
	start  func() (*forkSandbox, error)
	notify func(Event)
	// idleAfter is how long the server runs without a chart (chartIdle).
	idleAfter time.Duration

	mu       sync.Mutex
	box      *forkSandbox
	inUse    int            // executions running in box
	lastUsed time.Time      // when the last of them ended
	starting sync.WaitGroup // a start, or the idle watch, under way
	busy     bool           // a start is under way
	closed   bool
	closing  chan struct{} // closed by close: the idle watch ends
	retryAt  time.Time
}

// acquire returns the chart server if it serves, with the function to call
// once the execution given to it has ended; otherwise it starts the server
// in the background (unless a start is under way or failed recently) and
// returns nil: the script runs in the plain server meanwhile.
func (c *lazyChartServer) acquire() (*forkSandbox, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.box != nil {
		c.inUse++
		return c.box, c.release
	}
	if c.closed || c.busy || time.Now().Before(c.retryAt) {
		return nil, nil
	}
	c.busy = true
	c.starting.Add(1)
	go c.launch()
	return nil, nil
}

func (c *lazyChartServer) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inUse--
	c.lastUsed = time.Now()
}

// retireWhenIdle stops box once no script has drawn in it for chartIdle;
// the next one starts a new server.
func (c *lazyChartServer) retireWhenIdle(box *forkSandbox) {
	defer c.starting.Done()
	tick := time.NewTicker(c.idleAfter / 10)
	defer tick.Stop()
	for {
		select {
		case <-c.closing:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		if c.box != box {
			c.mu.Unlock()
			return // closed
		}
		idle := c.inUse == 0 && time.Since(c.lastUsed) > c.idleAfter
		if idle {
			c.box = nil
		}
		c.mu.Unlock()
		if idle {
			_ = box.close()
			c.notify(Event{Message: fmt.Sprintf("chart server stopped after %s without a chart", c.idleAfter)})
			return
		}
	}
}

// running returns the chart server if it has started.
func (c *lazyChartServer) running() *forkSandbox {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.box
}

func (c *lazyChartServer) launch() {
	defer c.starting.Done()
	began := time.Now()
	box, err := c.start()
	c.mu.Lock()
	c.busy = false
	closed := c.closed
	if err == nil && !closed {
		c.box, c.lastUsed = box, time.Now()
		c.starting.Add(1)
		go c.retireWhenIdle(box)
	}
	if err != nil {
		c.retryAt = time.Now().Add(chartRetry)
	}
	c.mu.Unlock()
	switch {
	case err != nil && !closed:
		c.notify(Event{Warning: true, Message: fmt.Sprintf("chart server did not start; scripts that draw run in the fork server, and a start is tried again in %s: %v", chartRetry, err)})
	case err == nil && closed:
		_ = box.close()
	case err == nil:
		c.notify(Event{Message: fmt.Sprintf("chart server started and passed its self-test in %s", time.Since(began).Round(time.Millisecond))})
	}
}

// close stops the chart server, waiting for a start under way to end first.
func (c *lazyChartServer) close() error {
	c.mu.Lock()
	if !c.closed {
		close(c.closing)
	}
	c.closed = true
	box := c.box
	c.box = nil
	c.mu.Unlock()
	var err error
	if box != nil {
		err = box.close()
	}
	// A start under way closes what it started (launch).
	c.starting.Wait()
	return err
}

// newChartServer returns the chart server that a plain fork sandbox hands
// scripts that draw to. prove is the executor's self-test, which a new
// chart server passes before it serves;
// proveReplacement is what its replacement servers pass before they serve.
func newChartServer(nsjail string, spec jailSpec, groups cgroups.Hierarchy, cfg Config, prove, proveReplacement func(context.Context, sandbox) error) *lazyChartServer {
	return &lazyChartServer{
		notify:    cfg.notify,
		idleAfter: chartIdle,
		closing:   make(chan struct{}),
		start: func() (*forkSandbox, error) {
			box, err := newForkSandbox(nsjail, spec, groups, cfg, chartServer, proveReplacement)
			if err != nil {
				return nil, err
			}
			ctx, cancel := context.WithTimeout(context.Background(), serverStartTimeout)
			defer cancel()
			if err := prove(ctx, box); err != nil {
				return nil, errors.Join(err, box.close())
			}
			return box, nil
		},
	}
}
