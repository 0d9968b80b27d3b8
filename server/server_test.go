package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyexec/pyexec/execlog"
	"github.com/pyexec/pyexec/executor"
	ts "github.com/pyexec/pyexec/internal/testsupport"
	"github.com/pyexec/pyexec/server"
	"github.com/pyexec/pyexec/sessions"
)

// fakeExecutor stands in for the sandbox: Run answers with a function of
// the request, and the calls are counted.
type fakeExecutor struct {
	calls atomic.Int32
	run   func(executor.Request) (executor.Result, error)
	// start is the self-test; nil passes at once.
	start  func(context.Context) error
	health executor.Health
}

func (f *fakeExecutor) Start(ctx context.Context) error {
	if f.start != nil {
		return f.start(ctx)
	}
	return nil
}

func (f *fakeExecutor) Run(_ context.Context, req executor.Request) (executor.Result, error) {
	f.calls.Add(1)
	return f.run(req)
}

// Limits are the service's defaults.
func (f *fakeExecutor) Limits() executor.Limits {
	return executor.Limits{Timeout: 30 * time.Second, MemoryBytes: 512 << 20, MaxInputFiles: 100, MaxInputFilesBytes: 8 << 20}
}

func (f *fakeExecutor) Health() executor.Health            { return f.health }
func (f *fakeExecutor) Shutdown(ctx context.Context) error { return nil }

// answering is a fakeExecutor whose every Run answers res, err.
func answering(res executor.Result, err error) *fakeExecutor {
	return &fakeExecutor{run: func(executor.Request) (executor.Result, error) { return res, err }}
}

// testServer is a server over real HTTP on loopback: Execute at
// executeURL, ExecuteEvent at eventURL, logging as project "proj".
type testServer struct {
	*server.Server
	executeURL, eventURL string
	logs                 *ts.Buffer
	skip                 int // entries logged before the test's requests
}

// startServer serves exec, publishing with results (nil: none), once its
// self-test has passed.
func startServer(t *testing.T, exec server.Executor, results server.Publisher) *testServer {
	t.Helper()
	s := serve(t, server.Config{SelfTestWait: server.DefaultSelfTestWait}, exec, results)
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start = %v", err)
	}
	s.skip = len(s.logs.Entries(t, true))
	return s
}

// serve serves exec with a server configured by cfg, whose self-test is
// the caller's to start.
func serve(t *testing.T, cfg server.Config, exec server.Executor, results server.Publisher) *testServer {
	t.Helper()
	return serveLive(t, cfg, exec, results, nil)
}

// serveLive is serve with the sessions of live (nil: none).
func serveLive(t *testing.T, cfg server.Config, exec server.Executor, results server.Publisher, live *sessions.Registry) *testServer {
	t.Helper()
	logs := &ts.Buffer{}
	log, err := execlog.New(context.Background(), execlog.Config{
		Mode: execlog.ModeStdout, ProjectID: "proj", Out: logs,
		OnError: func(err error) { t.Errorf("logging failed: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(cfg, exec, log, results, live)
	execute := httptest.NewServer(http.HandlerFunc(srv.Execute))
	event := httptest.NewServer(http.HandlerFunc(srv.ExecuteEvent))
	t.Cleanup(func() {
		execute.Close()
		event.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
	})
	return &testServer{Server: srv, executeURL: execute.URL, eventURL: event.URL, logs: logs}
}

// entries returns what the server logged for the test's requests.
func (s *testServer) entries(t *testing.T) []map[string]any {
	t.Helper()
	return s.logs.Entries(t, true)[s.skip:]
}

// only returns the one entry logged for the test's requests.
func (s *testServer) only(t *testing.T) map[string]any {
	t.Helper()
	entries := s.entries(t)
	if len(entries) != 1 {
		t.Fatalf("got %d log entries, want 1: %v", len(entries), entries)
	}
	return entries[0]
}
