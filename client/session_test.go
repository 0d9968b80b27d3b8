package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"testing"
	"time"
)

// Canned answers of the session paths.
var (
	sessionStarted = answer{status: 201, body: `{"session_id": "c2Vzc2lvbi1pZC0xMjM0NTY", "idle_timeout_seconds": 600, "expires_at": "2026-12-05T22:00:00Z"}`}
	cellOK         = answer{status: 200, header: map[string]string{"X-Execution-Id": "cell-1"}, body: `{"result": 6, "result_format": "json", "stdout": "summing"}`}
	sessionClosed  = answer{status: 204}
	sessionGone    = answer{status: 404, body: `{"error": "session not found", "error_type": "session_not_found", "stdout": ""}`}
	sessionBusy    = answer{status: 409, body: `{"error": "a cell is already running", "error_type": "session_busy", "stdout": ""}`}
	sessionState   = answer{status: 200, body: `{"session_id": "c2Vzc2lvbi1pZC0xMjM0NTY", "state": "idle", "created_at": "2026-12-05T21:00:00Z",
		"last_used_at": "2026-12-05T21:05:00Z", "expires_at": "2026-12-05T22:00:00Z", "idle_timeout_seconds": 600, "memory_bytes": 52428800, "cells": 3}`}
)

const sessionPath = "/sessions/c2Vzc2lvbi1pZC0xMjM0NTY"

func newSession(t *testing.T, c *Client) *Session {
	t.Helper()
	s, err := c.NewSession(context.Background())
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	return s
}

