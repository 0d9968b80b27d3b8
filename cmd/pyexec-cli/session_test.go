package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

const testSessionID = "c2Vzc2lvbi1pZC0xMjM0NTY"

// cellAnswer is a fake session's answer to one cell.
type cellAnswer struct {
	status int
	body   string
}

// fakeSessions serves the session paths for one session, testSessionID:
// it answers each cell by its code (a null value for code it was not
// given) and records what it received.
type fakeSessions struct {
	*httptest.Server
	cells map[string]cellAnswer

	mu       sync.Mutex
	received []string // "METHOD PATH", each with " code" for a cell
	bodies   []string
	cookies  []string // each request's Cookie header
}

func newFakeSessions(t *testing.T, cells map[string]cellAnswer) *fakeSessions {
	t.Helper()
	f := &fakeSessions{cells: cells}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var cell struct{ Code string }
		json.Unmarshal(b, &cell)
		what := r.Method + " " + r.URL.Path
		if strings.HasSuffix(r.URL.Path, "/execute") {
			what += " " + cell.Code
		}
		f.mu.Lock()
		f.received = append(f.received, what)
		f.bodies = append(f.bodies, string(b))
		f.cookies = append(f.cookies, r.Header.Get("Cookie"))
		f.mu.Unlock()

		w.Header().Set("Content-Type", "application/json")
		status, body := http.StatusOK, `{"result": null, "result_format": "json", "stdout": ""}`
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/sessions":
			w.Header().Set("Set-Cookie", "GAESA=abc")
			status, body = http.StatusCreated, `{"session_id": "`+testSessionID+`", "idle_timeout_seconds": 600, "expires_at": "2026-12-05T22:00:00Z"}`
		case !strings.HasPrefix(r.URL.Path, "/sessions/"+testSessionID):
			status, body = http.StatusNotFound, `{"error": "session not found", "error_type": "session_not_found", "stdout": ""}`
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
			return
		case r.Method == http.MethodGet:
			body = `{"session_id": "` + testSessionID + `", "state": "idle", "created_at": "2026-12-05T21:00:00Z", "last_used_at": "2026-12-05T21:05:00Z", "expires_at": "2026-12-05T22:00:00Z", "idle_timeout_seconds": 600, "memory_bytes": 1024, "cells": 2}`
		default:
			if a, ok := f.cells[cell.Code]; ok {
				status, body = a.status, a.body
			}
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(f.Close)
	return f
}

// requests are the requests received so far, as "METHOD PATH[ code]".
func (f *fakeSessions) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.received...)
}

var (
	cellSix   = cellAnswer{200, `{"result": 6, "result_format": "json", "stdout": "doubling"}`}
	cellFrame = cellAnswer{200, `{"result": "   a\n0  1\n1  2", "result_format": "text", "stdout": ""}`}
	cellRaise = cellAnswer{400, `{"error": "ZeroDivisionError: division by zero", "error_type": "exception", "stdout": "before", "traceback": "Traceback (most recent call last):\n  File \"<cell>\", line 1\nZeroDivisionError: division by zero"}`}
	cellEnds  = cellAnswer{400, `{"error": "Execution timed out after 2 seconds", "error_type": "timeout", "stdout": "", "session_ended": true}`}
)

const cellPath = "POST /sessions/" + testSessionID + "/execute "

func TestReplRunsCellsInOneSessionAndEndsIt(t *testing.T) {
	svc := newFakeSessions(t, map[string]cellAnswer{"f(3)": cellSix, "df": cellFrame})
	stdin := "x = 1\n\n\ndef f(x):\n    return x * 2\n\nf(3)\nd = {'a':\n  1}\ndf\nexit\nnever sent\n"

	got := runCLI(t, map[string]string{"PYEXEC_URL": svc.URL}, stdin, "repl")

	wantStdout := "doubling\n6\n   a\n0  1\n1  2\n"
	if got.code != exitOK || got.stdout != wantStdout {
		t.Errorf("repl = %d, stdout %q, stderr %q; want 0, %q", got.code, got.stdout, got.stderr, wantStdout)
	}
	want := []string{
		"POST /sessions",
		cellPath + "x = 1",
		cellPath + "def f(x):\n    return x * 2",
		cellPath + "f(3)",
		cellPath + "d = {'a':\n  1}",
		cellPath + "df",
		"DELETE /sessions/" + testSessionID,
	}
	if reqs := svc.requests(); strings.Join(reqs, "|") != strings.Join(want, "|") {
		t.Errorf("requests =\n%q\nwant\n%q", reqs, want)
	}
	for i, c := range svc.cookies[1:] {
		if c != "GAESA=abc" {
			t.Errorf("request %d sent Cookie %q, want the affinity cookie GAESA=abc", i+2, c)
		}
	}
	if !strings.Contains(got.stderr, ">>> ") || !strings.Contains(got.stderr, "... ") {
		t.Errorf("stderr = %q, want the prompts", got.stderr)
	}
}

