//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// Sessions over real HTTP against a real service (SPEC §11): state that
// lasts across cells, the answers of a cell that fails or ends its session,
// the bounds on sessions, and that nothing of a session is left after it.

// sessionCall sends method to path with body (nil: none) and decodes the
// answer into v when v is not nil; it returns the status and raw body.
func sessionCall(t *testing.T, base, method, path string, body any, v any) (int, []byte, http.Header) {
	t.Helper()
	var reader *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		reader = bytes.NewReader(b)
	} else {
		reader = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, base+path, reader)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	r := testsupport.Do(t, req)
	if v != nil && len(r.Raw) > 0 {
		if err := json.Unmarshal(r.Raw, v); err != nil {
			t.Fatalf("%s %s: %s: %v", method, path, testsupport.Clip(r.Raw), err)
		}
	}
	return r.Status, r.Raw, r.Header
}

// newSession starts a session with body (nil: none) and requires 201.
func newSession(t *testing.T, base string, body any) api.Session {
	t.Helper()
	var s api.Session
	status, raw, _ := sessionCall(t, base, http.MethodPost, "/sessions", body, &s)
	if status != http.StatusCreated {
		t.Fatalf("POST /sessions = %d %s, want 201", status, testsupport.Clip(raw))
	}
	return s
}

// cellAnswer is a cell's answer, success or failure.
type cellAnswer struct {
	api.CellSuccess
	// The failure's fields.
	Error        string
	ErrorType    string
	Traceback    string
	SessionEnded bool
	status       int
	raw          []byte
}

func runCell(t *testing.T, base, id string, cell api.Cell) cellAnswer {
	t.Helper()
	var a cellAnswer
	var f api.Failure
	a.status, a.raw, _ = sessionCall(t, base, http.MethodPost, "/sessions/"+id+"/execute", cell, &a.CellSuccess)
	_ = json.Unmarshal(a.raw, &f)
	a.Error, a.ErrorType, a.Traceback, a.SessionEnded = f.Error, f.ErrorType, f.Traceback, f.SessionEnded
	return a
}

// mustCell runs code and requires 200 with the result want (JSON text).
func mustCell(t *testing.T, base, id, code, want string) cellAnswer {
	t.Helper()
	a := runCell(t, base, id, api.Cell{Code: code})
	if a.status != http.StatusOK || string(a.Result) != want {
		t.Fatalf("cell %q = %d %s, want 200 with result %s", code, a.status, testsupport.Clip(a.raw), want)
	}
	return a
}

// sessionCgroups lists the cgroups of sessions of the service in process
// pid that exist on the host: those under its executors' parents, named
// "<pid>-<n>". Other services on the host (tests of other packages) are
// not counted.
func sessionCgroups(t *testing.T, pid int) []string {
	t.Helper()
	owner := strconv.Itoa(pid) + "-"
	var found []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), "session-") && strings.HasPrefix(filepath.Base(filepath.Dir(path)), owner) {
			found = append(found, path)
			return fs.SkipDir
		}
		return nil
	})
	return found
}

