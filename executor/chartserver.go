package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
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

	mu       sync.Mutex
	box      *forkSandbox
	starting sync.WaitGroup // a start under way
	busy     bool           // a start is under way
	closed   bool
	retryAt  time.Time
}

// ready returns the chart server if it serves, and otherwise starts it in
// the background (unless a start is under way or failed recently) and
// returns nil: the script runs in the plain server meanwhile.
func (c *lazyChartServer) ready() *forkSandbox {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.box != nil || c.closed || c.busy || time.Now().Before(c.retryAt) {
		return c.box
	}
	c.busy = true
	c.starting.Add(1)
	go c.launch()
	return nil
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
		c.box = box
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
	c.closed = true
	c.mu.Unlock()
	c.starting.Wait()
	c.mu.Lock()
	box := c.box
	c.box = nil
	c.mu.Unlock()
	if box == nil {
		return nil
	}
	return box.close()
}

// newChartServer returns the chart server that a plain fork sandbox hands
// scripts that draw to. prove is the executor's self-test, which a new
// chart server passes before it serves;
// proveReplacement is what its replacement servers pass before they serve.
func newChartServer(nsjail string, spec jailSpec, groups cgroups, cfg Config, prove, proveReplacement func(context.Context, sandbox) error) *lazyChartServer {
	return &lazyChartServer{
		notify: cfg.notify,
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
