package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// answer is one canned answer of a fake pyexec.
type answer struct {
	status int
	header map[string]string
	body   string
}

// fakeService answers POST /execute with answers in turn (the last one
// again once they run out) and records the requests.
type fakeService struct {
	*httptest.Server
	answers []answer

	mu       sync.Mutex // the handler runs on the server's goroutines
	received []received
}

type received struct {
	*http.Request
	body []byte
}

// requests are the requests received so far.
func (f *fakeService) requests() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.received...)
}

func newFakeService(t *testing.T, answers ...answer) *fakeService {
	t.Helper()
	f := &fakeService{answers: answers}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading request body: %v", err)
		}
		f.mu.Lock()
		f.received = append(f.received, received{r, body})
		a := f.answers[min(len(f.received), len(f.answers))-1]
		f.mu.Unlock()
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(f.Close)
	return f
}

func newClient(t *testing.T, url string, opts ...Option) *Client {
	t.Helper()
	c, err := New(url, opts...)
	if err != nil {
		t.Fatalf("New(%q) = %v", url, err)
	}
	return c
}

func TestExecuteReturnsTheDecodedSuccess(t *testing.T) {
	svc := newFakeService(t, answer{
		status: 200,
		header: map[string]string{"X-Execution-Id": "exec-1"},
		body: `{"result": {"big": 123456789012345678901234567890, "sum_a": 6}, "stdout": "Calculating...",
			"files": [{"path": "outputs/a.bin", "content": "AP8=", "encoding": "base64", "bytes": 2},
			          {"path": "outputs/b.txt", "content": "aGk=", "encoding": "base64", "bytes": 2}]}`,
	})
	c := newClient(t, svc.URL+"/base/", WithUserAgent("report-builder/1.0"))

	res, err := c.Execute(context.Background(), Request{Script: "def main():\n    return 1\n"})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}

	r := svc.requests()[0]
	if r.Method != http.MethodPost || r.URL.Path != "/base/execute" {
		t.Errorf("request = %s %s, want POST /base/execute", r.Method, r.URL.Path)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	if got := r.Header.Get("User-Agent"); got != "report-builder/1.0" {
		t.Errorf("User-Agent = %q, want report-builder/1.0", got)
	}
	if got := r.Header.Get("Authorization"); got != "" {
		t.Errorf("Authorization = %q without an ID-token option, want none", got)
	}
	var value map[string]json.RawMessage
	if err := json.Unmarshal(res.Value, &value); err != nil {
		t.Fatalf("Value %s is not a JSON object: %v", res.Value, err)
	}
	if got := string(value["big"]); got != "123456789012345678901234567890" {
		t.Errorf("Value's big = %s, want the integer exactly", got)
	}
	var decoded struct {
		SumA int `json:"sum_a"`
	}
	if err := res.Decode(&decoded); err != nil || decoded.SumA != 6 {
		t.Errorf("Decode = %+v, %v; want sum_a 6", decoded, err)
	}
	if res.Stdout != "Calculating..." {
		t.Errorf("Stdout = %q, want Calculating...", res.Stdout)
	}
	if res.ExecutionID != "exec-1" {
		t.Errorf("ExecutionID = %q, want exec-1", res.ExecutionID)
	}
	wantFiles := []OutputFile{{"outputs/a.bin", []byte{0, 0xff}}, {"outputs/b.txt", []byte("hi")}}
	if fmt.Sprint(res.Files) != fmt.Sprint(wantFiles) {
		t.Errorf("Files = %v, want %v", res.Files, wantFiles)
	}
	if res.Duration <= 0 {
		t.Errorf("Duration = %v, want the time the call took", res.Duration)
	}
	if !bytes.Contains(res.Body, []byte(`"sum_a": 6`)) {
		t.Errorf("Body = %s, want the answer as received", res.Body)
	}
}

func TestDecodeIntoTheWrongTypeFails(t *testing.T) {
	res := &Result{Value: json.RawMessage(`"text"`)}
	var n int
	if err := res.Decode(&n); err == nil {
		t.Errorf("Decode(string into int) = nil, want an error")
	}
}

