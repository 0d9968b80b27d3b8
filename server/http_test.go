package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor"
	ts "github.com/pyexec/pyexec/internal/testsupport"
	"github.com/pyexec/pyexec/server"
)

// answer is what came back over HTTP.
type answer struct {
	status int
	header http.Header
	body   string
}

// send sends a request with body, as JSON when it has one, and returns the
// answer.
func send(t *testing.T, method, url, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return do(t, req)
}

// do sends req and returns the answer.
func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(raw)}
}

func TestExecuteEventServesHealthzAsExecuteDoes(t *testing.T) {
	health := executor.Health{
		Mode:      "fork",
		Isolation: executor.Isolation{Namespaces: []string{"user", "pid"}, Seccomp: true, UID: 65534, Limits: "cgroup v2"},
		Versions:  executor.Versions{Python: "3.11.2", Pandas: "3", Numpy: "2", Nsjail: "3.6"},
	}
	for _, tt := range []struct {
		name   string
		ready  bool
		method string
		status int
	}{
		{"GET when ready", true, http.MethodGet, 200},
		{"HEAD when ready", true, http.MethodHead, 200},
		{"GET when the sandbox is unavailable", false, http.MethodGet, 503},
		{"POST", true, http.MethodPost, 405},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := health
			h.Ready = tt.ready
			if !tt.ready {
				h.Reason = "nsjail not found"
			}
			exec := answering(executor.Result{}, nil)
			exec.health = h
			s := startServer(t, exec, nil)
			viaExecute := send(t, tt.method, s.executeURL+"/healthz", "")
			viaEvent := send(t, tt.method, s.eventURL+"/healthz", "")
			if viaExecute.status != tt.status {
				t.Errorf("Execute: %s /healthz = %d %s, want %d", tt.method, viaExecute.status, viaExecute.body, tt.status)
			}
			if viaEvent.status != viaExecute.status || viaEvent.body != viaExecute.body {
				t.Errorf("ExecuteEvent: %s /healthz = %d %s, want what Execute answers: %d %s",
					tt.method, viaEvent.status, viaEvent.body, viaExecute.status, viaExecute.body)
			}
			for _, name := range []string{"Content-Type", "Content-Length", "Allow"} {
				if got, want := viaEvent.header.Get(name), viaExecute.header.Get(name); got != want {
					t.Errorf("ExecuteEvent: %s = %q, want Execute's %q", name, got, want)
				}
			}
			if viaEvent.header.Get("X-Execution-Id") == "" || viaExecute.header.Get("X-Execution-Id") == "" {
				t.Errorf("X-Execution-Id = %q and %q, want one on both", viaExecute.header.Get("X-Execution-Id"), viaEvent.header.Get("X-Execution-Id"))
			}
			if n := exec.calls.Load(); n != 0 {
				t.Errorf("the executor ran %d times, want never", n)
			}
		})
	}
}

// slowSelfTest is a fakeExecutor whose self-test ends when release is
// closed, passing or failing with err; Run answers sandbox_unavailable
// until one has passed, as the executor does.
func slowSelfTest(release <-chan struct{}, err error) *fakeExecutor {
	passed := make(chan struct{})
	f := &fakeExecutor{}
	f.start = func(ctx context.Context) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err == nil {
			close(passed)
		}
		return err
	}
	f.run = func(executor.Request) (executor.Result, error) {
		select {
		case <-passed:
			return executor.Result{Value: json.RawMessage(`1`)}, nil
		default:
			return executor.Result{}, executor.ErrSandboxUnavailable
		}
	}
	return f
}

// timedPost posts a script to url and returns the answer and how long it
// took.
func timedPost(t *testing.T, url string) (answer, time.Duration) {
	t.Helper()
	start := time.Now()
	a := send(t, http.MethodPost, url, string(ts.ScriptBody(t, "def main():\n    return 1\n")))
	return a, time.Since(start)
}