func TestReplReportsAFailedCellAndGoesOn(t *testing.T) {
	svc := newFakeSessions(t, map[string]cellAnswer{"1 / 0": cellRaise, "f(3)": cellSix})

	got := runCLI(t, map[string]string{"PYEXEC_URL": svc.URL}, "1 / 0\nf(3)\n", "repl")

	if got.code != exitOK || got.stdout != "before\ndoubling\n6\n" {
		t.Errorf("repl = %d, stdout %q; want 0, what both cells printed and 6", got.code, got.stdout)
	}
	for _, want := range []string{"pyexec-cli: exception: ZeroDivisionError: division by zero\n", "Traceback (most recent call last):"} {
		if !strings.Contains(got.stderr, want) {
			t.Errorf("stderr = %q, want %q", got.stderr, want)
		}
	}
	if reqs := svc.requests(); reqs[len(reqs)-1] != "DELETE /sessions/"+testSessionID {
		t.Errorf("last request = %q, want the DELETE at end of input", reqs[len(reqs)-1])
	}
}

func TestReplEndsWithItsSession(t *testing.T) {
	svc := newFakeSessions(t, map[string]cellAnswer{"spin()": cellEnds})

	got := runCLI(t, map[string]string{"PYEXEC_URL": svc.URL}, "spin()\nnever sent\n", "repl")

	if got.code != exitScriptError || !strings.Contains(got.stderr, "the cell ended its session") {
		t.Errorf("repl = %d, stderr %q; want %d and the session's end", got.code, got.stderr, exitScriptError)
	}
	for _, r := range svc.requests() {
		if strings.HasSuffix(r, "never sent") {
			t.Errorf("a cell after the session ended was sent")
		}
	}
}

func TestReplWithoutAServiceExitsUnavailable(t *testing.T) {
	svc := httptest.NewServer(http.NotFoundHandler())
	url := svc.URL
	svc.Close()
	if got := runCLI(t, nil, "1\n", "repl", "--url", url); got.code != exitUnavailable {
		t.Errorf("repl against a closed port = %d, stderr %q; want %d", got.code, got.stderr, exitUnavailable)
	}
}

func TestSessionCommands(t *testing.T) {
	svc := newFakeSessions(t, nil)
	env := map[string]string{"PYEXEC_URL": svc.URL, "XDG_STATE_HOME": t.TempDir()}
	csv := writeTemp(t, "in.csv", "a\n1\n")

	got := runCLI(t, env, "", "session", "new", "--file", csv+"=data/in.csv", "--timeout", "5s", "--memory", "256")
	if got.code != exitOK || got.stdout != testSessionID+"\n" {
		t.Errorf("session new = %d, stdout %q, stderr %q; want 0 and the ID", got.code, got.stdout, got.stderr)
	}
	wantBody := `{"files":[{"path":"data/in.csv","content":"a\n1\n","encoding":"utf-8"}],"limits":{"timeout_seconds":5,"memory_mb":256}}`
	if svc.bodies[0] != wantBody {
		t.Errorf("session new sent %s, want %s", svc.bodies[0], wantBody)
	}

	got = runCLI(t, env, "", "session", "show", testSessionID)
	if got.code != exitOK || !strings.Contains(got.stdout, "\n  \"state\": \"idle\",\n") {
		t.Errorf("session show = %d, stdout %q; want 0 and the indented state", got.code, got.stdout)
	}

	got = runCLI(t, env, "", "session", "end", testSessionID)
	if got.code != exitOK || got.stdout != "" {
		t.Errorf("session end = %d, stdout %q, stderr %q; want 0 and nothing printed", got.code, got.stdout, got.stderr)
	}

	// new did not end the session when it exited: it is for later commands.
	want := []string{"POST /sessions", "GET /sessions/" + testSessionID, "DELETE /sessions/" + testSessionID}
	if reqs := svc.requests(); strings.Join(reqs, "|") != strings.Join(want, "|") {
		t.Errorf("requests = %q, want %q", reqs, want)
	}
}

