package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testServiceURL = "https://pyexec-abc123-uc.a.run.app"

func testStore(t *testing.T) cookieStore {
	t.Helper()
	return cookieStore{dir: filepath.Join(t.TempDir(), "pyexec-cli", "sessions")}
}

func TestCookieStoreRoundTrip(t *testing.T) {
	store := testStore(t)
	expires := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	want := []savedCookie{{Name: "GAESA", Value: "CowBMDB", Expires: expires}, {Name: "plain", Value: "v"}}
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	if err := store.save(testServiceURL, testSessionID, want, now); err != nil {
		t.Fatal(err)
	}
	got, err := store.load(testServiceURL, testSessionID)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("load = %+v, %v; want %+v", got, err, want)
	}

	b, err := os.ReadFile(store.path(testServiceURL, testSessionID))
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatalf("the file is not JSON: %v\n%s", err, b)
	}
	if file["url"] != testServiceURL || file["saved_at"] != "2026-12-06T00:00:00Z" {
		t.Errorf("file = %s, want the URL and when it was saved", b)
	}
	if strings.Count(string(b), `"expires"`) != 1 {
		t.Errorf("file = %s, want an expiry for the one cookie that has one", b)
	}
	if other, err := store.load("http://localhost:8080", testSessionID); other != nil || err != nil {
		t.Errorf("load for another service = %+v, %v; want no cookies", other, err)
	}
}

func TestCookieFileNameHidesTheSessionID(t *testing.T) {
	store := testStore(t)
	path := store.path(testServiceURL, testSessionID)
	sum := sha256.Sum256([]byte(testServiceURL + "\n" + testSessionID))
	if want := filepath.Join(store.dir, hex.EncodeToString(sum[:])+".json"); path != want {
		t.Errorf("path = %s, want %s", path, want)
	}
	if strings.Contains(path, testSessionID) {
		t.Errorf("path %s holds the session ID", path)
	}
	if store.path("http://localhost:8080", testSessionID) == path {
		t.Errorf("two services share the file %s", path)
	}
}

