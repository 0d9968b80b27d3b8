package jail

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// fakeProcess is a process whose end the test decides; killing it ends it.
type fakeProcess struct {
	endOnce sync.Once
	ended   chan struct{}
	mu      sync.Mutex
	kills   int
}

func newFakeProcess() *fakeProcess { return &fakeProcess{ended: make(chan struct{})} }

func (p *fakeProcess) end() { p.endOnce.Do(func() { close(p.ended) }) }

func (p *fakeProcess) kill() {
	p.mu.Lock()
	p.kills++
	p.mu.Unlock()
}

func (p *fakeProcess) killed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.kills > 0
}

func (p *fakeProcess) alive() bool {
	select {
	case <-p.ended:
		return false
	default:
		return true
	}
}

func (p *fakeProcess) wait() error { <-p.ended; return nil }

func (p *fakeProcess) exitStatus() procExit { return procExit{ended: true, code: 0} }

// collected runs collect in the background and returns its outcome on a
// channel, with the interpreter's ends of the channels, which the test
// writes and closes as the harness would.
func collected(t *testing.T, proc process) (*channels, <-chan jailRun) {
	t.Helper()
	ch, err := newChannels(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ch.all.close)
	// The test plays the interpreter with the interpreter's ends, which
	// the caller of collect would have handed over and closed.
	interp := &channels{stdoutW: ch.stdoutW, stderrW: ch.stderrW, reportW: ch.reportW, scriptR: ch.scriptR}
	cfg := Config{Timeout: time.Minute, MaxOutputBytes: 1 << 20, MaxResultBytes: 1 << 20}
	done := make(chan jailRun, 1)
	go func() {
		run, err := collect(context.Background(), proc, ch, []byte(`{"script": "def main(): return 1"}`), cfg.Timeout, cfg)
		if err != nil {
			t.Errorf("collect: %v", err)
		}
		done <- run
	}()
	return interp, done
}

func TestCollectAnswersAWholeReportBeforeTheProcessHasEnded(t *testing.T) {
	proc := newFakeProcess()
	interp, done := collected(t, proc)
	_, _ = interp.stdoutW.WriteString("printed\n")
	_, _ = interp.reportW.WriteString(`{"ok": true, "result": 1}`)
	for _, f := range []*os.File{interp.stdoutW, interp.stderrW, interp.reportW} {
		_ = f.Close()
	}
	select {
	case run := <-done:
		if run.Gone {
			t.Errorf("collect says the execution is gone; its process has not ended")
		}
		if !proc.killed() {
			t.Errorf("collect answered without killing the process")
		}
		if string(run.Stdout) != "printed\n" || !run.settled() {
			t.Errorf("collect = stdout %q, report %q; want the whole of both", run.Stdout, run.Report)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("collect waited for the process, though every channel was at end of file with a valid report")
	}
	proc.end()
}

func TestCollectWaitsForTheProcessWhileAChannelIsOpen(t *testing.T) {
	proc := newFakeProcess()
	interp, done := collected(t, proc)
	_, _ = interp.reportW.WriteString(`{"ok": true, "result": 1}`)
	_ = interp.reportW.Close()
	_ = interp.stderrW.Close()
	// stdout stays open, as when a process the script started holds it:
	// it could still write to the answer.
	select {
	case <-done:
		t.Fatal("collect answered while a process of the execution could still write to stdout")
	case <-time.After(300 * time.Millisecond):
	}
	// Once the process has ended, the open stdout is read for a moment
	// more and no longer.
	proc.end()
	if run := <-done; !run.Gone {
		t.Errorf("collect returned after the process ended but does not say it is gone")
	}
}

func TestCollectWaitsForTheProcessWhenTheReportIsInvalid(t *testing.T) {
	proc := newFakeProcess()
	interp, done := collected(t, proc)
	_, _ = interp.reportW.WriteString(`{"ok": false, "error_type": "internal"}`)
	for _, f := range []*os.File{interp.stdoutW, interp.stderrW, interp.reportW} {
		_ = f.Close()
	}
	select {
	case <-done:
		t.Fatal("collect answered an invalid report before the process ended; how it ended decides the outcome")
	case <-time.After(300 * time.Millisecond):
	}
	if proc.killed() {
		t.Errorf("collect killed a process whose report does not settle the outcome")
	}
	proc.end()
	if run := <-done; !run.Gone || run.settled() {
		t.Errorf("collect = gone %v, report valid %v; want gone and invalid", run.Gone, run.settled())
	}
}