func TestExecutionsWaitForTheFirstSelfTest(t *testing.T) {
	const wait = 2 * time.Second
	for _, tt := range []struct {
		name string
		// releaseAfter: when the self-test ends; 0 never (before cleanup).
		releaseAfter time.Duration
		selfTestErr  error
		wantStatus   int
		// the answer comes no sooner than minTime and no later than maxTime.
		minTime, maxTime time.Duration
	}{
		{"an execution during a self-test that passes runs once it has", 300 * time.Millisecond, nil, 200, 300 * time.Millisecond, wait},
		{"an execution during a self-test that fails answers when it has failed", 300 * time.Millisecond, executor.ErrSandboxUnavailable, 503, 300 * time.Millisecond, wait},
		{"an execution during a self-test that takes too long answers at the bound", 0, nil, 503, wait, 2 * wait},
	} {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			s := serve(t, server.Config{SelfTestWait: wait}, slowSelfTest(release, tt.selfTestErr), nil)
			go func() { _ = s.Start(context.Background()) }()
			if tt.releaseAfter > 0 {
				time.AfterFunc(tt.releaseAfter, func() { close(release) })
			}
			a, took := timedPost(t, s.executeURL+"/execute")
			if a.status != tt.wantStatus {
				t.Errorf("POST /execute = %d %s, want %d", a.status, a.body, tt.wantStatus)
			}
			if tt.wantStatus == 503 && !strings.Contains(a.body, `"error_type":"sandbox_unavailable"`) {
				t.Errorf("POST /execute = %s, want sandbox_unavailable", a.body)
			}
			if took < tt.minTime || took > tt.maxTime {
				t.Errorf("POST /execute answered after %v, want between %v and %v", took, tt.minTime, tt.maxTime)
			}
			// Once the first self-test has ended, nothing waits any more.
			if tt.releaseAfter > 0 {
				if _, took := timedPost(t, s.executeURL+"/execute"); took > wait/2 {
					t.Errorf("a later POST /execute took %v, want no wait", took)
				}
			}
		})
	}
}

func TestADeliveryWaitsForTheFirstSelfTestToo(t *testing.T) {
	release := make(chan struct{})
	s := serve(t, server.Config{SelfTestWait: 5 * time.Second}, slowSelfTest(release, nil), nil)
	go func() { _ = s.Start(context.Background()) }()
	time.AfterFunc(300*time.Millisecond, func() { close(release) })
	if status := deliver(t, s.eventURL, ts.PublishedEvent("m1", ts.ScriptData(okScript, ""))); status != http.StatusOK {
		t.Errorf("a delivery during the first self-test: status %d, want 200 (run once the self-test passed)", status)
	}
}

func TestWithoutAWaitExecutionsAnswerAtOnce(t *testing.T) {
	release := make(chan struct{})
	s := serve(t, server.Config{}, slowSelfTest(release, nil), nil)
	go func() { _ = s.Start(context.Background()) }()
	a, took := timedPost(t, s.executeURL+"/execute")
	if a.status != 503 || took > time.Second {
		t.Errorf("POST /execute with no SelfTestWait = %d after %v, want 503 at once", a.status, took)
	}
}

func TestAPanicAnswersAnInternalErrorWithTheExecutionID(t *testing.T) {
	exec := &fakeExecutor{run: func(executor.Request) (executor.Result, error) { panic("boom") }}
	s := startServer(t, exec, nil)
	a := send(t, http.MethodPost, s.executeURL+"/execute", string(ts.ScriptBody(t, okScript)))
	id := a.header.Get("X-Execution-Id")
	want := `{"error":"Internal error (execution ` + id + `)","error_type":"internal","stdout":""}` + "\n"
	if a.status != 500 || id == "" || a.body != want {
		t.Errorf("POST /execute whose handler panics = %d %q (id %q), want 500 %q", a.status, a.body, id, want)
	}
	logged := s.entries(t)
	if len(logged) != 1 || logged[0]["panic"] != "boom" || logged[0]["execution_id"] != id || !bytes.Contains([]byte(logged[0]["stack"].(string)), []byte("goroutine")) {
		t.Errorf("log = %v, want one entry with the panic, its stack and the execution ID", logged)
	}
}

// stuckShutdown is a fakeExecutor whose one execution runs until release
// is closed, and whose Shutdown reports the deadline it was given.
type stuckShutdown struct {
	fakeExecutor
	running  chan struct{}
	deadline chan time.Time
}

