//go:build integration

package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// eventService is cmd/pyexec serving ExecuteEvent exactly as Cloud Run
// runs it (FUNCTION_TARGET=ExecuteEvent, PORT), on a loopback port, with
// the real executor and its log captured.
type eventService struct {
	*testsupport.Binary
}

// startEventService starts the service with env added to its environment,
// and waits until its sandbox self-test has passed.
func startEventService(t *testing.T, env map[string]string) eventService {
	t.Helper()
	all := map[string]string{"FUNCTION_TARGET": "ExecuteEvent"}
	maps.Copy(all, env)
	s := eventService{testsupport.StartBinary(t, all)}
	s.Health(t, http.StatusOK)
	return s
}

// outcome waits for the final entry of message id: its execution's outcome,
// neither a retried attempt nor a duplicate.
func (s eventService) outcome(t *testing.T, id string) map[string]any {
	t.Helper()
	var found map[string]any
	testsupport.PollUntil(t, 10*time.Second, "the outcome of message "+id+" in the log", func() bool {
		for _, e := range s.Entries(t) {
			if e["message_id"] == id && e["execution_id"] != nil && e["retry"] == nil {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// waitForLog waits until done holds for the log, and returns it.
func (s eventService) waitForLog(t *testing.T, done func([]map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries := s.Entries(t)
		if done(entries) || time.Now().After(deadline) {
			return entries
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// envelopeEvent wraps an envelope, encoded as JSON, in a messagePublished
// event; a nil envelope makes an event without data.
func envelopeEvent(t *testing.T, id string, envelope map[string]any) event.Event {
	t.Helper()
	if envelope == nil {
		return testsupport.MessagePublishedEvent(id, nil)
	}
	data, err := json.Marshal(envelope)
	if err != nil {
		t.Fatal(err)
	}
	return testsupport.MessagePublishedEvent(id, data)
}

func TestExecuteEventOverHTTPAcknowledgesScriptsAndInvalidPayloads(t *testing.T) {
	srv := startEventService(t, nil)
	send := testsupport.NewSender(t, srv.URL+"/")

	t.Run("GET /healthz answers as Execute's does", func(t *testing.T) {
		get, _ := http.NewRequest(http.MethodGet, srv.URL+"/healthz", nil)
		checkHealthz(t, "ExecuteEvent: GET /healthz", testsupport.Do(t, get))
		head, _ := http.NewRequest(http.MethodHead, srv.URL+"/healthz", nil)
		if r := testsupport.Do(t, head); r.Status != http.StatusOK || r.Header.Get("X-Execution-Id") == "" {
			t.Errorf("ExecuteEvent: HEAD /healthz = %d %v, want 200 with X-Execution-Id", r.Status, r.Header)
		}
		post, _ := http.NewRequest(http.MethodPost, srv.URL+"/healthz", nil)
		r := testsupport.Do(t, post)
		if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" || r.ErrorType != "method_not_allowed" {
			t.Errorf("ExecuteEvent: POST /healthz = %d Allow %q %s, want 405 Allow \"GET, HEAD\" method_not_allowed", r.Status, r.Header.Get("Allow"), r.Raw)
		}
		checkCommonFields(t, "ExecuteEvent: POST /healthz", r)
	})

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
			name: "a script that returns is logged at INFO with its result and stdout",
			event: func(id string) event.Event {
				return testsupport.PublishedEvent(id, testsupport.ScriptData(ok, "caller-1"))
			},
			severity: "INFO", status: "ok",
			check: func(t *testing.T, entry map[string]any) {
				if testsupport.CompactJSON(t, entry["result"]) != `{"answer":4}` || entry["stdout"] != "Calculating..." || entry["id"] != "caller-1" {
					t.Errorf("entry = %v, want result {\"answer\":4}, stdout Calculating... and id caller-1", entry)
				}
			},
		},
		{
			name: "a script that raises is a WARNING with its traceback",
			event: func(id string) event.Event {
				return testsupport.PublishedEvent(id, testsupport.ScriptData("def main():\n    return 1 / 0\n", ""))
			},
			severity: "WARNING", status: "error", errorType: "exception", error: "ZeroDivisionError",
			check: func(t *testing.T, entry map[string]any) {
				if tb, _ := entry["traceback"].(string); !strings.Contains(tb, "ZeroDivisionError") {
					t.Errorf("traceback = %q, want the exception", tb)
				}
			},
		},
		{
			name: "a script without main is a WARNING",
			event: func(id string) event.Event {
				return testsupport.PublishedEvent(id, testsupport.ScriptData("x = 1\n", ""))
			},
			severity: "WARNING", status: "error", errorType: "no_main", error: "Script must contain a 'def main()' function",
		},
		{
			name:     "a blank script is a WARNING",
			event:    func(id string) event.Event { return testsupport.PublishedEvent(id, testsupport.ScriptData("  \n", "")) },
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
			event:    func(id string) event.Event { return testsupport.PublishedEvent(id, []byte("def main(): pass")) },
			severity: "WARNING", status: "error", errorType: "invalid_request", error: "message data must be a JSON object",
		},
		{
			name:     "a missing script is a WARNING",
			event:    func(id string) event.Event { return testsupport.PublishedEvent(id, []byte(`{"id": "c"}`)) },
			severity: "WARNING", status: "error", errorType: "invalid_request", error: `message data has no "script"`,
		},
		{
			name: "a script that is not a string is a WARNING",
			event: func(id string) event.Event {
				return testsupport.PublishedEvent(id, []byte(`{"script": ["def main(): pass"]}`))
			},
			severity: "WARNING", status: "error", errorType: "invalid_request", error: `"script" must be a string`,
		},
		{
			name:     "empty message data is a WARNING",
			event:    func(id string) event.Event { return testsupport.PublishedEvent(id, nil) },
			severity: "WARNING", status: "error", errorType: "invalid_request", error: "message.data is empty",
		},
		{
			name:     "an event without data is a WARNING",
			event:    func(id string) event.Event { return envelopeEvent(t, id, nil) },
			severity: "WARNING", status: "error", errorType: "invalid_request", error: "event has no data",
		},
	}
	for _, mode := range []testsupport.ContentMode{testsupport.BinaryMode, testsupport.StructuredMode} {
		for i, tt := range tests {
			t.Run(string(mode)+": "+tt.name, func(t *testing.T) {
				id := fmt.Sprintf("%s-%d", mode, i)
				if status := send.SendOnce(t, mode, tt.event(id)); status != 200 {
					t.Fatalf("status = %d, want 200 (acknowledged); stderr:\n%s", status, srv.Stderr)
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
	ps := testsupport.StartPubsub(t)
	testsupport.CreateTopic(t, ps, "projects/proj/topics/results")
	// One slot and no queue: most of the 50 find the executor busy at first
	// and are redelivered, as Pub/Sub would.
	srv := startEventService(t, map[string]string{
		"PYEXEC_CONCURRENCY":   "1",
		"PYEXEC_QUEUE":         "0",
		"GOOGLE_CLOUD_PROJECT": "proj",
		"PYEXEC_RESULT_TOPIC":  "results",
		"PUBSUB_EMULATOR_HOST": ps.Addr,
	})
	send := testsupport.NewSender(t, srv.URL+"/")

	const n = 50
	ids := make([]string, n)
	events := make([]event.Event, n)
	for i := range n {
		ids[i] = fmt.Sprintf("burst-%02d", i)
		script := fmt.Sprintf("import time\n\ndef main():\n    time.sleep(0.05)\n    return {'n': %d}\n", i)
		events[i] = testsupport.PublishedEvent(ids[i], testsupport.ScriptData(script, ids[i]))
	}
	refused := make([][]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { refused[i] = send.Deliver(t, testsupport.BinaryMode, events[i]) })
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
		if status := send.SendOnce(t, testsupport.StructuredMode, testsupport.PublishedEvent(id, testsupport.ScriptData("def main():\n    return 'again'\n", id))); status != 200 {
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
			if e["status"] != "ok" || testsupport.CompactJSON(t, e["result"]) != fmt.Sprintf(`{"n":%d}`, indexOf(ids, id)) {
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
		var o api.Outcome
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

// ExecuteEvent takes the same fields in the message data as POST /execute,
// publishes the output files with the outcome, and publishes an outcome
// over Pub/Sub's 10 MB message limit as the output_limit it is, rather
// than failing the publish at every redelivery.
func TestExecuteEventTakesTheSameFieldsAndPublishesOutputFiles(t *testing.T) {
	srv, ps := startPublishingEventService(t)
	send := testsupport.NewSender(t, srv.URL+"/")
	data := func(t *testing.T, fields map[string]any) []byte {
		t.Helper()
		b, err := json.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	published := func(t *testing.T, messageID string) api.Outcome {
		t.Helper()
		return publishedOutcome(t, ps, messageID)
	}

	t.Run("input, stdin and a file in; an output file out", func(t *testing.T) {
		script := "import sys\n\ndef main(p):\n    rows = open('data/in.csv').read().split()\n    with open('outputs/out.txt', 'w') as f:\n        f.write(sys.stdin.read() * p['times'])\n    return len(rows)\n"
		msg := data(t, map[string]any{"script": script, "id": "files-1", "input": map[string]any{"times": 2}, "stdin": "ab",
			"files": []any{map[string]any{"path": "data/in.csv", "content": "x\n1\n2\n"}}})
		if status := send.SendOnce(t, testsupport.BinaryMode, testsupport.PublishedEvent("files-1", msg)); status != 200 {
			t.Fatalf("status = %d, want 200", status)
		}
		entry := srv.outcome(t, "files-1")
		if entry["status"] != "ok" || testsupport.CompactJSON(t, entry["result"]) != "3" || entry["files"] != float64(1) || entry["output_files"] != float64(1) {
			t.Errorf("entry = %v, want ok, result 3, one input file and one output file", entry)
		}
		o := published(t, "files-1")
		want := []api.OutputFile{{Path: "outputs/out.txt", Content: base64.StdEncoding.EncodeToString([]byte("abab")), Encoding: "base64", Bytes: 4}}
		if o.Status != "ok" || string(o.Result) != "3" || o.ID != "files-1" || !reflect.DeepEqual(o.Files, want) {
			t.Errorf("published outcome = %+v, want ok, result 3 and the output file %+v", o, want)
		}
	})

	t.Run("an invalid field is acknowledged as invalid_request naming it", func(t *testing.T) {
		msg := data(t, map[string]any{"script": "def main():\n    return 1\n", "files": []any{map[string]any{"path": "../x", "content": ""}}})
		if status := send.SendOnce(t, testsupport.BinaryMode, testsupport.PublishedEvent("files-2", msg)); status != 200 {
			t.Fatalf("status = %d, want 200 (acknowledged)", status)
		}
		entry := srv.outcome(t, "files-2")
		if msg, _ := entry["error"].(string); entry["error_type"] != "invalid_request" || !strings.HasPrefix(msg, `files[0].path "../x" has a '..' component`) {
			t.Errorf("entry = %v, want invalid_request naming files[0].path", entry)
		}
	})

	t.Run("an outcome over 10 MB is published as output_limit", func(t *testing.T) {
		// 8 MiB of output files, within the service's cap, is 10.7 MB in base64.
		script := "import os\n\ndef main(_):\n    print('writing')\n    for name in ('a', 'b'):\n        with open(f'outputs/{name}', 'wb') as f:\n            f.write(os.urandom(4 << 20))\n    return 'written'\n"
		msg := data(t, map[string]any{"script": script, "id": "big-1", "input": nil})
		if status := send.SendOnce(t, testsupport.BinaryMode, testsupport.PublishedEvent("big-1", msg)); status != 200 {
			t.Fatalf("status = %d, want 200: acknowledged, not redelivered forever", status)
		}
		entry := srv.outcome(t, "big-1")
		if entry["status"] != "ok" || entry["output_files"] != float64(2) || entry["output_files_bytes"] != float64(8<<20) {
			t.Errorf("entry = %v, want the outcome logged: ok, with 2 output files of 8 MiB", entry)
		}
		entries := srv.waitForLog(t, func(entries []map[string]any) bool {
			for _, e := range entries {
				if e["message_id"] == "big-1" && e["severity"] == "WARNING" {
					return true
				}
			}
			return false
		})
		warned := false
		for _, e := range entries {
			if msg, _ := e["message"].(string); e["message_id"] == "big-1" && e["severity"] == "WARNING" && strings.Contains(msg, "published as output_limit") {
				warned = true
			}
		}
		if !warned {
			t.Errorf("no WARNING entry says the outcome of big-1 was published as output_limit")
		}
		o := published(t, "big-1")
		if o.Status != "error" || o.ErrorType != "output_limit" || o.Error != "Output limit exceeded (the outcome is over Pub/Sub's 10 MB message limit)" ||
			o.Stdout != "writing" || o.Result != nil || o.Files != nil || o.ID != "big-1" {
			t.Errorf("published outcome = %+v, want an output_limit naming Pub/Sub's limit, with stdout and without result or files", o)
		}
	})
}

// startPublishingEventService starts ExecuteEvent publishing its
// outcomes to the topic "results" of a Pub/Sub emulator, which it returns.
func startPublishingEventService(t *testing.T) (eventService, *pstest.Server) {
	t.Helper()
	ps := testsupport.StartPubsub(t)
	testsupport.CreateTopic(t, ps, "projects/proj/topics/results")
	srv := startEventService(t, map[string]string{
		"GOOGLE_CLOUD_PROJECT": "proj",
		"PYEXEC_RESULT_TOPIC":  "results",
		"PUBSUB_EMULATOR_HOST": ps.Addr,
	})
	return srv, ps
}

// publishedOutcome waits for the outcome of messageID on the results
// topic of ps, and returns it.
func publishedOutcome(t *testing.T, ps *pstest.Server, messageID string) api.Outcome {
	t.Helper()
	var found *api.Outcome
	testsupport.PollUntil(t, 10*time.Second, "the outcome of "+messageID+" on the results topic", func() bool {
		for _, m := range ps.Messages() {
			var o api.Outcome
			if json.Unmarshal(m.Data, &o) == nil && o.MessageID == messageID {
				found = &o
				return true
			}
		}
		return false
	})
	return *found
}
