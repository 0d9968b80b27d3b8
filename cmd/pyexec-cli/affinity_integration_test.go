//go:build integration

package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// affinityCookie is the cookie by which affinityProxy routes.
const affinityCookie = "pyexec-affinity"

// affinityProxy stands for Cloud Run's front end with session affinity
// before instances of the service: a request with its cookie goes to the
// instance the cookie names; one without goes to the instances in strict
// alternation, and its answer sets the cookie to the instance that served it.
type affinityProxy struct {
	*httptest.Server
	instances []*httputil.ReverseProxy

	mu     sync.Mutex
	next   int      // the instance of the next request without the cookie
	served []string // "METHOD PATH -> n", for failure messages
}

func newAffinityProxy(t *testing.T, instanceURLs ...string) *affinityProxy {
	t.Helper()
	p := &affinityProxy{}
	for _, s := range instanceURLs {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		p.instances = append(p.instances, httputil.NewSingleHostReverseProxy(u))
	}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve)) // on 127.0.0.1
	t.Cleanup(p.Close)
	return p
}

func (p *affinityProxy) serve(w http.ResponseWriter, r *http.Request) {
	n, routed := p.route(r)
	if !routed {
		w.Header().Add("Set-Cookie", affinityCookie+"="+strconv.Itoa(n))
	}
	p.mu.Lock()
	p.served = append(p.served, r.Method+" "+r.URL.Path+" -> "+strconv.Itoa(n))
	p.mu.Unlock()
	p.instances[n].ServeHTTP(w, r)
}

// route is the instance for r, and whether r's cookie chose it.
func (p *affinityProxy) route(r *http.Request) (int, bool) {
	if c, err := r.Cookie(affinityCookie); err == nil {
		if n, err := strconv.Atoi(c.Value); err == nil && n >= 0 && n < len(p.instances) {
			return n, true
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.next
	p.next = (p.next + 1) % len(p.instances)
	return n, false
}

func (p *affinityProxy) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.served, "\n")
}

// The session commands, each a process of its own, reach the instance that
// holds their session through a front end that routes by a cookie: the
// cookie "session new" got is kept between them, and without it a cell
// reaches the other instance.
func TestSessionCommandsKeepAffinityAcrossInstances(t *testing.T) {
	env := map[string]string{"PYEXEC_MODE": "fork", "PYEXEC_TIMEOUT_SECONDS": "10"}
	first, second := testsupport.StartBinary(t, env), testsupport.StartBinary(t, env)
	first.Health(t, http.StatusOK)
	second.Health(t, http.StatusOK)
	proxy := newAffinityProxy(t, first.URL, second.URL)

	cli := buildCLI(t)
	home, state := t.TempDir(), t.TempDir()
	sessions := filepath.Join(state, "pyexec-cli", "sessions")
	// pyexecCLI runs cli with args against the proxy, its state in state.
	pyexecCLI := func(t *testing.T, args ...string) ran {
		t.Helper()
		cmd := exec.Command(cli, args...)
		cmd.Env = append(os.Environ(), "PYEXEC_URL="+proxy.URL, "HOME="+home, "XDG_STATE_HOME="+state)
		return runBuiltCLI(t, cmd)
	}
	cell := func(name, code string) string {
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	set, next := cell("set.py", "x = 41\n"), cell("next.py", "x + 1\n")

	got := pyexecCLI(t, "session", "new")
	id := strings.TrimSpace(got.stdout)
	if got.code != exitOK || id == "" || got.stderr != "" {
		t.Fatalf("session new = %d, stdout %q, stderr %q; want 0, an ID and no warning", got.code, got.stdout, got.stderr)
	}
	entries, err := os.ReadDir(sessions)
	if err != nil || len(entries) != 1 {
		t.Fatalf("%s holds %d entries, %v; want one cookie file", sessions, len(entries), err)
	}
	cookieFile := filepath.Join(sessions, entries[0].Name())
	if strings.Contains(cookieFile, id) {
		t.Errorf("the cookie file %s is named with the session ID", cookieFile)
	}
	saved, err := os.ReadFile(cookieFile)
	if err != nil || !strings.Contains(string(saved), `"name": "`+affinityCookie+`"`) {
		t.Fatalf("cookie file = %s, %v; want the affinity cookie", saved, err)
	}

	// Without the kept cookie these would alternate between the instances.
	if got := pyexecCLI(t, "run", "--session", id, set); got.code != exitOK || got.stdout != "null\n" {
		t.Errorf("run --session set.py = %d, stdout %q, stderr %q; want 0, null\n%s", got.code, got.stdout, got.stderr, proxy.log())
	}
	for range 3 {
		if got := pyexecCLI(t, "run", "--session", id, next); got.code != exitOK || got.stdout != "42\n" {
			t.Errorf("run --session next.py = %d, stdout %q, stderr %q; want 0, 42\n%s", got.code, got.stdout, got.stderr, proxy.log())
		}
	}
	// An ID may begin with "-" (it is base64url): "--" keeps it from
	// being read as a flag of show and end.
	if got := pyexecCLI(t, "session", "show", "--", id); got.code != exitOK || !strings.Contains(got.stdout, `"cells": 4`) {
		t.Errorf("session show = %d, stdout %q, stderr %q; want 0 and 4 cells\n%s", got.code, got.stdout, got.stderr, proxy.log())
	}

	// The proxy routes for real: without the cookie file the next cell
	// goes to the other instance, which does not know the session, and
	// the file of a session not found is not written again.
	if err := os.Remove(cookieFile); err != nil {
		t.Fatal(err)
	}
	if got := pyexecCLI(t, "run", "--session", id, next); got.code != exitScriptError || !strings.Contains(got.stderr, "session_not_found") {
		t.Errorf("run --session without the cookie = %d, stdout %q, stderr %q; want %d, session_not_found\n%s",
			got.code, got.stdout, got.stderr, exitScriptError, proxy.log())
	}
	if _, err := os.Stat(cookieFile); !os.IsNotExist(err) {
		t.Errorf("after session_not_found the cookie file is there: %v", err)
	}

	// With the file back, the session is found where it was, as it was.
	if err := os.WriteFile(cookieFile, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := pyexecCLI(t, "run", "--session", id, next); got.code != exitOK || got.stdout != "42\n" {
		t.Errorf("run --session with the cookie back = %d, stdout %q, stderr %q; want 0, 42\n%s", got.code, got.stdout, got.stderr, proxy.log())
	}
	if got := pyexecCLI(t, "session", "end", "--", id); got.code != exitOK || got.stderr != "" {
		t.Errorf("session end = %d, stderr %q; want 0\n%s", got.code, got.stderr, proxy.log())
	}
	if entries, err := os.ReadDir(sessions); err != nil || len(entries) != 0 {
		t.Errorf("after session end %s holds %d entries, %v; want none", sessions, len(entries), err)
	}
	// The session is gone from the instance that held it, not just
	// unreachable: its state says so through the cookie.
	if err := os.WriteFile(cookieFile, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := pyexecCLI(t, "session", "show", "--", id); got.code != exitScriptError || !strings.Contains(got.stderr, "session_not_found") {
		t.Errorf("session show after the end = %d, stderr %q; want %d, session_not_found\n%s", got.code, got.stderr, exitScriptError, proxy.log())
	}
}