func (f *stuckShutdown) Shutdown(ctx context.Context) error {
	d, _ := ctx.Deadline()
	f.deadline <- d
	return nil
}

func TestShutdownKeepsToItsContext(t *testing.T) {
	release := make(chan struct{})
	exec := &stuckShutdown{running: make(chan struct{}), deadline: make(chan time.Time, 1)}
	exec.run = func(executor.Request) (executor.Result, error) {
		close(exec.running)
		<-release
		return executor.Result{Value: json.RawMessage(`1`)}, nil
	}
	s := startServer(t, exec, nil)
	body := ts.ScriptBody(t, okScript)
	answered := make(chan int, 1)
	go func() {
		resp, err := http.Post(s.executeURL+"/execute", "application/json", bytes.NewReader(body))
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	<-exec.running

	const grace = 1500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	deadline, _ := ctx.Deadline()
	start := time.Now()
	err := s.Shutdown(ctx)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "requests still being answered") {
		t.Errorf("Shutdown with an answer still being written = %v, want an error saying so", err)
	}
	if took < grace-100*time.Millisecond || took > grace+time.Second {
		t.Errorf("Shutdown returned after %v, want its context's %v", took, grace)
	}
	// The executor is told to stop a second early, so that what it kills
	// is still answered within the context.
	if got := <-exec.deadline; !got.Equal(deadline.Add(-time.Second)) {
		t.Errorf("the executor's shutdown deadline = %v, want a second before Shutdown's (%v)", got, deadline)
	}
	close(release)
	if status := <-answered; status != http.StatusOK {
		t.Errorf("the execution let go after Shutdown answered %d, want 200", status)
	}
}

// request sends a request with the given headers and returns the answer.
func request(t *testing.T, method, url string, header http.Header) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	return do(t, req)
}

func TestOpenAPIJSONIsTheEmbeddedDocument(t *testing.T) {
	s := startServer(t, answering(executor.Result{}, nil), nil)
	got := request(t, http.MethodGet, s.executeURL+"/openapi.json", nil)
	var doc, want any
	if err := json.Unmarshal([]byte(got.body), &doc); err != nil {
		t.Fatalf("GET /openapi.json body is not JSON: %v", err)
	}
	if err := json.Unmarshal(api.FunctionOpenAPIJSON("Execute"), &want); err != nil {
		t.Fatal(err)
	}
	if got.status != http.StatusOK || got.header.Get("Content-Type") != "application/json" || !reflect.DeepEqual(doc, want) {
		t.Errorf("GET /openapi.json = %d %s, want 200 application/json with Execute's document", got.status, got.header.Get("Content-Type"))
	}
	if got.header.Get("X-Execution-Id") == "" {
		t.Error("GET /openapi.json has no X-Execution-Id")
	}
	head := request(t, http.MethodHead, s.executeURL+"/openapi.json", nil)
	if head.status != http.StatusOK || head.body != "" || head.header.Get("Content-Length") != got.header.Get("Content-Length") {
		t.Errorf("HEAD /openapi.json = %d, Content-Length %s, body %d bytes; want 200, GET's length, no body",
			head.status, head.header.Get("Content-Length"), len(head.body))
	}
	post := send(t, http.MethodPost, s.executeURL+"/openapi.json", "{}")
	if post.status != http.StatusMethodNotAllowed || post.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /openapi.json = %d Allow %q, want 405 Allow GET, HEAD", post.status, post.header.Get("Allow"))
	}
}

