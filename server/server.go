// Package server is pyexec's transport: the handlers of the Execute and
// ExecuteEvent functions. It decodes requests (one decoder for /execute's
// body and for Pub/Sub message data), runs them through the executor, turns
// every error into an answer in one place (errors.go) and writes one log
// entry per execution. It knows nothing of nsjail or of the harness's wire
// format, and reads no environment: its caller builds it with New from its
// dependencies.
package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pyexec/pyexec/execlog"
	"github.com/pyexec/pyexec/executor"
	"github.com/pyexec/pyexec/internal/dedup"
	"github.com/pyexec/pyexec/sessions"
)

// Executor runs scripts in the sandbox; *executor.Executor is the real one.
type Executor interface {
	// Start runs the sandbox self-test. Until one passes, Run answers
	// executor.ErrSandboxUnavailable.
	Start(ctx context.Context) error
	Run(ctx context.Context, req executor.Request) (executor.Result, error)
	// Limits are the caps a request must keep; the decoder states them.
	Limits() executor.Limits
	Health() executor.Health
	// Shutdown stops taking executions and lets running ones finish until
	// ctx is done, then kills them.
	Shutdown(ctx context.Context) error
}

// Config is the transport's own configuration; the executor has its own.
type Config struct {
	// ResultTopic is where ExecuteEvent publishes outcomes: a topic ID in
	// the service's project or a full "projects/P/topics/T"; "" publishes
	// none. Whoever builds the server makes the Publisher that New takes
	// from it, with NewTopicPublisher.
	ResultTopic string
	// SelfTestWait is how long an execution that arrives while the first
	// sandbox self-test still runs waits for it, so that a fresh instance
	// does not turn its first requests away. Past it, or once the self-test
	// has failed, executions answer sandbox_unavailable. Zero: no wait.
	SelfTestWait time.Duration
	// MaxRequestBytes caps a request: /execute's body (413 above it) and
	// ExecuteEvent's message data. Zero is DefaultMaxRequestBytes.
	MaxRequestBytes int64
	// AllowedHosts are the names the service is reached by, beyond loopback
	// ones (localhost, *.localhost, 127.0.0.0/8, ::1): a state-changing
	// request naming another Host is refused (guard.go). A port, if given,
	// is ignored.
	AllowedHosts []string
	// FrontEndHost: a front end that routes by Host (Cloud Run's) stands
	// before the service, so the Host of a request that arrives is one of
	// the service's own and is not checked. ConfigFromEnv sets it when
	// K_SERVICE is set.
	FrontEndHost bool
	// ReadHeaderTimeout and ReadTimeout bound how long a client may take
	// to send a request's headers, and the whole request with its body:
	// a client that trickles them cannot hold a connection longer. Zero is
	// the default (DefaultReadHeaderTimeout, DefaultReadTimeout).
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
}

// Defaults of what ConfigFromEnv reads.
const (
	// DefaultReadHeaderTimeout is how long a client may take to send a
	// request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout is how long a client may take to send a whole
	// request: a 10 MiB body at 200 KB/s.
	DefaultReadTimeout = 60 * time.Second
	// DefaultSelfTestWait is the SelfTestWait ConfigFromEnv sets.
	DefaultSelfTestWait = 5 * time.Second
	// DefaultMaxRequestBytes is the cap on a request when
	// PYEXEC_MAX_REQUEST_BYTES is not set.
	DefaultMaxRequestBytes = 10 << 20
)

// The bounds of PYEXEC_MAX_REQUEST_BYTES: room for any script, and no more
// than one request should hold of the service's memory.
const (
	minRequestBytes = 1 << 10
	maxRequestBytes = 1 << 30
)

// ConfigFromEnv reads the transport's configuration with getenv, and
// refuses a malformed or out-of-range value naming its variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := Config{
		ResultTopic:     strings.TrimSpace(getenv("PYEXEC_RESULT_TOPIC")),
		SelfTestWait:    DefaultSelfTestWait,
		MaxRequestBytes: DefaultMaxRequestBytes,
		FrontEndHost:    getenv("K_SERVICE") != "",
	}
	for _, d := range []struct {
		name string
		to   *time.Duration
	}{
		{"PYEXEC_READ_HEADER_TIMEOUT_SECONDS", &cfg.ReadHeaderTimeout},
		{"PYEXEC_READ_TIMEOUT_SECONDS", &cfg.ReadTimeout},
	} {
		if raw := strings.TrimSpace(getenv(d.name)); raw != "" {
			n, err := strconv.Atoi(raw)
			if err != nil || n < 1 || n > 3600 {
				return Config{}, fmt.Errorf("%s must be a whole number of seconds, 1..3600, got %q", d.name, raw)
			}
			*d.to = time.Duration(n) * time.Second
		}
	}
	for _, name := range strings.Split(getenv("PYEXEC_ALLOWED_HOSTS"), ",") {
		if name = strings.TrimSpace(name); name != "" {
			cfg.AllowedHosts = append(cfg.AllowedHosts, name)
		}
	}
	if raw := strings.TrimSpace(getenv("PYEXEC_MAX_REQUEST_BYTES")); raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return Config{}, fmt.Errorf("PYEXEC_MAX_REQUEST_BYTES=%q is not a whole number", raw)
		}
		cfg.MaxRequestBytes = n
	}
	return cfg, cfg.Validate()
}