func TestASessionKeepsStateAcrossCells(t *testing.T) {
	ts := testsupport.StartService(t, nil)
	s := newSession(t, ts.URL, api.SessionRequest{Files: []api.File{{Path: "data.csv", Content: "a,b\n1,2\n3,4\n"}}})
	if len(s.ID) != 22 || s.IdleTimeoutSeconds != 600 {
		t.Fatalf("new session = %+v, want a 22-character ID and 600 s idle timeout", s)
	}
	if exp, err := time.Parse(time.RFC3339, s.ExpiresAt); err != nil || time.Until(exp) < 59*time.Minute {
		t.Fatalf("expires_at = %q, want about an hour from now", s.ExpiresAt)
	}
	mustCell(t, ts.URL, s.ID, "import pandas as pd\ndf = pd.read_csv('data.csv')\nopen('note.txt', 'w').write('kept')\nprint('loaded')", "null")
	a := mustCell(t, ts.URL, s.ID, "int(df.a.sum())", "4")
	if a.ResultFormat != api.ResultFormatJSON {
		t.Errorf("result_format of a number = %q, want json", a.ResultFormat)
	}
	a = mustCell(t, ts.URL, s.ID, "df", `"   a  b\n0  1  2\n1  3  4"`)
	if a.ResultFormat != api.ResultFormatText {
		t.Errorf("result_format of a DataFrame = %q, want text", a.ResultFormat)
	}
	mustCell(t, ts.URL, s.ID, "open('note.txt').read()", `"kept"`)
	a = runCell(t, ts.URL, s.ID, api.Cell{Code: "import os\nos.makedirs('outputs', exist_ok=True)\ndf.to_csv('outputs/out.csv', index=False)\ndisplay(df)\nline = input()\nline", Stdin: "from stdin\n"})
	if a.status != 200 || string(a.Result) != `"from stdin"` || len(a.Files) != 1 || len(a.Display) != 2 || a.Display[0].Type != "text/html" {
		t.Fatalf("a cell with stdin, an output file and a display = %d %s", a.status, testsupport.Clip(a.raw))
	}

	var st api.SessionState
	status, raw, _ := sessionCall(t, ts.URL, http.MethodGet, "/sessions/"+s.ID, nil, &st)
	if status != 200 || st.State != api.SessionIdle || st.Cells != 5 || st.MemoryBytes <= 0 || st.ID != s.ID {
		t.Fatalf("GET /sessions/{id} = %d %s, want an idle session with 5 cells and its memory", status, testsupport.Clip(raw))
	}
	before := sessionCgroups(t, os.Getpid())
	if len(before) == 0 {
		t.Fatal("no session cgroup found while a session lives")
	}
	if status, raw, _ := sessionCall(t, ts.URL, http.MethodDelete, "/sessions/"+s.ID, nil, nil); status != http.StatusNoContent || len(raw) != 0 {
		t.Fatalf("DELETE = %d %q, want 204 and no body", status, raw)
	}
	if left := sessionCgroups(t, os.Getpid()); len(left) != 0 {
		t.Fatalf("cgroups left after DELETE: %v", left)
	}
	a = runCell(t, ts.URL, s.ID, api.Cell{Code: "1"})
	if a.status != 404 || a.ErrorType != string(api.ErrorTypeSessionNotFound) || !strings.Contains(a.Error, "deleted") {
		t.Fatalf("a cell after DELETE = %d %s, want 404 session_not_found saying it was deleted", a.status, testsupport.Clip(a.raw))
	}
	for _, entry := range ts.Logs.Entries(t, false) {
		if line, _ := json.Marshal(entry); strings.Contains(string(line), s.ID) {
			t.Errorf("a log entry holds the whole session ID: %s", line)
		}
	}
}

func TestAnExceptionKeepsTheSessionAndATimeoutEndsIt(t *testing.T) {
	ts := testsupport.StartService(t, nil)
	s := newSession(t, ts.URL, nil)
	mustCell(t, ts.URL, s.ID, "x = 41", "null")
	a := runCell(t, ts.URL, s.ID, api.Cell{Code: "x += 1\n1 / 0"})
	if a.status != 400 || a.ErrorType != string(api.ErrorTypeException) || !strings.Contains(a.Traceback, "ZeroDivisionError") || a.SessionEnded {
		t.Fatalf("a raising cell = %d %s, want 400 exception with its traceback", a.status, testsupport.Clip(a.raw))
	}
	mustCell(t, ts.URL, s.ID, "x", "42")
	a = runCell(t, ts.URL, s.ID, api.Cell{Code: "import sys\nsys.exit(3)"})
	if a.status != 400 || a.ErrorType != string(api.ErrorTypeExited) || a.SessionEnded {
		t.Fatalf("sys.exit in a cell = %d %s, want 400 exited with the session kept", a.status, testsupport.Clip(a.raw))
	}
	mustCell(t, ts.URL, s.ID, "x", "42")
	a = runCell(t, ts.URL, s.ID, api.Cell{Code: "while True: pass", Limits: &api.Limits{TimeoutSeconds: 0.5}})
	if a.status != 400 || a.ErrorType != string(api.ErrorTypeTimeout) || !a.SessionEnded || !strings.Contains(a.Error, "session has ended") {
		t.Fatalf("a cell past its timeout = %d %s, want 400 timeout ending the session", a.status, testsupport.Clip(a.raw))
	}
	a = runCell(t, ts.URL, s.ID, api.Cell{Code: "x"})
	if a.status != 404 || !strings.Contains(a.Error, "timed out") {
		t.Fatalf("a cell after the timeout = %d %s, want 404 naming the timeout", a.status, testsupport.Clip(a.raw))
	}
}