func TestCookieStoreModes(t *testing.T) {
	store := testStore(t)
	if err := store.save(testServiceURL, testSessionID, []savedCookie{{Name: "GAESA", Value: "a"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Saved again, the file is replaced by a new one, of the same mode.
	if err := store.save(testServiceURL, testSessionID, []savedCookie{{Name: "GAESA", Value: "b"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	dir, err := os.Stat(store.dir)
	if err != nil || dir.Mode().Perm() != 0o700 {
		t.Errorf("directory mode = %v, %v; want 0700", dir.Mode().Perm(), err)
	}
	file, err := os.Stat(store.path(testServiceURL, testSessionID))
	if err != nil || file.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, %v; want 0600", file.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(store.dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want the one file (no temporary file left)", len(entries))
	}
}

func TestCookieStoreWithoutAFileHasNoCookies(t *testing.T) {
	got, err := testStore(t).load(testServiceURL, testSessionID)
	if got != nil || err != nil {
		t.Errorf("load = %+v, %v; want no cookies and no error", got, err)
	}
}

func TestCookieStoreCorruptFile(t *testing.T) {
	store := testStore(t)
	if err := store.save(testServiceURL, testSessionID, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	path := store.path(testServiceURL, testSessionID)
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := store.load(testServiceURL, testSessionID); got != nil || err == nil || !strings.Contains(err.Error(), "not a cookie file") {
		t.Errorf("load = %+v, %v; want an error naming the file", got, err)
	}
}

func TestCookieStoreRemove(t *testing.T) {
	store := testStore(t)
	if err := store.save(testServiceURL, testSessionID, []savedCookie{{Name: "GAESA", Value: "a"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := store.remove(testServiceURL, testSessionID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(store.path(testServiceURL, testSessionID)); !os.IsNotExist(err) {
		t.Errorf("the file is still there: %v", err)
	}
	if err := store.remove(testServiceURL, testSessionID); err != nil {
		t.Errorf("removing an absent file = %v, want nil", err)
	}
}

func TestOpenCookieStore(t *testing.T) {
	tests := []struct {
		env     map[string]string
		wantDir string // "" for an error
	}{
		{map[string]string{"XDG_STATE_HOME": "/state", "HOME": "/home/u"}, "/state/pyexec-cli/sessions"},
		{map[string]string{"HOME": "/home/u"}, "/home/u/.local/state/pyexec-cli/sessions"},
		{map[string]string{"XDG_STATE_HOME": "relative", "HOME": "/home/u"}, "/home/u/.local/state/pyexec-cli/sessions"},
		{nil, ""},
	}
	for _, tt := range tests {
		store, err := openCookieStore(func(k string) string { return tt.env[k] })
		if store.dir != tt.wantDir || (err != nil) != (tt.wantDir == "") {
			t.Errorf("openCookieStore with %v = %q, %v; want %q", tt.env, store.dir, err, tt.wantDir)
		}
	}
}

// A cookie an answer refreshes is saved with its new value and expiry.
func TestSessionCookiesSaveWhatTheAnswerSet(t *testing.T) {
	env := map[string]string{"XDG_STATE_HOME": t.TempDir()}
	con := console{stderr: &strings.Builder{}, getenv: func(k string) string { return env[k] }}
	first := newSessionCookies(testServiceURL+"/", con)
	first.jar.SetCookies(first.sessionURL(testSessionID), []*http.Cookie{{Name: "GAESA", Value: "old"}})
	first.save(testSessionID)

	later := newSessionCookies(testServiceURL, con)
	later.load(testSessionID)
	if got := later.jar.Cookies(later.sessionURL(testSessionID)); len(got) != 1 || got[0].Value != "old" {
		t.Fatalf("loaded cookies = %v, want GAESA=old", got)
	}
	// The answer to a call of the session sets it again, for its path.
	later.jar.SetCookies(later.sessionURL(testSessionID), []*http.Cookie{{Name: "GAESA", Value: "new", MaxAge: 3600}})
	later.after(testSessionID, nil)

	saved, err := later.store.load(testServiceURL, testSessionID)
	if err != nil || len(saved) != 1 || saved[0].Value != "new" || time.Until(saved[0].Expires) < 59*time.Minute {
		t.Errorf("saved = %+v, %v; want GAESA=new, expiring in an hour", saved, err)
	}
	if stderr := con.stderr.(*strings.Builder).String(); stderr != "" {
		t.Errorf("stderr = %q, want nothing", stderr)
	}
}

// An expired cookie is not loaded, and a session left without cookies
// has no file.
func TestSessionCookiesDropExpiredCookies(t *testing.T) {
	env := map[string]string{"XDG_STATE_HOME": t.TempDir()}
	con := console{stderr: &strings.Builder{}, getenv: func(k string) string { return env[k] }}
	k := newSessionCookies(testServiceURL, con)
	if err := k.store.save(testServiceURL, testSessionID, []savedCookie{{Name: "GAESA", Value: "a", Expires: time.Now().Add(-time.Minute)}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	k.load(testSessionID)
	if got := k.jar.Cookies(k.sessionURL(testSessionID)); len(got) != 0 {
		t.Errorf("loaded cookies = %v, want none", got)
	}
	k.after(testSessionID, nil)
	if _, err := os.Stat(k.store.path(testServiceURL, testSessionID)); !os.IsNotExist(err) {
		t.Errorf("the file of a session without cookies is there: %v", err)
	}
}

// The session commands keep the cookie "session new" got, send it, and
// remove it when the session ends.
func TestSessionCommandsKeepTheAffinityCookie(t *testing.T) {
	svc := newFakeSessions(t, map[string]cellAnswer{"f(3)\n": cellSix})
	state := t.TempDir()
	env := map[string]string{"PYEXEC_URL": svc.URL, "XDG_STATE_HOME": state}
	store := cookieStore{dir: filepath.Join(state, "pyexec-cli", "sessions")}
	path := store.path(svc.URL, testSessionID)

	if got := runCLI(t, env, "", "session", "new"); got.code != exitOK || got.stderr != "" {
		t.Fatalf("session new = %d, stderr %q; want 0 and no warning", got.code, got.stderr)
	}
	if saved, err := store.load(svc.URL, testSessionID); err != nil || len(saved) != 1 || saved[0] != (savedCookie{Name: "GAESA", Value: "abc"}) {
		t.Fatalf("saved cookies = %+v, %v; want GAESA=abc", saved, err)
	}
	cell := writeTemp(t, "cell.py", "f(3)\n")
	for _, args := range [][]string{{"run", "--session", testSessionID, cell}, {"session", "show", testSessionID}} {
		if got := runCLI(t, env, "", args...); got.code != exitOK || got.stderr != "" {
			t.Errorf("%q = %d, stderr %q; want 0 and no warning", args, got.code, got.stderr)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("after %q the cookie file is gone: %v", args, err)
		}
	}
	if got := runCLI(t, env, "", "session", "end", testSessionID); got.code != exitOK || got.stderr != "" {
		t.Errorf("session end = %d, stderr %q; want 0 and no warning", got.code, got.stderr)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("after session end the cookie file is there: %v", err)
	}
	want := []string{"", "GAESA=abc", "GAESA=abc", "GAESA=abc"}
	if !reflect.DeepEqual(svc.cookies, want) {
		t.Errorf("Cookie headers = %q, want %q", svc.cookies, want)
	}
}

// A session the service says is gone, or that a cell ended, leaves no
// cookie file.
func TestAnEndedSessionForgetsItsCookies(t *testing.T) {
	svc := newFakeSessions(t, map[string]cellAnswer{"spin()\n": cellEnds})
	state := t.TempDir()
	env := map[string]string{"PYEXEC_URL": svc.URL, "XDG_STATE_HOME": state}
	store := cookieStore{dir: filepath.Join(state, "pyexec-cli", "sessions")}
	cookies := []savedCookie{{Name: "GAESA", Value: "abc"}}

	for _, tt := range []struct {
		id       string
		args     []string
		wantExit int
	}{
		{testSessionID, []string{"run", "--session", testSessionID, writeTemp(t, "spin.py", "spin()\n")}, exitScriptError},
		{"unknown", []string{"session", "show", "unknown"}, exitScriptError},
		{"unknown", []string{"run", "--session", "unknown", writeTemp(t, "x.py", "x\n")}, exitScriptError},
		{"unknown", []string{"session", "end", "unknown"}, exitOK},
	} {
		if err := store.save(svc.URL, tt.id, cookies, time.Now()); err != nil {
			t.Fatal(err)
		}
		if got := runCLI(t, env, "", tt.args...); got.code != tt.wantExit {
			t.Errorf("%q = %d, stderr %q; want %d", tt.args, got.code, got.stderr, tt.wantExit)
		}
		if _, err := os.Stat(store.path(svc.URL, tt.id)); !os.IsNotExist(err) {
			t.Errorf("after %q the cookie file is there: %v", tt.args, err)
		}
	}
}

// A corrupt cookie file is a warning: the command goes on without cookies.
func TestACorruptCookieFileIsAWarning(t *testing.T) {
	svc := newFakeSessions(t, nil)
	state := t.TempDir()
	env := map[string]string{"PYEXEC_URL": svc.URL, "XDG_STATE_HOME": state}
	store := cookieStore{dir: filepath.Join(state, "pyexec-cli", "sessions")}
	if err := store.save(svc.URL, testSessionID, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(store.path(svc.URL, testSessionID), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	got := runCLI(t, env, "", "session", "show", testSessionID)
	if got.code != exitOK || !strings.Contains(got.stderr, "pyexec-cli: warning: the session's cookies are not read: ") ||
		!strings.Contains(got.stderr, "not a cookie file") {
		t.Errorf("session show = %d, stderr %q; want 0 and a warning", got.code, got.stderr)
	}
	if svc.cookies[0] != "" {
		t.Errorf("Cookie = %q, want none", svc.cookies[0])
	}
}

// A cookie that cannot be kept is a warning: the session exists, and its
// ID is printed.
func TestACookieThatCannotBeKeptIsAWarning(t *testing.T) {
	svc := newFakeSessions(t, nil)
	notADir := writeTemp(t, "state", "a file where the state directory goes")
	for name, env := range map[string]map[string]string{
		"an unwritable state directory": {"PYEXEC_URL": svc.URL, "XDG_STATE_HOME": notADir},
		"no state directory":            {"PYEXEC_URL": svc.URL},
	} {
		t.Run(name, func(t *testing.T) {
			got := runCLI(t, env, "", "session", "new")
			if got.code != exitOK || got.stdout != testSessionID+"\n" ||
				!strings.Contains(got.stderr, "pyexec-cli: warning: the session's cookies could not be kept") {
				t.Errorf("session new = %d, stdout %q, stderr %q; want 0, the ID and a warning", got.code, got.stdout, got.stderr)
			}
		})
	}
}