func TestRootServesThePlaygroundToBrowsersOnly(t *testing.T) {
	exec := answering(executor.Result{}, nil)
	s := startServer(t, exec, nil)
	const notFound = `{"error":"Not found: use POST /execute or GET /healthz","error_type":"not_found","stdout":""}` + "\n"
	browser := "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	for _, tt := range []struct {
		name, method, path, accept string
		status                     int
		contentType, body, allow   string // body: "" for any
	}{
		{"a browser gets the page", http.MethodGet, "/", browser, 200, "text/html; charset=utf-8", "", ""},
		{"the page's script", http.MethodGet, "/playground/app.js", "*/*", 200, "text/javascript; charset=utf-8", "", ""},
		{"an API client asking for JSON gets the 404", http.MethodGet, "/", "application/json", 404, "application/json", notFound, ""},
		{"an API client asking for anything gets the 404", http.MethodGet, "/", "*/*", 404, "application/json", notFound, ""},
		{"an API client saying nothing gets the 404", http.MethodGet, "/", "", 404, "application/json", notFound, ""},
		{"a file the playground does not have", http.MethodGet, "/playground/nope.js", browser, 404, "application/json", notFound, ""},
		{"a POST from a browser gets the 404", http.MethodPost, "/", browser, 404, "application/json", notFound, ""},
		{"a PUT gets the 404", http.MethodPut, "/", "", 404, "application/json", notFound, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			header := http.Header{}
			if tt.accept != "" {
				header.Set("Accept", tt.accept)
			}
			got := request(t, tt.method, s.executeURL+tt.path, header)
			if got.status != tt.status || got.header.Get("Content-Type") != tt.contentType || got.header.Get("Allow") != tt.allow {
				t.Errorf("%s %s = %d %q Allow %q, want %d %q Allow %q", tt.method, tt.path, got.status,
					got.header.Get("Content-Type"), got.header.Get("Allow"), tt.status, tt.contentType, tt.allow)
			}
			if tt.body != "" && got.body != tt.body {
				t.Errorf("%s %s body = %q, want %q", tt.method, tt.path, got.body, tt.body)
			}
			if got.header.Get("X-Execution-Id") == "" {
				t.Errorf("%s %s has no X-Execution-Id", tt.method, tt.path)
			}
		})
	}
	if n := exec.calls.Load(); n != 0 {
		t.Errorf("the executor ran %d times, want never", n)
	}
}

func TestExecuteEventTakesDeliveriesOnlyAtTheRoot(t *testing.T) {
	exec := answering(executor.Result{Value: json.RawMessage(`1`)}, nil)
	s := startServer(t, exec, nil)
	delivery := `{"message":{"data":"` + base64.StdEncoding.EncodeToString(ts.ScriptData(okScript, "")) + `","messageId":"m1"}}`
	for _, tt := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodPost, "/execute", 404, ""},
		{http.MethodPost, "/topic", 404, ""},
		{http.MethodGet, "/openapi.json", 404, ""},
		{http.MethodPost, "/healthz", 405, "GET, HEAD"},
	} {
		got := send(t, tt.method, s.eventURL+tt.path, delivery)
		var body map[string]any
		_ = json.Unmarshal([]byte(got.body), &body)
		if got.status != tt.status || got.header.Get("Allow") != tt.allow || body["error_type"] == nil || body["stdout"] != "" {
			t.Errorf("ExecuteEvent: %s %s = %d Allow %q %s, want %d Allow %q with a JSON failure",
				tt.method, tt.path, got.status, got.header.Get("Allow"), got.body, tt.status, tt.allow)
		}
	}
	if n := exec.calls.Load(); n != 0 {
		t.Errorf("the executor ran %d times for requests that are no deliveries, want never", n)
	}
	if got := send(t, http.MethodPost, s.eventURL+"/", delivery); got.status != http.StatusOK || exec.calls.Load() != 1 {
		t.Errorf("ExecuteEvent: POST / = %d after %d runs, want 200 after one", got.status, exec.calls.Load())
	}
}

func TestAnAnswerThatCannotBeEncodedIsAFailureLikeAnyOther(t *testing.T) {
	// A result that is not JSON cannot be encoded as one.
	s := startServer(t, answering(executor.Result{Value: json.RawMessage(`{not json`), Stdout: "printed"}, nil), nil)
	got := send(t, http.MethodPost, s.executeURL+"/execute", string(ts.ScriptBody(t, okScript)))
	var body api.Failure
	dec := json.NewDecoder(strings.NewReader(got.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || got.status != http.StatusInternalServerError ||
		body.ErrorType != "internal" || body.Error == "" || !strings.Contains(got.body, `"stdout":""`) {
		t.Errorf("POST /execute with an unencodable result = %d %q, want 500 with error, error_type internal and stdout", got.status, got.body)
	}
}
