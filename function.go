// Package pyexec registers pyexec's two functions with the Functions
// Framework, both HTTP functions: Execute (POST /execute, GET /healthz,
// GET /openapi.json, POST /mcp and the playground at /) and ExecuteEvent, which takes Pub/Sub messages as CloudEvents from Eventarc,
// decoded with the CloudEvents SDK, or as a push subscription's envelopes.
// FUNCTION_TARGET picks the one served.
//
// Both are answered by one server (package server), built once per process
// from the environment by NewService, the one place that wires the service
// together; the tests build theirs with it too. The environment is read
// there, and by cmd/pyexec for the Functions Framework's own PORT and
// FUNCTION_TARGET.
package pyexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/pyexec/pyexec/execlog"
	"github.com/pyexec/pyexec/executor"
	"github.com/pyexec/pyexec/server"
	"github.com/pyexec/pyexec/sessions"
)

// functionsByName are the functions by the names FUNCTION_TARGET gives them.
var functionsByName = map[string]http.HandlerFunc{
	"Execute":      Execute,
	"ExecuteEvent": ExecuteEvent,
}

func init() {
	for name, fn := range functionsByName {
		functions.HTTP(name, fn)
	}
}

// Function returns the function named target, as FUNCTION_TARGET names it,
// and whether there is one.
func Function(target string) (http.HandlerFunc, bool) {
	fn, ok := functionsByName[target]
	return fn, ok
}

// Execute is the Execute function: POST /execute, the sessions under
// /sessions, GET /healthz, GET /openapi.json, POST /mcp and, for browsers,
// the playground.
func Execute(w http.ResponseWriter, r *http.Request) {
	s, err := defaultService()
	if err != nil {
		server.WriteMisconfigured(w)
		return
	}
	s.Server.Execute(w, r)
}

// ExecuteEvent is the ExecuteEvent function: one Pub/Sub message per
// request, and GET /healthz.
func ExecuteEvent(w http.ResponseWriter, r *http.Request) {
	s, err := defaultService()
	if err != nil {
		// Only an invalid configuration gets here, which cmd/pyexec refuses
		// at start. Pub/Sub delivers the message again.
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	s.Server.ExecuteEvent(w, r)
}

// Service is one service: the server, the executor it runs scripts with,
// the logger both write to, and the transport's configuration.
type Service struct {
	Server   *server.Server
	Executor *executor.Executor
	Log      *execlog.Logger
	Config   server.Config
	// Sessions are the live sessions the server serves.
	Sessions *sessions.Registry
}

var (
	serviceOnce sync.Once
	shared      *Service
	sharedErr   error
)

// defaultService returns the process's service, built from the environment
// on first use, with its sandbox self-test started in the background: until
// it passes, executions answer sandbox_unavailable.
func defaultService() (*Service, error) {
	serviceOnce.Do(func() {
		ctx := context.Background()
		shared, sharedErr = NewService(ctx, os.Getenv, nil)
		if sharedErr == nil {
			go func() { _ = shared.Server.Start(ctx) }() // Start logs how it went
		}
	})
	return shared, sharedErr
}

// NewService builds a service from the configuration getenv reads. Its log
// goes where PYEXEC_LOG says or, when logTo is not nil, to logTo as JSON
// lines. The sandbox is set up and proven by Server.Start.
func NewService(ctx context.Context, getenv func(string) string, logTo io.Writer) (*Service, error) {
	execCfg, err := executor.ConfigFromEnv(getenv)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	cfg, err := server.ConfigFromEnv(getenv)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	sessionsCfg, err := sessions.ConfigFromEnv(getenv)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	logCfg := execlog.ConfigFromEnv(getenv)
	if logTo != nil {
		logCfg = execlog.Config{Mode: execlog.ModeStdout, Out: logTo}
	}
	log, err := execlog.New(ctx, logCfg)
	if err != nil {
		return nil, fmt.Errorf("setting up logging: %w", err)
	}
	execCfg.Notify = func(ev executor.Event) { log.Log(server.EventEntry(ev)) }
	sessionsCfg.OnEnd = func(shortID, why string, err error) { log.Log(server.SessionEndedEntry(shortID, why, err)) }
	exec, err := executor.New(execCfg)
	if err != nil {
		return nil, errors.Join(err, log.Close())
	}
	// A results topic that cannot be used stops the service at start
	// rather than failing every delivery.
	var results server.Publisher
	if cfg.ResultTopic != "" {
		topic, err := server.NewTopicPublisher(ctx, cfg.ResultTopic, log.ProjectID())
		if err != nil {
			return nil, errors.Join(err, log.Close())
		}
		results = topic
	}
	live := sessions.New(sessionsCfg, func(ctx context.Context, req executor.SessionRequest) (sessions.Process, error) {
		s, err := exec.StartSession(ctx, req)
		if err != nil {
			return nil, err
		}
		return s, nil
	})
	return &Service{Server: server.New(cfg, exec, log, results, live), Executor: exec, Log: log, Config: cfg, Sessions: live}, nil
}

// HTTPServer returns the server cmd/pyexec serves handler with on addr:
// with the deadlines of the service's configuration, so that a client that
// trickles its headers or body cannot hold a connection forever.
func HTTPServer(addr string, handler http.Handler) (*http.Server, error) {
	s, err := defaultService()
	if err != nil {
		return nil, err
	}
	return s.Config.HTTPServer(addr, handler), nil
}

// Prepare builds the service and starts its sandbox self-test, so that the
// first request does not pay for them. It fails on invalid configuration,
// the results topic's included.
func Prepare() error {
	_, err := defaultService()
	return err
}

// Shutdown stops taking executions, lets running ones finish while ctx
// allows (then kills them), waits for their answers to be written and
// flushes the logs.
func Shutdown(ctx context.Context) error {
	s, err := defaultService()
	if err != nil {
		return err
	}
	return errors.Join(s.Server.Shutdown(ctx), s.Log.Close())
}
