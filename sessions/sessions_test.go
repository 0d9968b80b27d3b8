package sessions

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor"
)

// fakeProcess stands for a session's process: it runs cells with run and
// counts its End calls.
type fakeProcess struct {
	mu    sync.Mutex
	run   func(executor.Cell) (executor.CellResult, error)
	ended error
	ends  int
}

func (p *fakeProcess) Run(ctx context.Context, cell executor.Cell) (executor.CellResult, error) {
	return p.run(cell)
}

func (p *fakeProcess) Ended() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ended
}

func (p *fakeProcess) MemoryBytes() int64 { return 42 }

func (p *fakeProcess) End() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ends++
	return nil
}

type testClock struct{ t time.Time }

func newTestRegistry(t *testing.T, cfg Config, procs *[]*fakeProcess) (*Registry, *testClock) {
	t.Helper()
	clock := &testClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	r := New(cfg, func(ctx context.Context, req executor.SessionRequest) (Process, error) {
		p := &fakeProcess{run: func(c executor.Cell) (executor.CellResult, error) {
			return executor.CellResult{Result: executor.Result{Value: []byte(`1`)}}, nil
		}}
		*procs = append(*procs, p)
		return p, nil
	})
	r.now = func() time.Time { return clock.t }
	t.Cleanup(func() { _ = r.Close() })
	return r, clock
}

var testConfig = Config{IdleTimeout: 10 * time.Minute, MaxAge: time.Hour, Max: 2}

func TestIDsAre128BitURLSafeAndDistinct(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newID()
		if len(id) != 22 || strings.ContainsAny(id, "+/=") {
			t.Fatalf("newID() = %q, want 22 URL-safe characters", id)
		}
		if seen[id] {
			t.Fatalf("newID() repeated %q", id)
		}
		seen[id] = true
	}
	if got := Short("abcdefghijklmnopqrstuv"); got != "abcdef…" {
		t.Errorf("Short = %q", got)
	}
}