func TestNewSessionReturnsTheSessionAndSendsItsOptions(t *testing.T) {
	tests := []struct {
		name     string
		opts     []SessionOption
		wantBody string
	}{
		{"no options", nil, `{}`},
		{"files and limits", []SessionOption{
			WithSessionFiles(File{Path: "data/in.csv", Content: []byte("a\n1\n")}),
			WithSessionLimits(Limits{Timeout: 1500 * time.Millisecond, MemoryMB: 256}),
		}, `{"files":[{"path":"data/in.csv","content":"a\n1\n","encoding":"utf-8"}],"limits":{"timeout_seconds":1.5,"memory_mb":256}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newFakeService(t, sessionStarted)
			s, err := newClient(t, svc.URL+"/base/").NewSession(context.Background(), tt.opts...)
			if err != nil {
				t.Fatalf("NewSession: %v", err)
			}
			want := time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC)
			if s.ID != "c2Vzc2lvbi1pZC0xMjM0NTY" || !s.ExpiresAt.Equal(want) || s.IdleTimeout != 10*time.Minute {
				t.Errorf("session = %q, expires %v, idle %v; want the answer's", s.ID, s.ExpiresAt, s.IdleTimeout)
			}
			r := svc.requests()[0]
			if r.Method != http.MethodPost || r.URL.Path != "/base/sessions" || string(r.body) != tt.wantBody {
				t.Errorf("request = %s %s %s, want POST /base/sessions %s", r.Method, r.URL.Path, r.body, tt.wantBody)
			}
		})
	}
}

func TestSessionSendsBackTheAffinityCookie(t *testing.T) {
	started := sessionStarted
	started.header = map[string]string{"Set-Cookie": "GAESA=abc; Path=/"}
	svc := newFakeService(t, started, cellOK, sessionState, sessionClosed)
	c := newClient(t, svc.URL)
	s := newSession(t, c)

	if _, err := s.Run(context.Background(), "x"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := s.State(context.Background()); err != nil {
		t.Fatalf("State: %v", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	want := []string{"POST " + sessionPath + "/execute", "GET " + sessionPath, "DELETE " + sessionPath}
	reqs := svc.requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4", len(reqs))
	}
	if got := reqs[0].Header.Get("Cookie"); got != "" {
		t.Errorf("the start sent Cookie %q, want none", got)
	}
	for i, r := range reqs[1:] {
		if got := r.Method + " " + r.URL.Path; got != want[i] {
			t.Errorf("request %d = %s, want %s", i+2, got, want[i])
		}
		if got := r.Header.Get("Cookie"); got != "GAESA=abc" {
			t.Errorf("%s sent Cookie %q, want GAESA=abc", want[i], got)
		}
	}
	if c.http.Jar != nil {
		t.Errorf("the Client got a cookie jar; want the session to hold its own")
	}
}

func TestSessionsKeepTheirOwnAffinityCookies(t *testing.T) {
	first, second := sessionStarted, sessionStarted
	first.header = map[string]string{"Set-Cookie": "GAESA=one"}
	second.header = map[string]string{"Set-Cookie": "GAESA=two"}
	svc := newFakeService(t, first, second, cellOK)
	c := newClient(t, svc.URL)
	s1, s2 := newSession(t, c), newSession(t, c)

	s1.Run(context.Background(), "x")
	s2.Run(context.Background(), "x")

	reqs := svc.requests()
	if got := reqs[2].Header.Get("Cookie"); got != "GAESA=one" {
		t.Errorf("the first session's cell sent Cookie %q, want GAESA=one", got)
	}
	if got := reqs[3].Header.Get("Cookie"); got != "GAESA=two" {
		t.Errorf("the second session's cell sent Cookie %q, want GAESA=two", got)
	}
}

func TestSessionUsesTheCallersCookieJar(t *testing.T) {
	started := sessionStarted
	started.header = map[string]string{"Set-Cookie": "GAESA=abc"}
	svc := newFakeService(t, started)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	newSession(t, newClient(t, svc.URL, WithHTTPClient(&http.Client{Jar: jar})))

	u, _ := url.Parse(svc.URL)
	if got := jar.Cookies(u); len(got) != 1 || got[0].String() != "GAESA=abc" {
		t.Errorf("the caller's jar holds %v, want GAESA=abc", got)
	}
}

func TestRunReturnsTheCellsValue(t *testing.T) {
	tests := []struct {
		name       string
		answer     answer
		wantValue  string
		wantIsText bool
		wantText   string
	}{
		{"a JSON value", cellOK, `6`, false, `6`},
		{"a statement", answer{status: 200, body: `{"result": null, "result_format": "json", "stdout": ""}`}, `null`, false, `null`},
		{"a value without a JSON form", answer{status: 200, body: `{"result": "   a\n0  1\n1  2", "result_format": "text", "stdout": ""}`},
			`"   a\n0  1\n1  2"`, true, "   a\n0  1\n1  2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newFakeService(t, sessionStarted, tt.answer)
			s := newSession(t, newClient(t, svc.URL))
			res, err := s.Run(context.Background(), "df", WithStdin("in"), WithCellTimeout(2*time.Second),
				WithFiles(File{Path: "b.bin", Content: []byte{0xff}}))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if string(res.Value) != tt.wantValue || res.IsText() != tt.wantIsText || res.Text() != tt.wantText {
				t.Errorf("Value %s, IsText %v, Text %q; want %s, %v, %q", res.Value, res.IsText(), res.Text(), tt.wantValue, tt.wantIsText, tt.wantText)
			}
			wantBody := `{"code":"df","stdin":"in","files":[{"path":"b.bin","content":"/w==","encoding":"base64"}],"limits":{"timeout_seconds":2}}`
			if got := string(svc.requests()[1].body); got != wantBody {
				t.Errorf("cell body = %s, want %s", got, wantBody)
			}
		})
	}
}

func TestRunReturnsStdoutAndTheExecutionID(t *testing.T) {
	svc := newFakeService(t, sessionStarted, cellOK)
	res, err := newSession(t, newClient(t, svc.URL)).Run(context.Background(), "x")
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var n int
	if err := res.Decode(&n); err != nil || n != 6 || res.Stdout != "summing" || res.ExecutionID != "cell-1" || res.Duration <= 0 {
		t.Errorf("Decode = %d, %v; Stdout %q, ExecutionID %q, Duration %v", n, err, res.Stdout, res.ExecutionID, res.Duration)
	}
}

func TestCellFailuresSayWhetherTheSessionEnded(t *testing.T) {
	tests := []struct {
		name      string
		answer    answer
		wantType  string
		wantEnded bool
	}{
		{"an exception keeps the session", answer{status: 400, body: `{"error": "ZeroDivisionError: division by zero", "error_type": "exception", "stdout": "", "traceback": "Traceback"}`}, ErrorTypeException, false},
		{"a timeout ends it", answer{status: 400, body: `{"error": "Execution timed out after 2 seconds", "error_type": "timeout", "stdout": "started", "session_ended": true}`}, ErrorTypeTimeout, true},
		{"an ended session is not found", sessionGone, ErrorTypeSessionNotFound, false},
		{"a second cell at once is session_busy", sessionBusy, ErrorTypeSessionBusy, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newFakeService(t, sessionStarted, tt.answer)
			_, err := newSession(t, newClient(t, svc.URL)).Run(context.Background(), "x")
			var e *Error
			if !errors.As(err, &e) || e.Type != tt.wantType || e.SessionEnded != tt.wantEnded {
				t.Fatalf("Run = %v (%+v), want %s with SessionEnded %v", err, e, tt.wantType, tt.wantEnded)
			}
		})
	}
}

func TestRunRetriesOnlyWhenNothingRan(t *testing.T) {
	tests := []struct {
		name         string
		first        answer
		wantRequests int // cells sent
	}{
		{"busy: nothing ran", busy, 2},
		{"sandbox_unavailable: nothing ran", sandboxUnavailable, 2},
		{"session_busy: another cell runs", sessionBusy, 1},
		{"a proxy's 503: the cell may have run", answer{status: 503, header: map[string]string{"Content-Type": "text/html"}, body: "Service Unavailable"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newFakeService(t, sessionStarted, tt.first, cellOK)
			c := newClient(t, svc.URL)
			recordWaits(c)
			newSession(t, c).Run(context.Background(), "x")
			if got := len(svc.requests()) - 1; got != tt.wantRequests {
				t.Errorf("%d cells sent, want %d", got, tt.wantRequests)
			}
		})
	}
}

func TestNewSessionRetriesBusy(t *testing.T) {
	svc := newFakeService(t, busy, sessionStarted)
	c := newClient(t, svc.URL)
	waits := recordWaits(c)
	if _, err := c.NewSession(context.Background()); err != nil {
		t.Fatalf("NewSession = %v, want the session after a retry", err)
	}
	if got := waits(); len(got) != 1 || got[0] < time.Second {
		t.Errorf("waits = %v, want one of at least the 1 s Retry-After", got)
	}
}

func TestCloseOfAnEndedSessionIsNoError(t *testing.T) {
	svc := newFakeService(t, sessionStarted, sessionClosed, sessionGone)
	s := newSession(t, newClient(t, svc.URL))
	for i := range 2 {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close %d = %v, want nil", i+1, err)
		}
	}
	if got := len(svc.requests()); got != 3 {
		t.Errorf("%d requests, want the start and two DELETEs", got)
	}
}

func TestCloseReturnsOtherFailures(t *testing.T) {
	svc := newFakeService(t, sessionStarted, answer{status: 500, body: `{"error": "internal error", "error_type": "internal", "stdout": ""}`})
	var e *Error
	if err := newSession(t, newClient(t, svc.URL)).Close(context.Background()); !errors.As(err, &e) || e.Type != ErrorTypeInternal {
		t.Errorf("Close = %v, want the internal error", err)
	}
}

func TestSessionIsClosedWhenItsContextIsDone(t *testing.T) {
	svc := newFakeService(t, sessionStarted, sessionClosed)
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := newClient(t, svc.URL).NewSession(ctx); err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	cancel()

	deadline := time.Now().Add(5 * time.Second)
	for len(svc.requests()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no DELETE within 5 s of the context's end")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := svc.requests()[1]; r.Method != http.MethodDelete || r.URL.Path != sessionPath {
		t.Errorf("request = %s %s, want DELETE %s", r.Method, r.URL.Path, sessionPath)
	}
}

func TestADetachedSessionOutlivesItsContext(t *testing.T) {
	svc := newFakeService(t, sessionStarted, sessionClosed)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := newClient(t, svc.URL).NewSession(ctx)
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	s.Detach()
	cancel()
	time.Sleep(100 * time.Millisecond) // time enough for a DELETE that should not come
	if got := len(svc.requests()); got != 1 {
		t.Errorf("%d requests, want only the start", got)
	}
}

func TestStateDecodesTheAnswer(t *testing.T) {
	svc := newFakeService(t, sessionState)
	st, err := newClient(t, svc.URL).AttachSession("c2Vzc2lvbi1pZC0xMjM0NTY").State(context.Background())
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	if st.ID != "c2Vzc2lvbi1pZC0xMjM0NTY" || st.State != SessionIdle || st.Cells != 3 || st.MemoryBytes != 52428800 ||
		st.IdleTimeout != 10*time.Minute || !st.LastUsedAt.Equal(time.Date(2026, 12, 5, 21, 5, 0, 0, time.UTC)) {
		t.Errorf("State = %+v, want the answer's", st)
	}
	if r := svc.requests()[0]; r.Method != http.MethodGet || r.URL.Path != sessionPath {
		t.Errorf("request = %s %s, want GET %s", r.Method, r.URL.Path, sessionPath)
	}
}

func TestAnAttachedSessionsIDIsEscaped(t *testing.T) {
	svc := newFakeService(t, sessionGone)
	_, err := newClient(t, svc.URL).AttachSession("../execute").State(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Type != ErrorTypeSessionNotFound {
		t.Errorf("State = %v, want session_not_found", err)
	}
	if got := svc.requests()[0].URL.EscapedPath(); got != "/sessions/..%2Fexecute" {
		t.Errorf("path = %s, want the ID escaped into one segment", got)
	}
}
