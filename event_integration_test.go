package pyexec

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// eventServer is ./cmd/pyexec serving ExecuteEvent exactly as Cloud Run
// runs it (FUNCTION_TARGET=ExecuteEvent, PORT), on a loopback port, with the
// real executor and its stdout log lines captured.
type eventServer struct {
	url    string
	cmd    *exec.Cmd
	exited chan struct{}
	stderr *lockedBuffer

	mu      sync.Mutex
	entries []map[string]any
}

// startEventServer builds and starts the service with env added to the
// environment, and waits until its sandbox self-test has passed.
func startEventServer(t *testing.T, env map[string]string) *eventServer {
	t.Helper()
	requireRuntime(t)
	bin := buildPyexec(t)
	port := freePort(t)

	cmd := exec.Command(bin)
	// If the test binary dies (a -timeout panic skips cleanups), the
	// service shuts down with it instead of living on with its jails.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Env = childEnv(map[string]string{
		"FUNCTION_TARGET": "ExecuteEvent",
		"PORT":            port,
		"PYEXEC_LOG":      "stdout",
	}, env)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &eventServer{url: "http://127.0.0.1:" + port + "/", cmd: cmd, exited: make(chan struct{}), stderr: &lockedBuffer{}}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go s.readLog(stdout)
	go func() { _ = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			s.dump(t)
		}
	})

	deadline := time.Now().Add(2 * time.Minute)
	for !s.ready() {
		select {
		case <-s.exited:
			t.Fatalf("pyexec exited before its self-test passed: %v\nstderr:\n%s", cmd.ProcessState, s.stderr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pyexec's sandbox self-test did not pass in time; log:\n%s\nstderr:\n%s", compactJSON(t, s.log()), s.stderr)
		}
	}
	return s
}

// ready reports whether the self-test passed and the port takes connections.
func (s *eventServer) ready() bool {
	passed := false
	for _, e := range s.log() {
		passed = passed || e["message"] == "sandbox self-test passed"
	}
	if !passed {
		return false
	}
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(strings.TrimSuffix(s.url, "/"), "http://"), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// dump shows what the service logged, for a failed test: the entries that
// are not plain successes, and stderr.
func (s *eventServer) dump(t *testing.T) {
	t.Helper()
	var notOK []map[string]any
	for _, e := range s.log() {
		if e["status"] != "ok" && e["duplicate"] == nil {
			notOK = append(notOK, e)
		}
	}
	if len(notOK) > 100 {
		notOK = notOK[len(notOK)-100:]
	}
	t.Logf("service entries that are not successes (last 100):\n%s\nstderr:\n%s", compactJSON(t, notOK), s.stderr)
}

// stop sends SIGTERM, as Cloud Run does, and expects a clean exit.
func (s *eventServer) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("pyexec exited with code %d after SIGTERM; stderr:\n%s", code, s.stderr)
		}
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		t.Errorf("pyexec did not exit within 30s of SIGTERM")
	}
}

func (s *eventServer) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue // not an entry: the framework's own output
		}
		s.mu.Lock()
		s.entries = append(s.entries, e)
		s.mu.Unlock()
	}
}

func (s *eventServer) log() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.entries...)
}

