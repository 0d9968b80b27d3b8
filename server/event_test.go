package server_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor"
	ts "github.com/pyexec/pyexec/internal/testsupport"
	"github.com/pyexec/pyexec/server"
)

const okScript = "def main():\n    return {'answer': 4}\n"

// deliver sends e to the ExecuteEvent server at url once, in binary mode,
// and returns the status: 200 acknowledges, anything else redelivers.
func deliver(t *testing.T, url string, e event.Event) int {
	t.Helper()
	return ts.NewSender(t, url).SendOnce(t, ts.BinaryMode, e)
}

func TestInvalidPayloadsAreAcknowledgedWithAWarningSayingWhy(t *testing.T) {
	tests := []struct {
		name  string
		event event.Event
		want  string // in the entry's error
	}{
		{"an event with no data", ts.MessagePublishedEvent("m1", nil), "event has no data"},
		{"event data that is not JSON", ts.MessagePublishedEvent("m1", []byte("hello")), "not a Pub/Sub message envelope"},
		{"an envelope without message.data", ts.MessagePublishedEvent("m1", []byte(`{"message":{"messageId":"m1"}}`)), "message.data is empty"},
		{"an empty message.data", ts.PublishedEvent("m1", nil), "message.data is empty"},
		{"message.data that is not base64", ts.MessagePublishedEvent("m1", []byte(`{"message":{"data":"%%%not base64","messageId":"m1"}}`)), "not valid base64"},
		{"message data that is not JSON", ts.PublishedEvent("m1", []byte("print('hi')")), "must be a JSON object"},
		{"message data that is a JSON array", ts.PublishedEvent("m1", []byte(`["def main(): pass"]`)), "must be a JSON object"},
		{"message data that is JSON null", ts.PublishedEvent("m1", []byte(`null`)), "must be a JSON object"},
		{"message data that is not UTF-8", ts.PublishedEvent("m1", []byte("{\"script\": \"\xff\"}")), "valid UTF-8"},
		{"a missing script", ts.PublishedEvent("m1", []byte(`{"id":"c1"}`)), `has no "script"`},
		{"a script that is a number", ts.PublishedEvent("m1", []byte(`{"script":42}`)), `"script" must be a string`},
		{"a script that is null", ts.PublishedEvent("m1", []byte(`{"script":null}`)), `"script" must be a string`},
		{"a script that is an object", ts.PublishedEvent("m1", []byte(`{"script":{"code":"x"}}`)), `"script" must be a string`},
		{"a caller id that is not a string", ts.PublishedEvent("m1", []byte(`{"script":"def main(): pass","id":7}`)), `"id" must be a string`},
		{"an event of another type", func() event.Event {
			e := ts.PublishedEvent("m1", ts.ScriptData(okScript, ""))
			e.SetType("google.cloud.storage.object.v1.finalized")
			return e
		}(), "is not " + server.MessagePublished},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is acknowledged", func(t *testing.T) {
			exec := answering(executor.Result{}, nil)
			s := startServer(t, exec, nil)
			if status := deliver(t, s.eventURL, tt.event); status != http.StatusOK {
				t.Fatalf("status = %d, want 200 (acknowledged)", status)
			}
			if n := exec.calls.Load(); n != 0 {
				t.Errorf("the executor ran %d times, want never", n)
			}
			got := s.only(t)
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

func TestOutcomesAreAcknowledgedOrRetriedAsTheREADMESays(t *testing.T) {
	unknown := errors.New("nsjail: exec format error")
	tests := []struct {
		name         string
		exec         *fakeExecutor
		wantStatus   int // 200: acknowledged; else redelivered
		wantSeverity string
		wantOutcome  string
		wantType     string
		wantError    string
	}{
		{
			name:         "a script that succeeded is acknowledged at INFO",
			exec:         answering(executor.Result{Value: json.RawMessage(`{"answer":4}`), Stdout: "Calculating...", Duration: 12 * time.Millisecond}, nil),
			wantStatus:   200,
			wantSeverity: "INFO",
			wantOutcome:  "ok",
		},
		{
			name: "a script that raised is acknowledged with a WARNING",
			exec: answering(executor.Result{Stdout: "before"},
				&executor.Error{Type: api.ErrorTypeException, Message: "ZeroDivisionError: division by zero", Traceback: "Traceback..."}),
			wantStatus:   200,
			wantSeverity: "WARNING",
			wantOutcome:  "error",
			wantType:     "exception",
			wantError:    "ZeroDivisionError: division by zero",
		},
		{
			name:         "a blank script is acknowledged with a WARNING",
			exec:         answering(executor.Result{}, &executor.Error{Type: api.ErrorTypeInvalidRequest, Message: "Script must be a non-empty string"}),
			wantStatus:   200,
			wantSeverity: "WARNING",
			wantOutcome:  "error",
			wantType:     "invalid_request",
			wantError:    "Script must be a non-empty string",
		},
		{
			name:         "a timeout is acknowledged with a WARNING",
			exec:         answering(executor.Result{}, &executor.Error{Type: api.ErrorTypeTimeout, Message: "Execution timed out after 30 seconds"}),
			wantStatus:   200,
			wantSeverity: "WARNING",
			wantOutcome:  "error",
			wantType:     "timeout",
			wantError:    "Execution timed out after 30 seconds",
		},
		{
			name:         "a busy executor is retried at ERROR",
			exec:         answering(executor.Result{}, executor.ErrBusy),
			wantStatus:   503,
			wantSeverity: "ERROR",
			wantOutcome:  "error",
			wantType:     "busy",
			wantError:    "Service busy, retry later",
		},
		{
			name:         "an unavailable sandbox is retried at ERROR",
			exec:         answering(executor.Result{}, executor.ErrSandboxUnavailable),
			wantStatus:   503,
			wantSeverity: "ERROR",
			wantOutcome:  "error",
			wantType:     "sandbox_unavailable",
			wantError:    "Sandbox unavailable",
		},
		{
			name:         "an internal error is retried at ERROR",
			exec:         answering(executor.Result{}, unknown),
			wantStatus:   500,
			wantSeverity: "ERROR",
			wantOutcome:  "error",
			wantType:     "internal",
			wantError:    "Internal error (execution ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, tt.exec, nil)
			if status := deliver(t, s.eventURL, ts.PublishedEvent("m1", ts.ScriptData(okScript, "caller-1"))); status != tt.wantStatus {
				t.Fatalf("status = %d, want %d", status, tt.wantStatus)
			}
			got := s.only(t)
			for k, want := range map[string]any{
				"severity": tt.wantSeverity, "status": tt.wantOutcome, "message_id": "m1", "id": "caller-1",
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
			if retry := got["retry"] == true; retry != (tt.wantStatus != 200) {
				t.Errorf("entry retry = %v, want %v", retry, tt.wantStatus != 200)
			}
			if tt.wantOutcome == "ok" {
				if g := ts.CompactJSON(t, got["result"]); g != `{"answer":4}` || got["stdout"] != "Calculating..." || got["duration_ms"] != float64(12) {
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
	exec := answering(executor.Result{Value: json.RawMessage(`1`)}, nil)
	s := startServer(t, exec, nil)
	e := ts.PublishedEvent("m1", ts.ScriptData(okScript, ""))
	for i := range 3 {
		if status := deliver(t, s.eventURL, e); status != http.StatusOK {
			t.Fatalf("delivery %d: status = %d, want 200", i+1, status)
		}
	}
	if n := exec.calls.Load(); n != 1 {
		t.Errorf("the executor ran %d times, want once", n)
	}
	entries := s.entries(t)
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
	exec := &fakeExecutor{run: func(executor.Request) (executor.Result, error) {
		if busy.Swap(false) {
			return executor.Result{}, executor.ErrBusy
		}
		return executor.Result{Value: json.RawMessage(`1`)}, nil
	}}
	s := startServer(t, exec, nil)
	e := ts.PublishedEvent("m1", ts.ScriptData(okScript, ""))
	if status := deliver(t, s.eventURL, e); status != http.StatusServiceUnavailable {
		t.Fatalf("first delivery: status = %d, want 503 (busy, redelivered)", status)
	}
	for i := range 2 {
		if status := deliver(t, s.eventURL, e); status != http.StatusOK {
			t.Fatalf("delivery %d: status = %d, want 200", i+2, status)
		}
	}
	if n := exec.calls.Load(); n != 2 {
		t.Errorf("the executor ran %d times, want twice (busy, then ok)", n)
	}
}

func TestDeliveriesOfOneMessageAtOnceRunItOnce(t *testing.T) {
	release := make(chan struct{})
	exec := &fakeExecutor{run: func(executor.Request) (executor.Result, error) {
		<-release
		return executor.Result{Value: json.RawMessage(`1`)}, nil
	}}
	s := startServer(t, exec, nil)
	e := ts.PublishedEvent("m1", ts.ScriptData(okScript, ""))
	sender := ts.NewSender(t, s.eventURL)
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if status, err := sender.Send(ts.BinaryMode, e); err != nil || status != http.StatusOK {
				t.Errorf("delivery: status %d, error %v; want 200", status, err)
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := exec.calls.Load(); n != 1 {
		t.Errorf("the executor ran %d times, want once", n)
	}
	if n := len(s.entries(t)); n != 5 {
		t.Errorf("got %d entries, want one outcome and four duplicates", n)
	}
}

func TestLoggedOutputIsCappedAt64KiB(t *testing.T) {
	const maxLogged = 64 << 10
	stdout := strings.Repeat("é", 40<<10) // 80 KiB of two-byte characters
	result, _ := json.Marshal(map[string]string{"big": strings.Repeat("x", 70<<10)})
	s := startServer(t, answering(executor.Result{Value: result, Stdout: stdout}, nil), nil)
	if status := deliver(t, s.eventURL, ts.PublishedEvent("m1", ts.ScriptData(okScript, ""))); status != http.StatusOK {
		t.Fatalf("status = %d, want 200", status)
	}
	got := s.only(t)
	logged, _ := got["stdout"].(string)
	if len(logged) > maxLogged || !strings.HasPrefix(stdout, logged) || len(logged) < maxLogged-1 {
		t.Errorf("logged stdout has %d bytes, want the first %d bytes, cut at a character", len(logged), maxLogged)
	}
	if got["stdout_truncated"] != true || got["stdout_bytes"] != float64(len(stdout)) {
		t.Errorf("entry = stdout_truncated %v, stdout_bytes %v; want true, %d", got["stdout_truncated"], got["stdout_bytes"], len(stdout))
	}
	if _, ok := got["result"]; ok || got["result_truncated"] != true || got["result_bytes"] != float64(len(result)) {
		t.Errorf("entry = result present %v, result_truncated %v, result_bytes %v; want the result left out", ok, got["result_truncated"], got["result_bytes"])
	}
}

func TestEntriesCarryTheEventsTrace(t *testing.T) {
	s := startServer(t, answering(executor.Result{Value: json.RawMessage(`1`)}, nil), nil)
	e := ts.PublishedEvent("m1", ts.ScriptData(okScript, ""))
	e.SetExtension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if status := deliver(t, s.eventURL, e); status != http.StatusOK {
		t.Fatalf("status = %d, want 200", status)
	}
	got := s.only(t)
	if got["logging.googleapis.com/trace"] != "projects/proj/traces/4bf92f3577b34da6a3ce929d0e0e4736" ||
		got["logging.googleapis.com/spanId"] != "00f067aa0ba902b7" {
		t.Errorf("entry = %v, want the traceparent's trace and span", got)
	}
}

func TestOutcomesArePublishedToTheResultsTopic(t *testing.T) {
	tests := []struct {
		name       string
		exec       *fakeExecutor
		data       []byte
		wantStatus string
		want       map[string]any
	}{
		{
			name:       "a success publishes result and stdout",
			exec:       answering(executor.Result{Value: json.RawMessage(`{"answer":4}`), Stdout: "Calculating...", Duration: 5 * time.Millisecond}, nil),
			data:       ts.ScriptData(okScript, "caller-1"),
			wantStatus: "ok",
			want:       map[string]any{"result": map[string]any{"answer": float64(4)}, "stdout": "Calculating...", "id": "caller-1", "duration_ms": float64(5)},
		},
		{
			name:       "a success publishes its output files",
			exec:       answering(executor.Result{Value: json.RawMessage(`1`), Files: []executor.File{{Path: "outputs/a.bin", Content: []byte{0, 0xff}}}}, nil),
			data:       []byte(`{"script": "x", "files": [{"path": "in.csv", "content": "x"}]}`),
			wantStatus: "ok",
			want: map[string]any{"result": float64(1), "files": []any{
				map[string]any{"path": "outputs/a.bin", "content": "AP8=", "encoding": "base64", "bytes": float64(2)},
			}},
		},
		{
			name: "a script error publishes error, error_type and traceback",
			exec: answering(executor.Result{Stdout: "x"},
				&executor.Error{Type: api.ErrorTypeException, Message: "ValueError: bad", Traceback: "Traceback (most recent call last):\n..."}),
			data:       ts.ScriptData(okScript, ""),
			wantStatus: "error",
			want: map[string]any{"error": "ValueError: bad", "error_type": "exception", "stdout": "x",
				"traceback": "Traceback (most recent call last):\n..."},
		},
		{
			name:       "an invalid payload publishes why",
			exec:       answering(executor.Result{}, nil),
			data:       []byte("not json"),
			wantStatus: "error",
			want:       map[string]any{"error": "message data must be a JSON object {\"script\": \"...\"}", "error_type": "invalid_request"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := ts.StartPubsub(t)
			ts.CreateTopic(t, ps, "projects/proj/topics/results")
			results, err := server.NewTopicPublisher(context.Background(), "results", "proj")
			if err != nil {
				t.Fatalf("NewTopicPublisher = %v", err)
			}
			s := startServer(t, tt.exec, results)
			if status := deliver(t, s.eventURL, ts.PublishedEvent("m1", tt.data)); status != http.StatusOK {
				t.Fatalf("status = %d, want 200", status)
			}
			logged := s.only(t)
			msgs := ps.Messages()
			if len(msgs) != 1 {
				t.Fatalf("results topic got %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			wantAttrs := map[string]string{"execution_id": logged["execution_id"].(string), "status": tt.wantStatus, "message_id": "m1"}
			if ts.CompactJSON(t, m.Attributes) != ts.CompactJSON(t, wantAttrs) {
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
			if g, w := ts.CompactJSON(t, got), ts.CompactJSON(t, want); g != w {
				t.Errorf("published outcome =\n%s\nwant\n%s", g, w)
			}
		})
	}
}

func TestAnOutcomeOverPubSubsLimitIsLoggedAndPublishedAsOutputLimit(t *testing.T) {
	ps := ts.StartPubsub(t)
	ts.CreateTopic(t, ps, "projects/proj/topics/results")
	results, err := server.NewTopicPublisher(context.Background(), "results", "proj")
	if err != nil {
		t.Fatalf("NewTopicPublisher = %v", err)
	}
	// Output files whose base64 alone is over 10 MB.
	big := executor.Result{Value: json.RawMessage(`1`), Stdout: "made them", Files: []executor.File{
		{Path: "outputs/a", Content: make([]byte, 4<<20)}, {Path: "outputs/b", Content: make([]byte, 4<<20)},
	}}
	exec := answering(big, nil)
	s := startServer(t, exec, results)
	e := ts.PublishedEvent("m1", ts.ScriptData(okScript, "caller-1"))
	if status := deliver(t, s.eventURL, e); status != http.StatusOK {
		t.Fatalf("status = %d, want 200: acknowledged, not redelivered forever", status)
	}
	entries := s.entries(t)
	if len(entries) != 2 || entries[0]["status"] != "ok" || entries[0]["output_files"] != float64(2) ||
		entries[1]["severity"] != "WARNING" || !strings.Contains(entries[1]["message"].(string), "published as output_limit") ||
		entries[1]["execution_id"] != entries[0]["execution_id"] {
		t.Fatalf("entries = %v, want the outcome (with its 2 output files), then a WARNING that it was published as output_limit", entries)
	}
	msgs := ps.Messages()
	if len(msgs) != 1 {
		t.Fatalf("results topic got %d messages, want 1", len(msgs))
	}
	var got map[string]any
	if err := json.Unmarshal(msgs[0].Data, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"execution_id": entries[0]["execution_id"], "message_id": "m1", "id": "caller-1", "status": "error",
		"error":      "Output limit exceeded (the outcome is over Pub/Sub's 10 MB message limit)",
		"error_type": "output_limit", "stdout": "made them", "duration_ms": float64(0),
	}
	if g, w := ts.CompactJSON(t, got), ts.CompactJSON(t, want); g != w {
		t.Errorf("published outcome =\n%s\nwant\n%s", g, w)
	}
	if msgs[0].Attributes["status"] != "error" {
		t.Errorf("attributes = %v, want status error", msgs[0].Attributes)
	}
}

func TestTheTopicPublisherRefusesAnOutcomeOverPubSubsLimit(t *testing.T) {
	ps := ts.StartPubsub(t)
	ts.CreateTopic(t, ps, "projects/proj/topics/results")
	results, err := server.NewTopicPublisher(context.Background(), "results", "proj")
	if err != nil {
		t.Fatalf("NewTopicPublisher = %v", err)
	}
	for _, tt := range []struct {
		name   string
		stdout int // bytes of stdout in the outcome
		want   error
	}{
		{"well under the limit", 3_000_000, nil},
		{"just over, with its attributes", 9_999_850, server.ErrOutcomeTooLarge},
		{"far over", 12_000_000, server.ErrOutcomeTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := api.Outcome{ExecutionID: "e", MessageID: "m", Status: api.OutcomeOK, Result: json.RawMessage(`1`), Stdout: strings.Repeat("x", tt.stdout)}
			if err := results.Publish(context.Background(), o); !errors.Is(err, tt.want) {
				t.Errorf("Publish(%d bytes of stdout) = %v, want %v", tt.stdout, err, tt.want)
			}
		})
	}
}

func TestAFailedPublishIsRetriedAndTheOutcomeStaysLogged(t *testing.T) {
	ps := ts.StartPubsub(t)
	results, err := server.NewTopicPublisher(context.Background(), "projects/proj/topics/results", "")
	if err != nil {
		t.Fatalf("NewTopicPublisher = %v", err)
	}
	exec := answering(executor.Result{Value: json.RawMessage(`1`)}, nil)
	s := startServer(t, exec, results)
	e := ts.PublishedEvent("m1", ts.ScriptData(okScript, ""))

	// The topic does not exist yet, so the publish fails.
	if status := deliver(t, s.eventURL, e); status != http.StatusInternalServerError {
		t.Fatalf("status with a missing results topic = %d, want 500 (redelivered)", status)
	}
	entries := s.entries(t)
	if len(entries) != 2 || entries[0]["status"] != "ok" || entries[1]["severity"] != "ERROR" ||
		entries[1]["execution_id"] != entries[0]["execution_id"] {
		t.Fatalf("entries = %v, want the outcome, then an ERROR about publishing it", entries)
	}

	ts.CreateTopic(t, ps, "projects/proj/topics/results")
	if status := deliver(t, s.eventURL, e); status != http.StatusOK {
		t.Fatalf("redelivery: status = %d, want 200", status)
	}
	if n := len(ps.Messages()); n != 1 {
		t.Errorf("results topic got %d messages, want 1", n)
	}
	if status := deliver(t, s.eventURL, e); status != http.StatusOK {
		t.Fatalf("a later duplicate: status = %d, want 200", status)
	}
	if n := exec.calls.Load(); n != 2 {
		t.Errorf("the executor ran %d times, want twice (once per delivery until published)", n)
	}
}

func TestResultTopicConfiguration(t *testing.T) {
	ts.StartPubsub(t)
	tests := []struct {
		name    string
		env     string // PYEXEC_RESULT_TOPIC
		project string
		wantErr string
	}{
		{name: "a topic ID in a known project is fine", env: " results ", project: "proj"},
		{name: "a full topic name needs no project", env: "projects/other/topics/results"},
		{name: "no topic publishes nothing", env: ""},
		{name: "a topic ID without a project is an error", env: "results", wantErr: "names no project"},
		{name: "a malformed topic name is an error", env: "projects/p/subscriptions/s", project: "proj", wantErr: "want a topic ID or projects/PROJECT/topics/TOPIC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := server.ConfigFromEnv(func(k string) string { return map[string]string{"PYEXEC_RESULT_TOPIC": tt.env}[k] })
			if err != nil {
				t.Fatalf("ConfigFromEnv = %v", err)
			}
			topic := cfg.ResultTopic
			if topic != strings.TrimSpace(tt.env) {
				t.Fatalf("ConfigFromEnv: ResultTopic = %q, want %q", topic, strings.TrimSpace(tt.env))
			}
			if topic == "" {
				return // the service makes no publisher
			}
			_, err = server.NewTopicPublisher(context.Background(), topic, tt.project)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewTopicPublisher(%q) = %v, want an error saying %q", topic, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewTopicPublisher(%q) = %v", topic, err)
			}
		})
	}
}

func TestDeliveriesOverHTTPAreAnsweredAsPubSubExpects(t *testing.T) {
	envelope := func(id string, data []byte) string {
		b, _ := json.Marshal(map[string]any{"message": map[string]any{"data": base64.StdEncoding.EncodeToString(data), "messageId": id}})
		return string(b)
	}
	const maxEvent = 16 << 20
	tests := []struct {
		name       string
		method     string
		headers    map[string]string
		body       string
		exec       *fakeExecutor
		wantStatus int
		wantEntry  map[string]any // fields the one entry must have; nil: no entry
		wantRuns   int32
	}{
		{
			name:       "a binary-mode CloudEvent runs and is acknowledged",
			headers:    map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "m1", "Ce-Type": server.MessagePublished, "Ce-Source": "//pubsub", "Content-Type": "application/json"},
			body:       envelope("m1", ts.ScriptData(okScript, "c1")),
			exec:       answering(executor.Result{Value: json.RawMessage(`4`)}, nil),
			wantStatus: 200,
			wantEntry:  map[string]any{"status": "ok", "message_id": "m1", "id": "c1", "result": float64(4)},
			wantRuns:   1,
		},
		{
			name:       "a push subscription's bare envelope runs and is acknowledged",
			headers:    map[string]string{"Content-Type": "application/json"},
			body:       envelope("m2", ts.ScriptData(okScript, "")),
			exec:       answering(executor.Result{Value: json.RawMessage(`4`)}, nil),
			wantStatus: 200,
			wantEntry:  map[string]any{"status": "ok", "message_id": "m2"},
			wantRuns:   1,
		},
		{
			name:       "a CloudEvent missing required attributes is acknowledged as invalid",
			headers:    map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "m3", "Content-Type": "application/json"},
			body:       envelope("m3", ts.ScriptData(okScript, "")),
			exec:       answering(executor.Result{}, nil),
			wantStatus: 200,
			wantEntry:  map[string]any{"severity": "WARNING", "error_type": "invalid_request", "message_id": "m3"},
		},
		{
			name:       "a delivery over 16 MB is acknowledged as invalid",
			headers:    map[string]string{"Content-Type": "application/json"},
			body:       strings.Repeat(" ", maxEvent+1),
			exec:       answering(executor.Result{}, nil),
			wantStatus: 200,
			wantEntry:  map[string]any{"severity": "WARNING", "error_type": "invalid_request", "error": fmt.Sprintf("delivery is larger than %d bytes", maxEvent)},
		},
		{
			name:       "a busy executor answers 503, so the message is redelivered",
			headers:    map[string]string{"Content-Type": "application/json"},
			body:       envelope("m4", ts.ScriptData(okScript, "")),
			exec:       answering(executor.Result{}, executor.ErrBusy),
			wantStatus: 503,
			wantEntry:  map[string]any{"severity": "ERROR", "error_type": "busy", "retry": true},
			wantRuns:   1,
		},
		{
			name:       "an internal error answers 500, so the message is redelivered",
			headers:    map[string]string{"Content-Type": "application/json"},
			body:       envelope("m5", ts.ScriptData(okScript, "")),
			exec:       answering(executor.Result{}, errors.New("boom")),
			wantStatus: 500,
			wantEntry:  map[string]any{"severity": "ERROR", "error_type": "internal", "retry": true},
			wantRuns:   1,
		},
		{
			name:       "the request's trace wins over the event's",
			headers:    map[string]string{"Content-Type": "application/json", "X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"},
			body:       envelope("m6", ts.ScriptData(okScript, "")),
			exec:       answering(executor.Result{Value: json.RawMessage(`4`)}, nil),
			wantStatus: 200,
			wantEntry:  map[string]any{"logging.googleapis.com/trace": "projects/proj/traces/105445aa7843bc8bf206b12000100000"},
			wantRuns:   1,
		},
		{
			name:       "GET is not allowed",
			method:     http.MethodGet,
			exec:       answering(executor.Result{}, nil),
			wantStatus: 405,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, tt.exec, nil)
			req, err := http.NewRequest(cmp.Or(tt.method, http.MethodPost), s.eventURL, strings.NewReader(tt.body))
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
			if n := tt.exec.calls.Load(); n != tt.wantRuns {
				t.Errorf("the executor ran %d times, want %d", n, tt.wantRuns)
			}
			if tt.wantEntry == nil {
				if entries := s.entries(t); len(entries) != 0 {
					t.Errorf("got entries %v, want none", entries)
				}
				return
			}
			got := s.only(t)
			for k, want := range tt.wantEntry {
				if got[k] != want {
					t.Errorf("entry[%q] = %v, want %v", k, got[k], want)
				}
			}
		})
	}
}