func TestCreateRunStateDelete(t *testing.T) {
	var procs []*fakeProcess
	r, clock := newTestRegistry(t, testConfig, &procs)
	info, err := r.Create(context.Background(), executor.SessionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if want := clock.t.Add(time.Hour); !info.Expires.Equal(want) {
		t.Errorf("Expires = %v, want %v", info.Expires, want)
	}
	clock.t = clock.t.Add(time.Minute)
	if _, err := r.Run(context.Background(), info.ID, executor.Cell{Code: "1"}); err != nil {
		t.Fatal(err)
	}
	st, err := r.State(info.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Cells != 1 || st.Running || !st.LastUsed.Equal(clock.t) || st.MemoryBytes != 42 {
		t.Errorf("State = %+v", st)
	}
	if err := r.Delete(info.ID); err != nil {
		t.Fatal(err)
	}
	if procs[0].ends != 1 {
		t.Errorf("End called %d times, want 1", procs[0].ends)
	}
	_, err = r.Run(context.Background(), info.ID, executor.Cell{Code: "1"})
	if !strings.Contains(err.Error(), "it was deleted") {
		t.Errorf("Run after Delete = %v, want an error saying it was deleted", err)
	}
	if executor.TypeOf(err) != api.ErrorTypeSessionNotFound {
		t.Errorf("TypeOf = %s", executor.TypeOf(err))
	}
}

func TestUnknownIDIsNotFoundSayingWhy(t *testing.T) {
	var procs []*fakeProcess
	r, _ := newTestRegistry(t, testConfig, &procs)
	_, err := r.State("AAAAAAAAAAAAAAAAAAAAAA")
	if executor.TypeOf(err) != api.ErrorTypeSessionNotFound || !strings.Contains(err.Error(), "another instance") {
		t.Errorf("State(unknown) = %v", err)
	}
}

func TestMaxSessionsIsBusy(t *testing.T) {
	var procs []*fakeProcess
	r, _ := newTestRegistry(t, testConfig, &procs)
	for range 2 {
		if _, err := r.Create(context.Background(), executor.SessionRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := r.Create(context.Background(), executor.SessionRequest{})
	if executor.TypeOf(err) != api.ErrorTypeBusy || !strings.Contains(err.Error(), "PYEXEC_MAX_SESSIONS") {
		t.Errorf("third Create = %v, want busy naming PYEXEC_MAX_SESSIONS", err)
	}
}

func TestACellAtATime(t *testing.T) {
	var procs []*fakeProcess
	r, _ := newTestRegistry(t, testConfig, &procs)
	info, err := r.Create(context.Background(), executor.SessionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	inside, release := make(chan struct{}), make(chan struct{})
	procs[0].run = func(executor.Cell) (executor.CellResult, error) {
		close(inside)
		<-release
		return executor.CellResult{}, nil
	}
	done := make(chan error)
	go func() {
		_, err := r.Run(context.Background(), info.ID, executor.Cell{Code: "slow"})
		done <- err
	}()
	<-inside
	if st, _ := r.State(info.ID); !st.Running {
		t.Error("State while a cell runs is not running")
	}
	if _, err := r.Run(context.Background(), info.ID, executor.Cell{Code: "1"}); executor.TypeOf(err) != api.ErrorTypeSessionBusy {
		t.Errorf("second cell = %v, want session_busy", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestACellThatEndsTheSessionRemovesIt(t *testing.T) {
	var procs []*fakeProcess
	r, _ := newTestRegistry(t, testConfig, &procs)
	info, _ := r.Create(context.Background(), executor.SessionRequest{})
	timeout := &executor.Error{Type: api.ErrorTypeTimeout, Message: "Execution timed out after 1 second; the session has ended"}
	procs[0].run = func(executor.Cell) (executor.CellResult, error) {
		procs[0].ended = timeout
		return executor.CellResult{}, timeout
	}
	if _, err := r.Run(context.Background(), info.ID, executor.Cell{Code: "while True: pass"}); err != timeout {
		t.Fatalf("Run = %v", err)
	}
	_, err := r.State(info.ID)
	if executor.TypeOf(err) != api.ErrorTypeSessionNotFound || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("State after the timeout = %v, want session_not_found naming the timeout", err)
	}
	if procs[0].ends != 1 || r.Len() != 0 {
		t.Errorf("ends = %d, live = %d", procs[0].ends, r.Len())
	}
}

func TestIdleAndMaxAgeEndSessions(t *testing.T) {
	var procs []*fakeProcess
	r, clock := newTestRegistry(t, Config{IdleTimeout: 10 * time.Minute, MaxAge: time.Hour, Max: 5}, &procs)
	idle, _ := r.Create(context.Background(), executor.SessionRequest{})
	busy, _ := r.Create(context.Background(), executor.SessionRequest{})
	for range 7 {
		clock.t = clock.t.Add(9 * time.Minute)
		if _, err := r.Run(context.Background(), busy.ID, executor.Cell{Code: "1"}); err != nil {
			t.Fatal(err)
		}
		r.reapOnce()
	}
	if _, err := r.State(idle.ID); err == nil || !strings.Contains(err.Error(), "idle for 600 s") {
		t.Errorf("idle session: %v", err)
	}
	if _, err := r.State(busy.ID); err == nil || !strings.Contains(err.Error(), "maximum lifetime of 3600 s") {
		t.Errorf("used session past its lifetime: %v", err)
	}
}

func TestCloseEndsEverySessionAndRefusesNew(t *testing.T) {
	var procs []*fakeProcess
	r, _ := newTestRegistry(t, testConfig, &procs)
	a, _ := r.Create(context.Background(), executor.SessionRequest{})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if procs[0].ends != 1 {
		t.Errorf("ends = %d", procs[0].ends)
	}
	if _, err := r.Create(context.Background(), executor.SessionRequest{}); executor.TypeOf(err) != api.ErrorTypeBusy {
		t.Errorf("Create after Close = %v, want busy", err)
	}
	if _, err := r.State(a.ID); err == nil || !strings.Contains(err.Error(), "instance stopped") {
		t.Errorf("State after Close = %v", err)
	}
}

func TestEndingsAreBounded(t *testing.T) {
	e := newEndings(3, time.Hour)
	now := time.Now()
	for i, id := range []string{"a", "b", "c", "d"} {
		e.add(id, "why", now.Add(time.Duration(i)*time.Second))
	}
	if _, ok := e.get("a", now); ok || len(e.why) != 3 {
		t.Errorf("oldest kept past max: %v", e.why)
	}
	if _, ok := e.get("d", now.Add(2*time.Hour)); ok {
		t.Error("ending kept past its TTL")
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	cfg, err := ConfigFromEnv(getenv)
	if err != nil || cfg.IdleTimeout != 10*time.Minute || cfg.MaxAge != time.Hour || cfg.Max < 1 {
		t.Fatalf("defaults = %+v, %v", cfg, err)
	}
	env["PYEXEC_SESSION_IDLE_SECONDS"], env["PYEXEC_SESSION_MAX_SECONDS"], env["PYEXEC_MAX_SESSIONS"] = "5", "60", "100"
	if cfg, err = ConfigFromEnv(getenv); err != nil || cfg.IdleTimeout != 5*time.Second || cfg.MaxAge != time.Minute || cfg.Max != 100 {
		t.Fatalf("set = %+v, %v", cfg, err)
	}
	for _, bad := range []string{"-1", "x", "1.5", "100001"} {
		env["PYEXEC_MAX_SESSIONS"] = bad
		if _, err := ConfigFromEnv(getenv); err == nil || !strings.Contains(err.Error(), "PYEXEC_MAX_SESSIONS") {
			t.Errorf("PYEXEC_MAX_SESSIONS=%q: %v", bad, err)
		}
	}
	if got := DefaultMax(2 << 30); got != 64 {
		t.Errorf("DefaultMax(2 GiB) = %d, want 64", got)
	}
	if got := DefaultMax(1 << 20); got != 1 {
		t.Errorf("DefaultMax(1 MiB) = %d, want 1", got)
	}
}