// Validate reports what is wrong with the configuration, naming the
// variable that sets it.
func (c Config) Validate() error {
	if c.MaxRequestBytes != 0 && (c.MaxRequestBytes < minRequestBytes || c.MaxRequestBytes > maxRequestBytes) {
		return fmt.Errorf("PYEXEC_MAX_REQUEST_BYTES must be %d..%d, got %d", minRequestBytes, maxRequestBytes, c.MaxRequestBytes)
	}
	for _, name := range c.AllowedHosts {
		if name == "" || strings.ContainsAny(name, "/*@ \t") {
			return fmt.Errorf("PYEXEC_ALLOWED_HOSTS must list host names or addresses separated by commas (e.g. pyexec.internal,10.0.0.5), got %q", name)
		}
	}
	return nil
}

// HTTPServer is the server the function is served with on addr: handler,
// with deadlines for reading each request (Config.ReadHeaderTimeout and
// ReadTimeout) and for an idle kept-alive connection. Writing has no
// deadline of its own: an answer waits for its execution, which its own
// timeout bounds.
func (c Config) HTTPServer(addr string, handler http.Handler) *http.Server {
	header, read := c.ReadHeaderTimeout, c.ReadTimeout
	if header == 0 {
		header = DefaultReadHeaderTimeout
	}
	if read == 0 {
		read = DefaultReadTimeout
	}
	return &http.Server{
		Addr:              addr,
		Handler:           handler,
		ReadHeaderTimeout: header,
		ReadTimeout:       read,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// An idle kept-alive connection is closed after idleTimeout; a request's
// headers may hold at most maxHeaderBytes.
const (
	idleTimeout    = 2 * time.Minute
	maxHeaderBytes = 64 << 10
)

// requestCap is the cap on a request in force.
func (c Config) requestCap() int64 {
	if c.MaxRequestBytes == 0 {
		return DefaultMaxRequestBytes
	}
	return c.MaxRequestBytes
}

// Completed message IDs are remembered this long, and at most this many:
// redeliveries come within minutes, and memory stays bounded.
const (
	dedupTTL = time.Hour
	dedupMax = 10000
)

// Server answers the requests of both functions with one executor and one
// logger.
type Server struct {
	cfg     Config
	exec    Executor
	log     *execlog.Logger
	results Publisher    // nil: outcomes are only logged
	done    *dedup.Set   // the message IDs ExecuteEvent completed
	mcp     http.Handler // POST /mcp, built once by New
	// sessions holds the live sessions; nil: the session paths answer 404.
	sessions *sessions.Registry
	guard    *guard // what every state-changing request must pass

	// answering counts the requests being answered, so that Shutdown can
	// let their answers out.
	answering inflight

	// firstSelfTest is closed once the first self-test has ended, passed
	// or not.
	firstSelfTest  chan struct{}
	closeFirstOnce sync.Once

	mu             sync.Mutex
	stopped        bool               // Shutdown was called
	cancelSelfTest context.CancelFunc // set by Start
	selfTestEnded  chan struct{}      // set by Start; closed when its retries end
}

// New returns a server running scripts with exec and logging to log. It
// publishes ExecuteEvent's outcomes with results, or nowhere when results
// is nil, and serves the sessions of live, or none when live is nil. Call
// Start to run the sandbox self-test.
func New(cfg Config, exec Executor, log *execlog.Logger, results Publisher, live *sessions.Registry) *Server {
	s := &Server{
		cfg:           cfg,
		exec:          exec,
		log:           log,
		results:       results,
		sessions:      live,
		done:          dedup.New(dedupMax, dedupTTL),
		firstSelfTest: make(chan struct{}),
		guard:         newGuard(cfg.AllowedHosts, cfg.FrontEndHost),
	}
	s.mcp = s.newMCPHandler()
	return s
}

// Start runs the sandbox self-test and returns its error. While it fails it
// is retried in the background, with backoff, until it passes or Shutdown
// is called: a sandbox that is not there yet (or any more) is reported,
// never bypassed. Executions that arrive before this first attempt ends
// wait for it, up to Config.SelfTestWait. Call Start once.
func (s *Server) Start(ctx context.Context) error {
	defer s.closeFirstOnce.Do(func() { close(s.firstSelfTest) })
	s.mu.Lock()
	if s.stopped || s.selfTestEnded != nil {
		s.mu.Unlock()
		return errors.New("server already started or shut down")
	}
	ctx, s.cancelSelfTest = context.WithCancel(ctx)
	ended := make(chan struct{})
	s.selfTestEnded = ended
	s.mu.Unlock()

	const firstRetry = time.Second
	err := s.selfTest(ctx, firstRetry)
	if err == nil {
		close(ended)
		return nil
	}
	go func() {
		defer close(ended)
		s.retrySelfTest(ctx, firstRetry)
	}()
	return err
}

// retrySelfTest retries a failed self-test after delay, doubling the delay
// up to a minute, until one passes or ctx is done.
func (s *Server) retrySelfTest(ctx context.Context, delay time.Duration) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Minute)
		if s.selfTest(ctx, delay) == nil {
			return
		}
	}
}