func TestSessionOfAnUnknownID(t *testing.T) {
	svc := newFakeSessions(t, nil)
	env := map[string]string{"PYEXEC_URL": svc.URL, "XDG_STATE_HOME": t.TempDir()}
	if got := runCLI(t, env, "", "session", "show", "unknown"); got.code != exitScriptError || !strings.Contains(got.stderr, "session_not_found") {
		t.Errorf("session show unknown = %d, stderr %q; want %d, session_not_found", got.code, got.stderr, exitScriptError)
	}
	if got := runCLI(t, env, "", "session", "end", "unknown"); got.code != exitOK {
		t.Errorf("session end unknown = %d, stderr %q; want 0: it has ended already", got.code, got.stderr)
	}
}

func TestRunWithSessionRunsTheFileAsACell(t *testing.T) {
	svc := newFakeSessions(t, map[string]cellAnswer{"f(3)\n": cellSix, "df\n": cellFrame, "1 / 0\n": cellRaise})
	env := map[string]string{"PYEXEC_URL": svc.URL, "XDG_STATE_HOME": t.TempDir()}
	tests := []struct {
		code       string
		wantExit   int
		wantStdout string
	}{
		{"f(3)\n", exitOK, "doubling\n6\n"},
		{"df\n", exitOK, "   a\n0  1\n1  2\n"},
		{"x = 1\n", exitOK, "null\n"},
		{"1 / 0\n", exitScriptError, "before\n"},
	}
	for _, tt := range tests {
		file := writeTemp(t, "cell.py", tt.code)
		got := runCLI(t, env, "", "run", "--session", testSessionID, file, "--stdin", "typed", "--timeout", "2s")
		if got.code != tt.wantExit || got.stdout != tt.wantStdout {
			t.Errorf("run --session with %q = %d, stdout %q, stderr %q; want %d, %q", tt.code, got.code, got.stdout, got.stderr, tt.wantExit, tt.wantStdout)
		}
	}
	wantBody := `{"code":"f(3)\n","stdin":"typed","limits":{"timeout_seconds":2}}`
	if svc.bodies[0] != wantBody {
		t.Errorf("cell body = %s, want %s", svc.bodies[0], wantBody)
	}
}

func TestSessionUsageErrors(t *testing.T) {
	script := writeTemp(t, "s.py", "x = 1\n")
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"session without a verb", []string{"session"}, "session needs new, show or end"},
		{"an unknown verb", []string{"session", "list"}, `unknown session command "list"`},
		{"show without an ID", []string{"session", "show"}, "session show takes one session ID"},
		{"end with two IDs", []string{"session", "end", "a", "b"}, "session end takes one session ID"},
		{"new with an argument", []string{"session", "new", "a"}, "session new takes no arguments"},
		{"show with a flag of new", []string{"session", "show", "a", "--memory", "5"}, "flag provided but not defined: -memory"},
		{"repl with an argument", []string{"repl", "x.py"}, "repl takes no arguments"},
		{"a cell with --input", []string{"run", "--session", "a", script, "--input", "1"}, "--input does not go with --session"},
		{"a cell with --memory", []string{"run", "--session", "a", script, "--memory", "5"}, "--memory does not go with --session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runCLI(t, nil, "", tt.args...)
			if got.code != exitUsage || !strings.Contains(got.stderr, tt.wantErr) {
				t.Errorf("%q = %d, stderr %q; want %d and %q", tt.args, got.code, got.stderr, exitUsage, tt.wantErr)
			}
		})
	}
}

// One session ID in 64 begins with "-"; show and end take it for the ID,
// wherever it stands among their flags, and run --session takes it as its
// flag's value.
func TestASessionIDMayBeginWithADash(t *testing.T) {
	const id = "-dokx_Zm9vYmFyYmF6cXV4"
	getenv := func(string) string { return "" }
	for _, args := range [][]string{{id}, {"--url", "http://127.0.0.1:1", id}, {id, "--url=http://127.0.0.1:1"}} {
		for _, verb := range []string{"show", "end"} {
			a, err := parseSessionArgs(verb, args, getenv)
			if err != nil || a.id != id {
				t.Errorf("session %s %q = id %q, %v; want id %q", verb, args, a.id, err, id)
			}
		}
	}
	if _, err := parseSessionArgs("new", []string{id}, getenv); err == nil {
		t.Errorf("session new %q succeeded, want the error that new takes no arguments", id)
	}
	if _, err := parseSessionArgs("show", []string{"-dokx"}, getenv); err == nil {
		t.Error("session show -dokx succeeded, want an unknown flag's error: it has no session ID's shape")
	}
	a, err := parseRunArgs([]string{"--session", id, "cell.py"}, getenv)
	if err != nil || a.session != id {
		t.Errorf("run --session %s cell.py = session %q, %v; want %q", id, a.session, err, id)
	}
}