func TestAMemoryBombOverCellsEndsTheSessionAtItsLimit(t *testing.T) {
	ts := testsupport.StartService(t, nil)
	s := newSession(t, ts.URL, api.SessionRequest{Limits: &api.Limits{MemoryMB: 200}})
	mustCell(t, ts.URL, s.ID, "blocks = []", "null")
	for i := 0; i < 10; i++ {
		a := runCell(t, ts.URL, s.ID, api.Cell{Code: "blocks.append(bytearray(40 << 20))\nlen(blocks)"})
		if a.status == 200 {
			continue
		}
		if a.ErrorType != string(api.ErrorTypeMemoryLimit) || !strings.Contains(a.Error, "200") {
			t.Fatalf("cell %d = %d %s, want memory_limit stating the 200 MiB limit", i, a.status, testsupport.Clip(a.raw))
		}
		if i < 3 {
			t.Fatalf("the session hit its limit at cell %d, holding %d MiB", i, 40*i)
		}
		return
	}
	t.Fatal("400 MiB held over 10 cells under a 200 MiB session limit")
}

func TestMaxSessionsIsEnforcedAndExecuteStillRuns(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_MAX_SESSIONS": "2"})
	newSession(t, ts.URL, nil)
	newSession(t, ts.URL, nil)
	var f api.Failure
	status, raw, header := sessionCall(t, ts.URL, http.MethodPost, "/sessions", nil, &f)
	if status != 503 || f.ErrorType != string(api.ErrorTypeBusy) || header.Get("Retry-After") == "" || !strings.Contains(f.Error, "PYEXEC_MAX_SESSIONS") {
		t.Fatalf("a third session = %d %s, want 503 busy with Retry-After naming PYEXEC_MAX_SESSIONS", status, testsupport.Clip(raw))
	}
	if r := ts.Execute(t, "def main():\n    return 'still runs'"); r.Status != 200 || string(r.Result) != `"still runs"` {
		t.Fatalf("/execute with sessions full = %d %s", r.Status, testsupport.Clip(r.Raw))
	}
}

func TestAnIdleSessionEndsAndLeavesNothing(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_SESSION_IDLE_SECONDS": "1"})
	s := newSession(t, ts.URL, nil)
	mustCell(t, ts.URL, s.ID, "import threading, time\nthreading.Thread(target=lambda: time.sleep(600), daemon=True).start()", "null")
	testsupport.PollUntil(t, 10*time.Second, "the idle session to end", func() bool {
		var f api.Failure
		status, _, _ := sessionCall(t, ts.URL, http.MethodGet, "/sessions/"+s.ID, nil, &f)
		return status == 404 && strings.Contains(f.Error, "idle")
	})
	// The session answers 404 as soon as it is out of the registry; its
	// process and cgroups go a moment later.
	testsupport.PollUntil(t, 5*time.Second, "the expired session's cgroups to go", func() bool {
		return len(sessionCgroups(t, os.Getpid())) == 0
	})
}