// selfTest runs the executor's self-test once and logs how it went; retryIn
// is the wait before the next attempt if it failed. One that Shutdown cut
// short is not logged.
func (s *Server) selfTest(ctx context.Context, retryIn time.Duration) error {
	err := s.exec.Start(ctx)
	switch {
	case err == nil:
		s.log.Log(selfTestPassedEntry(s.exec.Health()))
	case ctx.Err() == nil:
		s.log.Log(selfTestFailedEntry(err, retryIn))
	}
	return err
}

// awaitFirstSelfTest waits, up to Config.SelfTestWait, for the first
// self-test to end.
func (s *Server) awaitFirstSelfTest(ctx context.Context) {
	select {
	case <-s.firstSelfTest:
		return
	default:
	}
	if s.cfg.SelfTestWait <= 0 {
		return
	}
	timer := time.NewTimer(s.cfg.SelfTestWait)
	defer timer.Stop()
	select {
	case <-s.firstSelfTest:
	case <-timer.C:
	case <-ctx.Done():
	}
}

// answerReserve is the part of Shutdown's time kept for writing answers:
// executions still running this long before its context's deadline are
// killed, so that they too are answered before it.
const answerReserve = time.Second

// Shutdown stops the self-test and taking executions, lets running ones
// finish until answerReserve before ctx's deadline (then kills them), and
// waits until ctx is done for every answer to be written. The logger is
// its caller's to close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	cancelSelfTest, selfTestEnded := s.cancelSelfTest, s.selfTestEnded
	s.mu.Unlock()
	if cancelSelfTest != nil {
		cancelSelfTest()
	}

	execCtx := ctx
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		execCtx, cancel = context.WithDeadline(ctx, deadline.Add(-answerReserve))
		defer cancel()
	}
	// Sessions end first: their processes belong to the sandbox that
	// the executor's Shutdown takes down.
	var err error
	if s.sessions != nil {
		err = s.sessions.Close()
	}
	err = errors.Join(err, s.exec.Shutdown(execCtx))
	if selfTestEnded != nil {
		select {
		case <-selfTestEnded:
		case <-ctx.Done():
			err = errors.Join(err, errors.New("the sandbox self-test still runs at shutdown"))
		}
	}
	if werr := s.answering.wait(ctx); werr != nil {
		err = errors.Join(err, fmt.Errorf("requests still being answered at shutdown: %w", werr))
	}
	return err
}

// inflight counts requests being answered. Unlike a sync.WaitGroup it may
// gain requests while someone waits for it to drain.
type inflight struct {
	mu      sync.Mutex
	n       int
	drained chan struct{} // closed when n drops to zero; nil while nobody waits
}

func (c *inflight) add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

func (c *inflight) done() {
	c.mu.Lock()
	c.n--
	if c.n == 0 && c.drained != nil {
		close(c.drained)
		c.drained = nil
	}
	c.mu.Unlock()
}

// wait waits until no request is being answered, or ctx is done.
func (c *inflight) wait(ctx context.Context) error {
	c.mu.Lock()
	if c.n == 0 {
		c.mu.Unlock()
		return nil
	}
	if c.drained == nil {
		c.drained = make(chan struct{})
	}
	drained := c.drained
	c.mu.Unlock()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