func TestRequestEncoding(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		want string // the body, compacted
	}{
		{
			name: "a script alone sends only script",
			req:  Request{Script: "def main(): pass"},
			want: `{"script":"def main(): pass"}`,
		},
		{
			name: "input is marshalled as JSON",
			req:  Request{Script: "s", Input: map[string]any{"min": 2, "tags": []string{"a"}}},
			want: `{"script":"s","input":{"min":2,"tags":["a"]}}`,
		},
		{
			name: "json.Number input keeps every digit",
			req:  Request{Script: "s", Input: []any{json.Number("9007199254740993"), json.Number("0.1000000000000000000001")}},
			want: `{"script":"s","input":[9007199254740993,0.1000000000000000000001]}`,
		},
		{
			name: "json.RawMessage input is sent as is",
			req:  Request{Script: "s", Input: json.RawMessage(`{"n": 123456789012345678901234567890}`)},
			want: `{"script":"s","input":{"n":123456789012345678901234567890}}`,
		},
		{
			name: "a null input is sent, unlike a nil one",
			req:  Request{Script: "s", Input: json.RawMessage("null")},
			want: `{"script":"s","input":null}`,
		},
		{
			name: "stdin is sent as text",
			req:  Request{Script: "s", Stdin: "line 1\nline 2\n"},
			want: `{"script":"s","stdin":"line 1\nline 2\n"}`,
		},
		{
			name: "text files go as utf-8, binary ones as base64",
			req: Request{Script: "s", Files: []File{
				{Path: "data/in.csv", Content: []byte("x\n1\n3\n")},
				{Path: "data/é.txt", Content: []byte("héllo")},
				{Path: "data/blob", Content: []byte{0xff, 0, 1}},
				{Path: "empty", Content: nil},
			}},
			want: `{"script":"s","files":[` +
				`{"path":"data/in.csv","content":"x\n1\n3\n","encoding":"utf-8"},` +
				`{"path":"data/é.txt","content":"héllo","encoding":"utf-8"},` +
				`{"path":"data/blob","content":"/wAB","encoding":"base64"},` +
				`{"path":"empty","content":"","encoding":"utf-8"}]}`,
		},
		{
			name: "limits go in seconds and MiB",
			req:  Request{Script: "s", Limits: Limits{Timeout: 1500 * time.Millisecond, MemoryMB: 256}},
			want: `{"script":"s","limits":{"timeout_seconds":1.5,"memory_mb":256}}`,
		},
		{
			name: "a limit left zero is not sent",
			req:  Request{Script: "s", Limits: Limits{Timeout: 5 * time.Second}},
			want: `{"script":"s","limits":{"timeout_seconds":5}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newFakeService(t, answer{status: 200, body: `{"result": null, "stdout": ""}`})
			if _, err := newClient(t, svc.URL).Execute(context.Background(), tt.req); err != nil {
				t.Fatalf("Execute: %v", err)
			}
			var got bytes.Buffer
			if err := json.Compact(&got, svc.requests()[0].body); err != nil {
				t.Fatalf("request body %s is not JSON: %v", svc.requests()[0].body, err)
			}
			if got.String() != tt.want {
				t.Errorf("request body =\n%s\nwant\n%s", got.String(), tt.want)
			}
		})
	}
}

func TestInputThatCannotBeMarshalledIsNotSent(t *testing.T) {
	svc := newFakeService(t, answer{status: 200, body: `{"result": 1, "stdout": ""}`})
	_, err := newClient(t, svc.URL).Execute(context.Background(), Request{Script: "s", Input: func() {}})
	if err == nil || !strings.Contains(err.Error(), "encoding input") {
		t.Errorf("Execute(func input) = %v, want an encoding error", err)
	}
	if len(svc.requests()) != 0 {
		t.Errorf("%d requests sent, want none", len(svc.requests()))
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	name := dir + "/in.csv"
	if err := os.WriteFile(name, []byte("x\n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(name, "")
	if err != nil || f.Path != "in.csv" || string(f.Content) != "x\n1\n" {
		t.Errorf("ReadFile(%q, \"\") = %+v, %v; want in.csv with its content", name, f, err)
	}
	f, err = ReadFile(name, "data/table.csv")
	if err != nil || f.Path != "data/table.csv" {
		t.Errorf("ReadFile(%q, data/table.csv) = %+v, %v; want path data/table.csv", name, f, err)
	}
	if _, err := ReadFile(dir+"/missing", ""); err == nil {
		t.Errorf("ReadFile(missing) = nil error, want one")
	}
}

func TestFailuresAreErrors(t *testing.T) {
	tests := []struct {
		name string
		ans  answer
		want Error
	}{
		{
			name: "timeout",
			ans: answer{status: 400, header: map[string]string{"X-Execution-Id": "e1"},
				body: `{"error": "Execution timed out after 2 seconds", "error_type": "timeout", "stdout": "started"}`},
			want: Error{Type: ErrorTypeTimeout, Message: "Execution timed out after 2 seconds", Stdout: "started", ExecutionID: "e1", StatusCode: 400},
		},
		{
			name: "syntax error",
			ans:  answer{status: 400, body: `{"error": "SyntaxError: invalid syntax (line 1)", "error_type": "syntax_error", "stdout": ""}`},
			want: Error{Type: ErrorTypeSyntaxError, Message: "SyntaxError: invalid syntax (line 1)", StatusCode: 400},
		},
		{
			name: "exception with its traceback",
			ans: answer{status: 400, body: `{"error": "ZeroDivisionError: division by zero", "error_type": "exception", "stdout": "",
				"traceback": "Traceback (most recent call last):\n  File \"script.py\", line 2, in main\nZeroDivisionError: division by zero"}`},
			want: Error{Type: ErrorTypeException, Message: "ZeroDivisionError: division by zero", StatusCode: 400,
				Traceback: "Traceback (most recent call last):\n  File \"script.py\", line 2, in main\nZeroDivisionError: division by zero"},
		},
		{
			name: "body too large",
			ans:  answer{status: 413, body: `{"error": "Request body too large", "error_type": "invalid_request", "stdout": ""}`},
			want: Error{Type: ErrorTypeInvalidRequest, Message: "Request body too large", StatusCode: 413},
		},
		{
			name: "internal",
			ans:  answer{status: 500, body: `{"error": "Internal error (execution e9)", "error_type": "internal", "stdout": ""}`},
			want: Error{Type: ErrorTypeInternal, Message: "Internal error (execution e9)", StatusCode: 500},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newFakeService(t, tt.ans)
			_, err := newClient(t, svc.URL).Execute(context.Background(), Request{Script: "s"})
			// As a caller would see it: wrapped by their own code.
			err = fmt.Errorf("building report: %w", err)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("errors.As(%v, *Error) = false, want true", err)
			}
			got := *e
			got.Body, got.retryAfter = nil, 0
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Error = %+v\nwant    %+v", got, tt.want)
			}
			if string(e.Body) != tt.ans.body {
				t.Errorf("Body = %s, want the answer as received", e.Body)
			}
			if want := "pyexec: " + tt.want.Type + ": " + tt.want.Message; e.Error() != want {
				t.Errorf("Error() = %q, want %q", e.Error(), want)
			}
			if len(svc.requests()) != 1 {
				t.Errorf("%d requests sent, want 1: a %s is not retried", len(svc.requests()), tt.want.Type)
			}
		})
	}
}

func TestAnswersNotFromPyexecAreReportedClearly(t *testing.T) {
	tests := []struct {
		name       string
		ans        answer
		wantStatus int
		wantInMsg  []string
	}{
		{
			name:       "an HTML error page",
			ans:        answer{status: 502, header: map[string]string{"Content-Type": "text/html; charset=utf-8"}, body: "<html><body>\n<h1>502 Bad Gateway</h1></body></html>"},
			wantStatus: 502,
			wantInMsg:  []string{`"text/html"): <html><body> <h1>502 Bad Gateway</h1></body></html>`},
		},
		{
			name:       "a 200 that is not JSON",
			ans:        answer{status: 200, header: map[string]string{"Content-Type": "text/plain"}, body: "OK"},
			wantStatus: 200,
			wantInMsg:  []string{`"text/plain"): OK`},
		},
		{
			name:       "a 200 without a result",
			ans:        answer{status: 200, body: `{"status": "ok"}`},
			wantStatus: 200,
			wantInMsg:  []string{"not an answer of pyexec", `{"status": "ok"}`},
		},
		{
			name:       "an error without an error_type",
			ans:        answer{status: 403, body: `{"error": "Forbidden"}`},
			wantStatus: 403,
			wantInMsg:  []string{"not an answer of pyexec", "Forbidden"},
		},
		{
			name:       "an empty body",
			ans:        answer{status: 504, body: ""},
			wantStatus: 504,
			wantInMsg:  []string{"(empty body)"},
		},
		{
			name:       "an output file whose content is not base64",
			ans:        answer{status: 200, body: `{"result": 1, "stdout": "", "files": [{"path": "outputs/x", "content": "!!", "encoding": "base64", "bytes": 1}]}`},
			wantStatus: 200,
			wantInMsg:  []string{`output file "outputs/x": bad base64`},
		},
		{
			name:       "an output file whose size is not the stated one",
			ans:        answer{status: 200, body: `{"result": 1, "stdout": "", "files": [{"path": "outputs/x", "content": "aGk=", "encoding": "base64", "bytes": 3}]}`},
			wantStatus: 200,
			wantInMsg:  []string{`output file "outputs/x": 2 bytes, but the answer says 3`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newFakeService(t, tt.ans)
			_, err := newClient(t, svc.URL).Execute(context.Background(), Request{Script: "s"})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Execute = %v, want an *Error", err)
			}
			if e.Type != "" || e.StatusCode != tt.wantStatus {
				t.Errorf("Type, StatusCode = %q, %d; want \"\", %d", e.Type, e.StatusCode, tt.wantStatus)
			}
			for _, want := range tt.wantInMsg {
				if !strings.Contains(e.Error(), want) {
					t.Errorf("Error() = %q, want it to contain %q", e.Error(), want)
				}
			}
		})
	}
}

func TestConnectionRefusedIsATransportError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()

	_, err = newClient(t, url).Execute(context.Background(), Request{Script: "s"})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Execute = %v, want connection refused", err)
	}
	var e *Error
	if errors.As(err, &e) {
		t.Errorf("errors.As(*Error) = true for %v, want false: no answer arrived", err)
	}
	if !strings.Contains(err.Error(), "sending request") || !strings.Contains(err.Error(), url) {
		t.Errorf("Execute = %q, want it to say it was sending to %s", err, url)
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, url := range []string{"", "localhost:8080", "ftp://host", "http://", "http://host/?a=1", "http://host/#x", "http://[::1"} {
		if _, err := New(url); err == nil {
			t.Errorf("New(%q) = nil error, want one", url)
		}
	}
}

func TestALongUnreadableAnswerIsCutInTheMessage(t *testing.T) {
	svc := newFakeService(t, answer{status: 502, header: map[string]string{"Content-Type": "text/html"}, body: strings.Repeat("<p>proxy error</p>\n", 500)})
	_, err := newClient(t, svc.URL).Execute(context.Background(), Request{Script: "s"})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Execute = %v, want an *Error", err)
	}
	if len(e.Message) > 300 || !strings.HasSuffix(e.Message, "…") {
		t.Errorf("Message = %q (%d bytes), want the start of the page, cut", e.Message, len(e.Message))
	}
	if len(e.Body) != 500*len("<p>proxy error</p>\n") {
		t.Errorf("Body has %d bytes, want the whole answer", len(e.Body))
	}
}