func TestSessionRequestsAreChecked(t *testing.T) {
	ts := testsupport.StartService(t, nil)
	s := newSession(t, ts.URL, nil)
	for _, c := range []struct {
		path, body, want string
		status           int
	}{
		{"/sessions", `[]`, "JSON object", 400},
		{"/sessions", `{"limits": {"memory_mb": 999999}}`, "memory_mb", 400},
		{"/sessions", `{"files": [{"path": "../x", "content": ""}]}`, "files[0]", 400},
		{"/sessions/" + s.ID + "/execute", `{}`, "'code'", 400},
		{"/sessions/" + s.ID + "/execute", `{"code": "   "}`, "Code must be", 400},
		{"/sessions/" + s.ID + "/execute", `{"code": "1", "limits": {"memory_mb": 10}}`, "memory_mb is the session's", 400},
		{"/sessions/" + s.ID + "/execute", `{"code": "1", "limits": {"timeout_seconds": 1e9}}`, "timeout_seconds", 400},
		{"/sessions/AAAAAAAAAAAAAAAAAAAAAA/execute", `{"code": "1"}`, "another instance", 404},
		{"/sessions/short/execute", `{"code": "1"}`, "another instance", 404},
		{"/sessions/" + s.ID + "/execute/more", `{"code": "1"}`, "another instance", 404},
	} {
		r := ts.Post(t, c.path, "application/json", []byte(c.body))
		if r.Status != c.status || !strings.Contains(r.Error, c.want) {
			t.Errorf("POST %s %s = %d %s, want %d naming %q", c.path, c.body, r.Status, testsupport.Clip(r.Raw), c.status, c.want)
		}
	}
	if r := ts.Post(t, "/sessions", "text/plain", []byte(`{}`)); r.Status != 415 {
		t.Errorf("POST /sessions as text/plain = %d, want 415", r.Status)
	}
	req, _ := http.NewRequest(http.MethodPut, ts.URL+"/sessions/"+s.ID, nil)
	if r := testsupport.Do(t, req); r.Status != 405 || r.Header.Get("Allow") == "" {
		t.Errorf("PUT /sessions/{id} = %d, want 405 with Allow", r.Status)
	}
}

func TestPoolModeAnswersThatSessionsNeedForkMode(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_MODE": "pool"})
	var f api.Failure
	status, raw, _ := sessionCall(t, ts.URL, http.MethodPost, "/sessions", nil, &f)
	if status != 400 || f.ErrorType != string(api.ErrorTypeInvalidRequest) || !strings.Contains(f.Error, "fork mode") {
		t.Fatalf("POST /sessions in pool mode = %d %s, want 400 saying sessions need the fork mode", status, testsupport.Clip(raw))
	}
}

func TestSIGTERMEndsLiveSessionsCleanly(t *testing.T) {
	b := testsupport.StartBinary(t, nil)
	b.Health(t, 200)
	idle := newSession(t, b.URL, nil)
	mustCell(t, b.URL, idle.ID, "import pandas as pd\ndf = pd.DataFrame({'a': [1]})", "null")
	busy := newSession(t, b.URL, nil)
	running := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, b.URL+"/sessions/"+busy.ID+"/execute", strings.NewReader(`{"code": "import time\ntime.sleep(600)"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			running <- 0
			return
		}
		resp.Body.Close()
		running <- resp.StatusCode
	}()
	time.Sleep(500 * time.Millisecond) // the cell is running
	if len(sessionCgroups(t, b.Pid())) < 2 {
		t.Fatalf("session cgroups before SIGTERM: %v, want two", sessionCgroups(t, b.Pid()))
	}
	if err := b.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Exited():
		if err := b.Err(); err != nil {
			t.Fatalf("pyexec ended with %v after SIGTERM with live sessions; stderr:\n%s", err, b.Stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pyexec did not exit within 30 s of SIGTERM with live sessions")
	}
	if status := <-running; status != 0 && status != 400 {
		t.Errorf("the running cell was answered %d at SIGTERM, want 400 (its session ended) or a closed connection", status)
	}
	if left := sessionCgroups(t, b.Pid()); len(left) != 0 {
		t.Fatalf("session cgroups left after SIGTERM: %v", left)
	}
}
