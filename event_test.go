package pyexec

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/pyexec/pyexec/dedup"
	"github.com/pyexec/pyexec/execlog"
	"github.com/pyexec/pyexec/executor"
)

// stubRunner answers Run with a function of the request and counts calls.
type stubRunner struct {
	calls atomic.Int32
	run   func(executor.Request) (executor.Result, error)
}

func (f *stubRunner) Run(_ context.Context, req executor.Request) (executor.Result, error) {
	f.calls.Add(1)
	return f.run(req)
}

func stubAnswer(res executor.Result, err error) *stubRunner {
	return &stubRunner{run: func(executor.Request) (executor.Result, error) { return res, err }}
}

// logLines is stdout for an execlog.Logger, parsed back into entries.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) entries(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		out = append(out, m)
	}
	return out
}

// only returns the one entry logged, failing the test if there are more.
func (l *logLines) only(t *testing.T) map[string]any {
	t.Helper()
	entries := l.entries(t)
	if len(entries) != 1 {
		t.Fatalf("got %d log entries, want 1: %v", len(entries), entries)
	}
	return entries[0]
}

// newEventService returns a service running scripts with r and logging, as
// project "proj", to the returned lines.
func newEventService(t *testing.T, r runner) (*service, *logLines) {
	t.Helper()
	lines := &logLines{}
	log, err := execlog.New(context.Background(), execlog.Config{
		Mode: execlog.ModeStdout, ProjectID: "proj", Out: lines,
		OnError: func(err error) { t.Errorf("logging failed: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return &service{exec: r, log: log}, lines
}

func newEventState() *events { return &events{done: dedup.New(dedupMax, dedupTTL)} }

// handleEvent delivers e as Eventarc does, without request headers.
func handleEvent(ev *events, s *service, e event.Event) error {
	return ev.handle(context.Background(), s, deliveryOf(e, nil, s.log.ProjectID()))
}

// pubsubEvent is a messagePublished event as Eventarc delivers it, carrying
// data as message.data.
func pubsubEvent(messageID string, data []byte) event.Event {
	env := map[string]any{
		"message": map[string]any{
			"data":        base64.StdEncoding.EncodeToString(data),
			"messageId":   messageID,
			"publishTime": "2025-01-01T00:00:00Z",
		},
		"subscription": "projects/proj/subscriptions/scripts",
	}
	b, _ := json.Marshal(env)
	return rawEvent(messageID, b)
}

// rawEvent is a messagePublished event whose data is body, as is.
func rawEvent(id string, body []byte) event.Event {
	e := event.New()
	e.SetID(id)
	e.SetType(messagePublished)
	e.SetSource("//pubsub.googleapis.com/projects/proj/topics/scripts")
	if body != nil {
		_ = e.SetData(event.ApplicationJSON, body)
	}
	return e
}

func scriptData(script, id string) []byte {
	b, _ := json.Marshal(map[string]string{"script": script, "id": id})
	return b
}

const okScript = "def main():\n    return {'answer': 4}\n"

func TestInvalidPayloadsAreAcknowledgedWithAWarningSayingWhy(t *testing.T) {
	tests := []struct {
		name  string
		event event.Event
		want  string // in the entry's error
	}{
		{"an event with no data", rawEvent("m1", nil), "event has no data"},
		{"event data that is not JSON", rawEvent("m1", []byte("hello")), "not a Pub/Sub message envelope"},
		{"an envelope without message.data", rawEvent("m1", []byte(`{"message":{"messageId":"m1"}}`)), "message.data is empty"},
		{"an empty message.data", pubsubEvent("m1", nil), "message.data is empty"},
		{"message.data that is not base64", rawEvent("m1", []byte(`{"message":{"data":"%%%not base64","messageId":"m1"}}`)), "not valid base64"},
		{"message data that is not JSON", pubsubEvent("m1", []byte("print('hi')")), "must be a JSON object"},
		{"message data that is a JSON array", pubsubEvent("m1", []byte(`["def main(): pass"]`)), "must be a JSON object"},
		{"message data that is JSON null", pubsubEvent("m1", []byte(`null`)), "must be a JSON object"},
		{"message data that is not UTF-8", pubsubEvent("m1", []byte("{\"script\": \"\xff\"}")), "valid UTF-8"},
		{"a missing script", pubsubEvent("m1", []byte(`{"id":"c1"}`)), `has no "script"`},
		{"a script that is a number", pubsubEvent("m1", []byte(`{"script":42}`)), `"script" must be a string`},
		{"a script that is null", pubsubEvent("m1", []byte(`{"script":null}`)), `"script" must be a string`},
		{"a script that is an object", pubsubEvent("m1", []byte(`{"script":{"code":"x"}}`)), `"script" must be a string`},
		{"a caller id that is not a string", pubsubEvent("m1", []byte(`{"script":"def main(): pass","id":7}`)), `"id" must be a string`},
		{"an event of another type", func() event.Event {
			e := pubsubEvent("m1", scriptData(okScript, ""))
			e.SetType("google.cloud.storage.object.v1.finalized")
			return e
		}(), "is not " + messagePublished},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is acknowledged", func(t *testing.T) {
			r := stubAnswer(executor.Result{}, nil)
			s, lines := newEventService(t, r)
			if err := handleEvent(newEventState(), s, tt.event); err != nil {
				t.Fatalf("handle = %v, want nil (acknowledged)", err)
			}
			if n := r.calls.Load(); n != 0 {
				t.Errorf("the executor ran %d times, want never", n)
			}
			got := lines.only(t)
			if got["severity"] != "WARNING" || got["status"] != "error" || got["error_type"] != "invalid_request" {
				t.Errorf("entry = %v, want a WARNING with status error and error_type invalid_request", got)
			}
			if msg, _ := got["error"].(string); !strings.Contains(msg, tt.want) {
				t.Errorf("entry error = %q, want it to say %q", msg, tt.want)
			}
			if got["message_id"] != "m1" || got["execution_id"] == "" {
				t.Errorf("entry = %v, want message_id m1 and an execution_id", got)
			}
		})
	}
}

func TestOutcomesAreAcknowledgedOrRetriedBySPEC(t *testing.T) {
	unknown := errors.New("nsjail: exec format error")
	tests := []struct {
		name         string
		runner       *stubRunner
		wantRetry    error // nil: acknowledged
		wantSeverity string
		wantStatus   string
		wantType     string
		wantError    string
	}{
		{
			name:         "a script that succeeded is acknowledged at INFO",
			runner:       stubAnswer(executor.Result{Value: json.RawMessage(`{"answer":4}`), Stdout: "Calculating...", Duration: 12 * time.Millisecond}, nil),
			wantSeverity: "INFO",
			wantStatus:   "ok",
		},
		{
			name: "a script that raised is acknowledged with a WARNING",
			runner: stubAnswer(executor.Result{Stdout: "before"},
				&executor.Error{Type: executor.TypeException, Message: "ZeroDivisionError: division by zero", Traceback: "Traceback..."}),
			wantSeverity: "WARNING",
			wantStatus:   "error",
			wantType:     "exception",
			wantError:    "ZeroDivisionError: division by zero",
		},
		{
			name:         "a blank script is acknowledged with a WARNING",
			runner:       stubAnswer(executor.Result{}, &executor.Error{Type: executor.TypeInvalidRequest, Message: "Script must be a non-empty string"}),
			wantSeverity: "WARNING",
			wantStatus:   "error",
			wantType:     "invalid_request",
			wantError:    "Script must be a non-empty string",
		},
		{
			name:         "a timeout is acknowledged with a WARNING",
			runner:       stubAnswer(executor.Result{}, &executor.Error{Type: executor.TypeTimeout, Message: "Execution timed out after 30 seconds"}),
			wantSeverity: "WARNING",
			wantStatus:   "error",
			wantType:     "timeout",
			wantError:    "Execution timed out after 30 seconds",
		},
		{
			name:         "a busy executor is retried at ERROR",
			runner:       stubAnswer(executor.Result{}, executor.ErrBusy),
			wantRetry:    executor.ErrBusy,
			wantSeverity: "ERROR",
			wantStatus:   "error",
			wantType:     "busy",
			wantError:    "Service busy, retry later",
		},
		{
			name:         "an unavailable sandbox is retried at ERROR",
			runner:       stubAnswer(executor.Result{}, executor.ErrSandboxUnavailable),
			wantRetry:    executor.ErrSandboxUnavailable,
			wantSeverity: "ERROR",
			wantStatus:   "error",
			wantType:     "sandbox_unavailable",
			wantError:    "Sandbox unavailable",
		},
		{
			name:         "an internal error is retried at ERROR",
			runner:       stubAnswer(executor.Result{}, unknown),
			wantRetry:    unknown,
			wantSeverity: "ERROR",
			wantStatus:   "error",
			wantType:     "internal",
			wantError:    "Internal error (execution ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, lines := newEventService(t, tt.runner)
			err := handleEvent(newEventState(), s, pubsubEvent("m1", scriptData(okScript, "caller-1")))
			if tt.wantRetry == nil && err != nil {
				t.Fatalf("handle = %v, want nil (acknowledged)", err)
			}
			if tt.wantRetry != nil && !errors.Is(err, tt.wantRetry) {
				t.Fatalf("handle = %v, want an error wrapping %v (redelivered)", err, tt.wantRetry)
			}
			got := lines.only(t)
			for k, want := range map[string]any{
				"severity": tt.wantSeverity, "status": tt.wantStatus, "message_id": "m1", "id": "caller-1",
				"function": "ExecuteEvent", "script_bytes": float64(len(okScript)),
			} {
				if got[k] != want {
					t.Errorf("entry[%q] = %v, want %v", k, got[k], want)
				}
			}
			if tt.wantType != "" && got["error_type"] != tt.wantType {
				t.Errorf("entry error_type = %v, want %v", got["error_type"], tt.wantType)
			}
			if msg, _ := got["error"].(string); !strings.HasPrefix(msg, tt.wantError) {
				t.Errorf("entry error = %q, want it to start with %q", msg, tt.wantError)
			}
			if retry := got["retry"] == true; retry != (tt.wantRetry != nil) {
				t.Errorf("entry retry = %v, want %v", retry, tt.wantRetry != nil)
			}
			if tt.wantStatus == "ok" {
				if g := compactJSON(t, got["result"]); g != `{"answer":4}` || got["stdout"] != "Calculating..." || got["duration_ms"] != float64(12) {
					t.Errorf("entry = %v, want result, stdout and duration_ms of the execution", got)
				}
			}
			if tt.wantType == "internal" && !strings.Contains(fmt.Sprint(got["cause"]), unknown.Error()) {
				t.Errorf("entry cause = %v, want the internal error's details", got["cause"])
			}
		})
	}
}

func TestARedeliveredMessageRunsOnce(t *testing.T) {
	r := stubAnswer(executor.Result{Value: json.RawMessage(`1`)}, nil)
	s, lines := newEventService(t, r)
	ev := newEventState()
	e := pubsubEvent("m1", scriptData(okScript, ""))
	for i := range 3 {
		if err := handleEvent(ev, s, e); err != nil {
			t.Fatalf("delivery %d: handle = %v, want nil", i+1, err)
		}
	}
	if n := r.calls.Load(); n != 1 {
		t.Errorf("the executor ran %d times, want once", n)
	}
	entries := lines.entries(t)
	if len(entries) != 3 {
		t.Fatalf("got %d entries, want an outcome and two duplicates", len(entries))
	}
	for _, dup := range entries[1:] {
		if dup["duplicate"] != true || dup["message_id"] != "m1" || dup["severity"] != "INFO" {
			t.Errorf("entry = %v, want an INFO duplicate of m1", dup)
		}
	}
}

func TestARetriedMessageRunsAgainUntilItCompletes(t *testing.T) {
	var busy atomic.Bool
	busy.Store(true)
	r := &stubRunner{run: func(executor.Request) (executor.Result, error) {
		if busy.Swap(false) {
			return executor.Result{}, executor.ErrBusy
		}
		return executor.Result{Value: json.RawMessage(`1`)}, nil
	}}
	s, _ := newEventService(t, r)
	ev := newEventState()
	e := pubsubEvent("m1", scriptData(okScript, ""))
	if err := handleEvent(ev, s, e); !errors.Is(err, executor.ErrBusy) {
		t.Fatalf("first delivery: handle = %v, want %v", err, executor.ErrBusy)
	}
	for i := range 2 {
		if err := handleEvent(ev, s, e); err != nil {
			t.Fatalf("delivery %d: handle = %v, want nil", i+2, err)
		}
	}
	if n := r.calls.Load(); n != 2 {
		t.Errorf("the executor ran %d times, want twice (busy, then ok)", n)
	}
}

func TestDeliveriesOfOneMessageAtOnceRunItOnce(t *testing.T) {
	release := make(chan struct{})
	r := &stubRunner{run: func(executor.Request) (executor.Result, error) {
		<-release
		return executor.Result{Value: json.RawMessage(`1`)}, nil
	}}
	s, lines := newEventService(t, r)
	ev := newEventState()
	e := pubsubEvent("m1", scriptData(okScript, ""))
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if err := handleEvent(ev, s, e); err != nil {
				t.Errorf("handle = %v, want nil", err)
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := r.calls.Load(); n != 1 {
		t.Errorf("the executor ran %d times, want once", n)
	}
	if n := len(lines.entries(t)); n != 5 {
		t.Errorf("got %d entries, want one outcome and four duplicates", n)
	}
}

func TestLoggedOutputIsCappedAt64KiB(t *testing.T) {
	stdout := strings.Repeat("é", 40<<10) // 80 KiB of two-byte characters
	result, _ := json.Marshal(map[string]string{"big": strings.Repeat("x", 70<<10)})
	s, lines := newEventService(t, stubAnswer(executor.Result{Value: result, Stdout: stdout}, nil))
	if err := handleEvent(newEventState(), s, pubsubEvent("m1", scriptData(okScript, ""))); err != nil {
		t.Fatal(err)
	}
	got := lines.only(t)
	logged, _ := got["stdout"].(string)
	if len(logged) > maxLoggedBytes || !strings.HasPrefix(stdout, logged) || len(logged) < maxLoggedBytes-1 {
		t.Errorf("logged stdout has %d bytes, want the first %d bytes, cut at a character", len(logged), maxLoggedBytes)
	}
	if got["stdout_truncated"] != true || got["stdout_bytes"] != float64(len(stdout)) {
		t.Errorf("entry = stdout_truncated %v, stdout_bytes %v; want true, %d", got["stdout_truncated"], got["stdout_bytes"], len(stdout))
	}
	if _, ok := got["result"]; ok || got["result_truncated"] != true || got["result_bytes"] != float64(len(result)) {
		t.Errorf("entry = result present %v, result_truncated %v, result_bytes %v; want the result left out", ok, got["result_truncated"], got["result_bytes"])
	}
}

func TestEntriesCarryTheEventsTrace(t *testing.T) {
	s, lines := newEventService(t, stubAnswer(executor.Result{Value: json.RawMessage(`1`)}, nil))
	e := pubsubEvent("m1", scriptData(okScript, ""))
	e.SetExtension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if err := handleEvent(newEventState(), s, e); err != nil {
		t.Fatal(err)
	}
	got := lines.only(t)
	if got["logging.googleapis.com/trace"] != "projects/proj/traces/4bf92f3577b34da6a3ce929d0e0e4736" ||
		got["logging.googleapis.com/spanId"] != "00f067aa0ba902b7" {
		t.Errorf("entry = %v, want the traceparent's trace and span", got)
	}
}

// startPubsub starts pstest on a loopback port and points the Pub/Sub
// client at it, as PUBSUB_EMULATOR_HOST does for any emulator.
func startPubsub(t *testing.T) *pstest.Server {
	t.Helper()
	srv := pstest.NewServerWithAddress("127.0.0.1:0")
	t.Cleanup(func() { srv.Close() })
	t.Setenv("PUBSUB_EMULATOR_HOST", srv.Addr)
	return srv
}

func createTopic(t *testing.T, srv *pstest.Server, name string) {
	t.Helper()
	if _, err := srv.GServer.CreateTopic(context.Background(), &pb.Topic{Name: name}); err != nil {
		t.Fatalf("CreateTopic(%s) = %v", name, err)
	}
}

func TestOutcomesArePublishedToTheResultsTopic(t *testing.T) {
	tests := []struct {
		name       string
		runner     *stubRunner
		data       []byte
		wantStatus string
		want       map[string]any
	}{
		{
			name:       "a success publishes result and stdout",
			runner:     stubAnswer(executor.Result{Value: json.RawMessage(`{"answer":4}`), Stdout: "Calculating...", Duration: 5 * time.Millisecond}, nil),
			data:       scriptData(okScript, "caller-1"),
			wantStatus: "ok",
			want:       map[string]any{"result": map[string]any{"answer": float64(4)}, "stdout": "Calculating...", "id": "caller-1", "duration_ms": float64(5)},
		},
		{
			name: "a script error publishes error, error_type and traceback",
			runner: stubAnswer(executor.Result{Stdout: "x"},
				&executor.Error{Type: executor.TypeException, Message: "ValueError: bad", Traceback: "Traceback (most recent call last):\n..."}),
			data:       scriptData(okScript, ""),
			wantStatus: "error",
			want: map[string]any{"error": "ValueError: bad", "error_type": "exception", "stdout": "x",
				"traceback": "Traceback (most recent call last):\n..."},
		},
		{
			name:       "an invalid payload publishes why",
			runner:     stubAnswer(executor.Result{}, nil),
			data:       []byte("not json"),
			wantStatus: "error",
			want:       map[string]any{"error": "message data must be a JSON object {\"script\": \"...\"}", "error_type": "invalid_request"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startPubsub(t)
			createTopic(t, srv, "projects/proj/topics/results")
			ev, err := newEvents(context.Background(), eventConfig{ResultTopic: "results"}, "proj")
			if err != nil {
				t.Fatalf("newEvents = %v", err)
			}
			s, lines := newEventService(t, tt.runner)
			if err := handleEvent(ev, s, pubsubEvent("m1", tt.data)); err != nil {
				t.Fatalf("handle = %v, want nil", err)
			}
			logged := lines.only(t)
			msgs := srv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("results topic got %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			wantAttrs := map[string]string{"execution_id": logged["execution_id"].(string), "status": tt.wantStatus, "message_id": "m1"}
			if compactJSON(t, m.Attributes) != compactJSON(t, wantAttrs) {
				t.Errorf("attributes = %v, want %v", m.Attributes, wantAttrs)
			}
			var got map[string]any
			if err := json.Unmarshal(m.Data, &got); err != nil {
				t.Fatalf("published data is not JSON: %v", err)
			}
			want := map[string]any{"execution_id": wantAttrs["execution_id"], "message_id": "m1", "status": tt.wantStatus, "duration_ms": float64(0), "stdout": ""}
			for k, v := range tt.want {
				want[k] = v
			}
			if g, w := compactJSON(t, got), compactJSON(t, want); g != w {
				t.Errorf("published outcome =\n%s\nwant\n%s", g, w)
			}
		})
	}
}

func TestAFailedPublishIsRetriedAndTheOutcomeStaysLogged(t *testing.T) {
	srv := startPubsub(t)
	ev, err := newEvents(context.Background(), eventConfig{ResultTopic: "projects/proj/topics/results"}, "")
	if err != nil {
		t.Fatalf("newEvents = %v", err)
	}
	r := stubAnswer(executor.Result{Value: json.RawMessage(`1`)}, nil)
	s, lines := newEventService(t, r)
	e := pubsubEvent("m1", scriptData(okScript, ""))

	// The topic does not exist yet, so the publish fails.
	if err := handleEvent(ev, s, e); err == nil {
		t.Fatal("handle with a missing results topic = nil, want an error (redelivered)")
	}
	entries := lines.entries(t)
	if len(entries) != 2 || entries[0]["status"] != "ok" || entries[1]["severity"] != "ERROR" ||
		entries[1]["execution_id"] != entries[0]["execution_id"] {
		t.Fatalf("entries = %v, want the outcome, then an ERROR about publishing it", entries)
	}

	createTopic(t, srv, "projects/proj/topics/results")
	if err := handleEvent(ev, s, e); err != nil {
		t.Fatalf("redelivery: handle = %v, want nil", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("results topic got %d messages, want 1", n)
	}
	if err := handleEvent(ev, s, e); err != nil {
		t.Fatalf("a later duplicate: handle = %v, want nil", err)
	}
	if n := r.calls.Load(); n != 2 {
		t.Errorf("the executor ran %d times, want twice (once per delivery until published)", n)
	}
}

func TestResultTopicConfiguration(t *testing.T) {
	startPubsub(t)
	tests := []struct {
		name    string
		topic   string
		project string
		wantErr string
	}{
		{name: "a topic ID in a known project is fine", topic: "results", project: "proj"},
		{name: "a full topic name needs no project", topic: "projects/other/topics/results"},
		{name: "no topic publishes nothing", topic: ""},
		{name: "a topic ID without a project is an error", topic: "results", wantErr: "names no project"},
		{name: "a malformed topic name is an error", topic: "projects/p/subscriptions/s", project: "proj", wantErr: "want a topic ID or projects/PROJECT/topics/TOPIC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"PYEXEC_RESULT_TOPIC": tt.topic}
			ev, err := newEvents(context.Background(), eventConfigFromEnv(func(k string) string { return env[k] }), tt.project)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("newEvents(%q) = %v, want an error saying %q", tt.topic, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("newEvents(%q) = %v", tt.topic, err)
			}
			if (ev.results != nil) != (tt.topic != "") {
				t.Errorf("newEvents(%q) publishes = %v, want %v", tt.topic, ev.results != nil, tt.topic != "")
			}
		})
	}
}

func compactJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startEventHTTP serves ev for s over real HTTP on loopback.
func startEventHTTP(t *testing.T, ev *events, s *service) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ev.serveHTTP(w, r, s) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestDeliveriesOverHTTPAreAnsweredAsPubSubExpects(t *testing.T) {
	envelope := func(id string, data []byte) string {
		b, _ := json.Marshal(map[string]any{"message": map[string]any{"data": base64.StdEncoding.EncodeToString(data), "messageId": id}})
		return string(b)
	}
	tests := []struct {
		name       string
		method     string
		headers    map[string]string
		body       string
		runner     *stubRunner
		wantStatus int
		wantEntry  map[string]any // fields the one entry must have; nil: no entry
		wantRuns   int32
	}{
		{
			name:       "a binary-mode CloudEvent runs and is acknowledged",
			headers:    map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "m1", "Ce-Type": messagePublished, "Ce-Source": "//pubsub", "Content-Type": "application/json"},
			body:       envelope("m1", scriptData(okScript, "c1")),
			runner:     stubAnswer(executor.Result{Value: json.RawMessage(`4`)}, nil),
			wantStatus: 200,
			wantEntry:  map[string]any{"status": "ok", "message_id": "m1", "id": "c1", "result": float64(4)},
			wantRuns:   1,
		},
		{
			name:       "a push subscription's bare envelope runs and is acknowledged",
			headers:    map[string]string{"Content-Type": "application/json"},
			body:       envelope("m2", scriptData(okScript, "")),
			runner:     stubAnswer(executor.Result{Value: json.RawMessage(`4`)}, nil),
			wantStatus: 200,
			wantEntry:  map[string]any{"status": "ok", "message_id": "m2"},
			wantRuns:   1,
		},
		{
			name:       "a CloudEvent missing required attributes is acknowledged as invalid",
			headers:    map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "m3", "Content-Type": "application/json"},
			body:       envelope("m3", scriptData(okScript, "")),
			runner:     stubAnswer(executor.Result{}, nil),
			wantStatus: 200,
			wantEntry:  map[string]any{"severity": "WARNING", "error_type": "invalid_request", "message_id": "m3"},
		},
		{
			name:       "a delivery over 16 MB is acknowledged as invalid",
			headers:    map[string]string{"Content-Type": "application/json"},
			body:       strings.Repeat(" ", maxEventBytes+1),
			runner:     stubAnswer(executor.Result{}, nil),
			wantStatus: 200,
			wantEntry:  map[string]any{"severity": "WARNING", "error_type": "invalid_request", "error": fmt.Sprintf("delivery is larger than %d bytes", maxEventBytes)},
		},
		{
			name:       "a busy executor answers 503, so the message is redelivered",
			headers:    map[string]string{"Content-Type": "application/json"},
			body:       envelope("m4", scriptData(okScript, "")),
			runner:     stubAnswer(executor.Result{}, executor.ErrBusy),
			wantStatus: 503,
			wantEntry:  map[string]any{"severity": "ERROR", "error_type": "busy", "retry": true},
			wantRuns:   1,
		},
		{
			name:       "an internal error answers 500, so the message is redelivered",
			headers:    map[string]string{"Content-Type": "application/json"},
			body:       envelope("m5", scriptData(okScript, "")),
			runner:     stubAnswer(executor.Result{}, errors.New("boom")),
			wantStatus: 500,
			wantEntry:  map[string]any{"severity": "ERROR", "error_type": "internal", "retry": true},
			wantRuns:   1,
		},
		{
			name:       "the request's trace wins over the event's",
			headers:    map[string]string{"Content-Type": "application/json", "X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"},
			body:       envelope("m6", scriptData(okScript, "")),
			runner:     stubAnswer(executor.Result{Value: json.RawMessage(`4`)}, nil),
			wantStatus: 200,
			wantEntry:  map[string]any{"logging.googleapis.com/trace": "projects/proj/traces/105445aa7843bc8bf206b12000100000"},
			wantRuns:   1,
		},
		{
			name:       "GET is not allowed",
			method:     http.MethodGet,
			runner:     stubAnswer(executor.Result{}, nil),
			wantStatus: 405,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, lines := newEventService(t, tt.runner)
			url := startEventHTTP(t, newEventState(), s)
			req, err := http.NewRequest(cmp.Or(tt.method, http.MethodPost), url, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus == 405 && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow = %q, want POST", resp.Header.Get("Allow"))
			}
			if n := tt.runner.calls.Load(); n != tt.wantRuns {
				t.Errorf("the executor ran %d times, want %d", n, tt.wantRuns)
			}
			if tt.wantEntry == nil {
				if entries := lines.entries(t); len(entries) != 0 {
					t.Errorf("got entries %v, want none", entries)
				}
				return
			}
			got := lines.only(t)
			for k, want := range tt.wantEntry {
				if got[k] != want {
					t.Errorf("entry[%q] = %v, want %v", k, got[k], want)
				}
			}
		})
	}
}