// outcome waits for the final entry of message id: its execution's outcome,
// neither a retried attempt nor a duplicate.
func (s *eventServer) outcome(t *testing.T, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, e := range s.log() {
			if e["message_id"] == id && e["execution_id"] != nil && e["retry"] == nil {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no outcome logged for message %s; log:\n%s", id, compactJSON(t, s.log()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitForLog waits until done holds for the log, and returns it.
func (s *eventServer) waitForLog(t *testing.T, done func([]map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries := s.log()
		if done(entries) || time.Now().After(deadline) {
			return entries
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// buildPyexec builds the service's command into a temporary directory.
func buildPyexec(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build ./cmd/pyexec: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "pyexec")
	out, err := exec.Command(goTool, "build", "-o", bin, "./cmd/pyexec").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/pyexec: %v\n%s", err, out)
	}
	return bin
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// childEnv is this process's environment without anything that would make
// the child think it runs on Cloud Run (and look for a metadata server),
// plus the given variables.
func childEnv(sets ...map[string]string) []string {
	drop := map[string]bool{
		"K_SERVICE": true, "K_REVISION": true, "K_CONFIGURATION": true,
		"FUNCTION_TARGET": true, "PORT": true, "PYEXEC_LOG": true, "PYEXEC_RESULT_TOPIC": true,
		"PUBSUB_EMULATOR_HOST": true, "GOOGLE_CLOUD_PROJECT": true,
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			env = append(env, kv)
		}
	}
	for _, set := range sets {
		for k, v := range set {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// lockedBuffer collects the child's stderr for failure messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// encoding is how a CloudEvent travels over HTTP.
type encoding string

const (
	binaryMode     encoding = "binary"
	structuredMode encoding = "structured"
)

// sender is a CloudEvents HTTP client, as Eventarc is.
type sender struct {
	url    string
	client cloudevents.Client
}

func newSender(t *testing.T, url string) *sender {
	t.Helper()
	// A push that is not answered in time fails the test instead of hanging
	// it; Pub/Sub also gives up on a push after its ack deadline.
	c, err := cloudevents.NewClientHTTP(cehttp.WithClient(http.Client{Timeout: 2 * time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	return &sender{url: url, client: c}
}

// send delivers e once and returns the HTTP status it got.
func (s *sender) send(mode encoding, e event.Event) (int, error) {
	ctx := cloudevents.ContextWithTarget(context.Background(), s.url)
	if mode == binaryMode {
		ctx = cloudevents.WithEncodingBinary(ctx)
	} else {
		ctx = cloudevents.WithEncodingStructured(ctx)
	}
	res := s.client.Send(ctx, e)
	var httpRes *cehttp.Result
	if !errors.As(res, &httpRes) {
		return 0, fmt.Errorf("sending event %s: %w", e.ID(), res)
	}
	return httpRes.StatusCode, nil
}

// sendOnce is send for the test's own goroutine.
func (s *sender) sendOnce(t *testing.T, mode encoding, e event.Event) int {
	t.Helper()
	status, err := s.send(mode, e)
	if err != nil {
		t.Fatal(err)
	}
	return status
}

// deliver sends e until it is acknowledged, backing off between attempts as
// Pub/Sub does when a push endpoint answers an error. It returns the
// statuses of the refused attempts. It may run on any goroutine.
func (s *sender) deliver(t *testing.T, mode encoding, e event.Event) []int {
	var refused []int
	backoff := 50 * time.Millisecond
	deadline := time.Now().Add(4 * time.Minute)
	for {
		status, err := s.send(mode, e)
		if err != nil {
			t.Error(err)
			return refused
		}
		if status/100 == 2 {
			return refused
		}
		refused = append(refused, status)
		if time.Now().After(deadline) {
			t.Errorf("event %s still refused after %d attempts (last status %d)", e.ID(), len(refused), status)
			return refused
		}
		time.Sleep(backoff/2 + rand.N(backoff))
		backoff = min(2*backoff, 2*time.Second)
	}
}

// envelopeEvent wraps an envelope, encoded as JSON, in a messagePublished
// event.
func envelopeEvent(t *testing.T, id string, envelope map[string]any) event.Event {
	t.Helper()
	e := event.New()
	e.SetID(id)
	e.SetType(messagePublished)
	e.SetSource("//pubsub.googleapis.com/projects/proj/topics/scripts")
	if envelope != nil {
		if err := e.SetData(event.ApplicationJSON, envelope); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// publishedEvent is a messagePublished event whose message.data is the
// base64 of data, as Pub/Sub delivers it.
func publishedEvent(t *testing.T, id string, data []byte) event.Event {
	t.Helper()
	return envelopeEvent(t, id, map[string]any{
		"message": map[string]any{
			"data":        base64.StdEncoding.EncodeToString(data),
			"messageId":   id,
			"publishTime": time.Now().UTC().Format(time.RFC3339),
		},
		"subscription": "projects/proj/subscriptions/scripts",
	})
}

func TestExecuteEventOverHTTPAcknowledgesScriptsAndInvalidPayloads(t *testing.T) {
	srv := startEventServer(t, nil)
	send := newSender(t, srv.url)

	const ok = "def main():\n    print('Calculating...')\n    return {'answer': 2 + 2}\n"
	tests := []struct {
		name      string
		event     func(id string) event.Event
		severity  string
		status    string
		errorType string
		error     string // start of the entry's error
		check     func(t *testing.T, entry map[string]any)
	}{
		{
			name:     "a script that returns is logged at INFO with its result and stdout",
			event:    func(id string) event.Event { return publishedEvent(t, id, scriptData(ok, "caller-1")) },
			severity: "INFO", status: "ok",
			check: func(t *testing.T, entry map[string]any) {
				if compactJSON(t, entry["result"]) != `{"answer":4}` || entry["stdout"] != "Calculating..." || entry["id"] != "caller-1" {
					t.Errorf("entry = %v, want result {\"answer\":4}, stdout Calculating... and id caller-1", entry)
				}
			},
		},
		{
			name: "a script that raises is a WARNING with its traceback",
			event: func(id string) event.Event {
				return publishedEvent(t, id, scriptData("def main():\n    return 1 / 0\n", ""))
			},
			severity: "WARNING", status: "error", errorType: "exception", error: "ZeroDivisionError",
			check: func(t *testing.T, entry map[string]any) {
				if tb, _ := entry["traceback"].(string); !strings.Contains(tb, "ZeroDivisionError") {
					t.Errorf("traceback = %q, want the exception", tb)
				}
			},
		},
		{
			name:     "a script without main is a WARNING",
			event:    func(id string) event.Event { return publishedEvent(t, id, scriptData("x = 1\n", "")) },
			severity: "WARNING", status: "error", errorType: "no_main", error: "Script must contain a 'def main()' function",
		},
		{
			name:     "a blank script is a WARNING",
			event:    func(id string) event.Event { return publishedEvent(t, id, scriptData("  \n", "")) },
			severity: "WARNING", status: "error", errorType: "invalid_request", error: "Script must be a non-empty string",
		},
		{
			name: "message.data that is not base64 is a WARNING",
			event: func(id string) event.Event {
				return envelopeEvent(t, id, map[string]any{"message": map[string]any{"data": "***", "messageId": id}})
			},
			severity: "WARNING", status: "error", errorType: "invalid_request", error: "message.data is not valid base64",
		},
		{
			name:     "message data that is not JSON is a WARNING",
			event:    func(id string) event.Event { return publishedEvent(t, id, []byte("def main(): pass")) },
			severity: "WARNING", status: "error", errorType: "invalid_request", error: "message data must be a JSON object",
		},
		{
			name:     "a missing script is a WARNING",
			event:    func(id string) event.Event { return publishedEvent(t, id, []byte(`{"id": "c"}`)) },
			severity: "WARNING", status: "error", errorType: "invalid_request", error: `message data has no "script"`,
		},
		{
			name:     "a script that is not a string is a WARNING",
			event:    func(id string) event.Event { return publishedEvent(t, id, []byte(`{"script": ["def main(): pass"]}`)) },
			severity: "WARNING", status: "error", errorType: "invalid_request", error: `"script" must be a string`,
		},
		{
			name:     "empty message data is a WARNING",
			event:    func(id string) event.Event { return publishedEvent(t, id, nil) },
			severity: "WARNING", status: "error", errorType: "invalid_request", error: "message.data is empty",
		},
		{
			name:     "an event without data is a WARNING",
			event:    func(id string) event.Event { return envelopeEvent(t, id, nil) },
			severity: "WARNING", status: "error", errorType: "invalid_request", error: "event has no data",
		},
	}
	for _, mode := range []encoding{binaryMode, structuredMode} {
		for i, tt := range tests {
			t.Run(string(mode)+": "+tt.name, func(t *testing.T) {
				id := fmt.Sprintf("%s-%d", mode, i)
				if status := send.sendOnce(t, mode, tt.event(id)); status != 200 {
					t.Fatalf("status = %d, want 200 (acknowledged); stderr:\n%s", status, srv.stderr)
				}
				entry := srv.outcome(t, id)
				if entry["severity"] != tt.severity || entry["status"] != tt.status {
					t.Errorf("entry severity, status = %v, %v; want %s, %s", entry["severity"], entry["status"], tt.severity, tt.status)
				}
				if tt.errorType != "" && entry["error_type"] != tt.errorType {
					t.Errorf("entry error_type = %v, want %s", entry["error_type"], tt.errorType)
				}
				if msg, _ := entry["error"].(string); !strings.HasPrefix(msg, tt.error) {
					t.Errorf("entry error = %q, want it to start with %q", msg, tt.error)
				}
				if tt.check != nil {
					tt.check(t, entry)
				}
			})
		}
	}
}

func TestFiftyConcurrentMessagesBeyondTheLimitEachRunOnce(t *testing.T) {
	ps := startPubsub(t)
	createTopic(t, ps, "projects/proj/topics/results")
	// One slot and no queue: most of the 50 find the executor busy at first
	// and are redelivered, as Pub/Sub would.
	srv := startEventServer(t, map[string]string{
		"PYEXEC_CONCURRENCY":   "1",
		"PYEXEC_QUEUE":         "0",
		"GOOGLE_CLOUD_PROJECT": "proj",
		"PYEXEC_RESULT_TOPIC":  "results",
		"PUBSUB_EMULATOR_HOST": ps.Addr,
	})
	send := newSender(t, srv.url)

	const n = 50
	ids := make([]string, n)
	events := make([]event.Event, n)
	for i := range n {
		ids[i] = fmt.Sprintf("burst-%02d", i)
		script := fmt.Sprintf("import time\n\ndef main():\n    time.sleep(0.05)\n    return {'n': %d}\n", i)
		events[i] = publishedEvent(t, ids[i], scriptData(script, ids[i]))
	}
	refused := make([][]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { refused[i] = send.deliver(t, binaryMode, events[i]) })
	}
	wg.Wait()

	busy := 0
	for i, statuses := range refused {
		for _, status := range statuses {
			if status != 503 {
				t.Errorf("message %s was refused with %d, want 503 (busy, redeliver)", ids[i], status)
			}
			busy++
		}
	}
	if busy == 0 {
		t.Errorf("no delivery found the executor busy; the test did not go beyond the concurrency limit")
	}

	// Redeliveries of completed messages are acknowledged without running.
	for _, id := range ids[:5] {
		if status := send.sendOnce(t, structuredMode, publishedEvent(t, id, scriptData("def main():\n    return 'again'\n", id))); status != 200 {
			t.Errorf("redelivery of %s: status %d, want 200", id, status)
		}
	}

	// Entries reach the log through the child's stdout pipe; the last ones
	// may still be on their way.
	entries := srv.waitForLog(t, func(entries []map[string]any) bool {
		dups := 0
		for _, e := range entries {
			if e["duplicate"] == true {
				dups++
			}
		}
		return dups >= 5
	})
	outcomes := map[string]int{}
	retried, duplicates := 0, 0
	for _, e := range entries {
		id, _ := e["message_id"].(string)
		switch {
		case !strings.HasPrefix(id, "burst-"):
		case e["duplicate"] == true:
			duplicates++
		case e["retry"] == true:
			retried++
			if e["error_type"] != "busy" || e["severity"] != "ERROR" {
				t.Errorf("retried entry = %v, want an ERROR of type busy", e)
			}
		default:
			outcomes[id]++
			if e["status"] != "ok" || compactJSON(t, e["result"]) != fmt.Sprintf(`{"n":%d}`, indexOf(ids, id)) {
				t.Errorf("outcome of %s = %v, want ok with its own result", id, e)
			}
		}
	}
	if len(outcomes) != n {
		t.Errorf("got outcomes for %d messages, want %d", len(outcomes), n)
	}
	for id, count := range outcomes {
		if count != 1 {
			t.Errorf("message %s has %d outcomes, want 1", id, count)
		}
	}
	if retried != busy {
		t.Errorf("got %d retried entries, want one per refused delivery (%d)", retried, busy)
	}
	if duplicates != 5 {
		t.Errorf("got %d duplicate entries, want 5", duplicates)
	}

	published := map[string]bool{}
	for _, m := range ps.Messages() {
		var o outcome
		if err := json.Unmarshal(m.Data, &o); err != nil {
			t.Fatalf("published data is not an outcome: %v", err)
		}
		if m.Attributes["message_id"] != o.MessageID || m.Attributes["execution_id"] != o.ExecutionID || m.Attributes["status"] != "ok" {
			t.Errorf("published attributes %v do not match the outcome %+v", m.Attributes, o)
		}
		published[o.MessageID] = true
	}
	if len(ps.Messages()) != n || len(published) != n {
		t.Errorf("results topic got %d messages for %d message IDs, want %d of each", len(ps.Messages()), len(published), n)
	}
}

func indexOf(ids []string, id string) int {
	for i, x := range ids {
		if x == id {
			return i
		}
	}
	return -1
}
