// Package pyexec is the transport of the pyexec service: the Execute HTTP
// function and the ExecuteEvent CloudEvent function, registered with the
// Functions Framework. It decodes requests, runs scripts through the
// executor, maps its errors to statuses and writes one log entry per
// execution. It knows nothing of nsjail or of the harness's wire format.
package pyexec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/pyexec/pyexec/execlog"
	"github.com/pyexec/pyexec/executor"
)

// runner runs one script; *executor.Executor is the real one.
type runner interface {
	Run(ctx context.Context, req executor.Request) (executor.Result, error)
}

// service is what both functions share: one executor and one logger per
// process.
type service struct {
	exec   runner
	health func() executor.Health
	log    *execlog.Logger
	cfg    executor.Config

	// inflight counts requests being answered, so shutdown can let their
	// responses out before the process exits.
	inflight sync.WaitGroup
	stop     func(ctx context.Context) error
}

var (
	serviceOnce sync.Once
	shared      *service
	sharedErr   error
)

// defaultService returns the process's service, creating it from the
// environment on first use and starting the sandbox self-test in the
// background. Until the self-test passes, executions answer
// sandbox_unavailable.
func defaultService() (*service, error) {
	serviceOnce.Do(func() { shared, sharedErr = newService(context.Background()) })
	return shared, sharedErr
}

func newService(ctx context.Context) (*service, error) {
	cfg, err := executor.ConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	exec, err := executor.New(cfg)
	if err != nil {
		return nil, err
	}
	log, err := execlog.New(ctx, execlog.ConfigFromEnv(os.Getenv))
	if err != nil {
		return nil, fmt.Errorf("setting up logging: %w", err)
	}
	s := &service{exec: exec, health: exec.Health, log: log, cfg: cfg}
	selfTestDone := make(chan struct{})
	stopSelfTest := make(chan struct{})
	go func() {
		defer close(selfTestDone)
		s.selfTest(ctx, exec, stopSelfTest)
	}()
	var stopOnce sync.Once
	s.stop = func(ctx context.Context) error {
		stopOnce.Do(func() { close(stopSelfTest) })
		err := exec.Shutdown(ctx)
		<-selfTestDone
		return err
	}
	return s, nil
}

// selfTest starts the executor, retrying with backoff while it fails: a
// sandbox that is not there yet (or any more) is reported, never bypassed.
func (s *service) selfTest(ctx context.Context, exec *executor.Executor, stop <-chan struct{}) {
	delay := time.Second
	for {
		err := exec.Start(ctx)
		if err == nil {
			h := exec.Health()
			s.log.Log(execlog.Entry{
				Severity: execlog.Info,
				Message:  "sandbox self-test passed",
				Fields:   map[string]any{"mode": h.Mode, "isolation": h.Isolation, "versions": h.Versions},
			})
			return
		}
		s.log.Log(execlog.Entry{
			Severity: execlog.Error,
			Message:  "sandbox self-test failed; executions answer sandbox_unavailable",
			Fields:   map[string]any{"error": err.Error(), "retry_in_ms": delay.Milliseconds()},
		})
		select {
		case <-stop:
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Minute)
	}
}

// Prepare creates the service and starts its sandbox self-test, so that the
// first request does not pay for it. It fails on invalid configuration,
// the results topic's included.
func Prepare() error {
	s, err := defaultService()
	if err != nil {
		return err
	}
	// A results topic that cannot be used should stop the service at start,
	// not fail every delivery.
	_, err = defaultEvents(s.log.ProjectID())
	return err
}

// Shutdown stops taking executions, lets running ones finish until ctx is
// done (then kills them), waits for their responses to be written and
// flushes the logs.
func Shutdown(ctx context.Context) error {
	s, err := defaultService()
	if err != nil {
		return err
	}
	err = s.stop(ctx)
	answered := make(chan struct{})
	go func() { s.inflight.Wait(); close(answered) }()
	select {
	case <-answered:
	case <-time.After(time.Second):
		err = errors.Join(err, errors.New("requests still being answered at shutdown"))
	}
	return errors.Join(err, s.log.Close())
}
