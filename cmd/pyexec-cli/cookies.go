package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// A session lives on one instance of the service, and on Cloud Run
// session affinity routes its calls there by a cookie its answers set.
// "session new", "run --session", "session show" and "session end" run in
// processes of their own, so the cookies go from one to the next through a
// file per session in the user's state directory.

// cookieStore keeps the cookies of sessions in dir, a file for each
// session.
type cookieStore struct {
	dir string
}

// savedCookies is what a session's cookie file holds.
type savedCookies struct {
	URL     string        `json:"url"` // the service's
	Cookies []savedCookie `json:"cookies"`
	SavedAt time.Time     `json:"saved_at"`
}

// savedCookie is one cookie the service set.
type savedCookie struct {
	Name    string    `json:"name"`
	Value   string    `json:"value"`
	Expires time.Time `json:"expires,omitzero"` // zero: none given
}

// openCookieStore is the store in $XDG_STATE_HOME/pyexec-cli/sessions,
// else ~/.local/state/pyexec-cli/sessions. A relative $XDG_STATE_HOME is
// ignored, as the XDG base directory specification asks.
func openCookieStore(getenv func(string) string) (cookieStore, error) {
	if state := getenv("XDG_STATE_HOME"); filepath.IsAbs(state) {
		return cookieStore{dir: filepath.Join(state, "pyexec-cli", "sessions")}, nil
	}
	if home := getenv("HOME"); filepath.IsAbs(home) {
		return cookieStore{dir: filepath.Join(home, ".local", "state", "pyexec-cli", "sessions")}, nil
	}
	return cookieStore{}, errors.New("no state directory: neither $XDG_STATE_HOME nor $HOME is an absolute path")
}

// path is the file of the session id of the service at serviceURL. Its
// name is a hash: a session ID is a bearer secret, and file names are
// there for anyone who lists the directory.
func (s cookieStore) path(serviceURL, id string) string {
	sum := sha256.Sum256([]byte(serviceURL + "\n" + id))
	return filepath.Join(s.dir, hex.EncodeToString(sum[:])+".json")
}

// load reads the session's cookies; a session without a file has none.
func (s cookieStore) load(serviceURL, id string) ([]savedCookie, error) {
	path := s.path(serviceURL, id)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var saved savedCookies
	if err := json.Unmarshal(b, &saved); err != nil {
		return nil, fmt.Errorf("%s is not a cookie file: %w", path, err)
	}
	if saved.URL != serviceURL {
		return nil, fmt.Errorf("%s holds the cookies of %s, not of %s", path, saved.URL, serviceURL)
	}
	return saved.Cookies, nil
}

// save writes the session's cookies, replacing its file whole: a command
// that fails halfway leaves the old file or the new one, never a mix.
func (s cookieStore) save(serviceURL, id string, cookies []savedCookie, now time.Time) error {
	b, err := json.MarshalIndent(savedCookies{URL: serviceURL, Cookies: cookies, SavedAt: now.UTC()}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dir, ".cookies-*") // mode 0600
	if err != nil {
		return err
	}
	_, err = tmp.Write(append(b, '\n'))
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.path(serviceURL, id))
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// remove deletes the session's file; a session without one is no error.
func (s cookieStore) remove(serviceURL, id string) error {
	if err := os.Remove(s.path(serviceURL, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// expiringJar is a cookie jar that also keeps when each cookie it is given
// expires, by name: its Cookies tells only names and values, and a saved
// cookie keeps its expiry so that a later command does not send a stale one.
type expiringJar struct {
	*cookiejar.Jar
	now func() time.Time

	mu      sync.Mutex
	expires map[string]time.Time
}

func newExpiringJar(now func() time.Time) *expiringJar {
	jar, _ := cookiejar.New(nil) // it fails only for a bad PublicSuffixList
	return &expiringJar{Jar: jar, now: now, expires: map[string]time.Time{}}
}

// SetCookies records the cookies' expiry and sets them in the jar.
func (j *expiringJar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	j.mu.Lock()
	for _, c := range cookies {
		j.expires[c.Name] = expiry(c, j.now())
	}
	j.mu.Unlock()
	j.Jar.SetCookies(u, cookies)
}

// saved are the jar's cookies for u, each name once: Cookies puts the most
// specific path first, and that one is sent first.
func (j *expiringJar) saved(u *url.URL) []savedCookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []savedCookie
	seen := map[string]bool{}
	for _, c := range j.Cookies(u) {
		if !seen[c.Name] {
			seen[c.Name] = true
			out = append(out, savedCookie{Name: c.Name, Value: c.Value, Expires: j.expires[c.Name]})
		}
	}
	return out
}

// expiry is when c expires, zero for a cookie that gives no time.
func expiry(c *http.Cookie, now time.Time) time.Time {
	switch {
	case c.MaxAge > 0:
		return now.Add(time.Duration(c.MaxAge) * time.Second)
	case c.MaxAge < 0: // Max-Age=0: delete it now
		return now
	}
	return c.Expires
}

// sessionCookies carries one session's cookies between commands: loaded
// into the jar the command's client sends with, and saved from it after
// the call. Trouble with the file is a warning, never a failure: on a
// service of one instance the calls succeed without the cookies.
type sessionCookies struct {
	jar        *expiringJar
	store      cookieStore
	storeErr   error    // why there is no store
	serviceURL string   // without a trailing slash, as the client has it
	base       *url.URL // serviceURL parsed
	warn       func(format string, args ...any)
}

// newSessionCookies is an empty jar for a session command on the service
// at serviceURL.
func newSessionCookies(serviceURL string, con console) *sessionCookies {
	store, err := openCookieStore(con.getenv)
	base, parseErr := url.Parse(serviceURL)
	if parseErr != nil {
		base = &url.URL{} // the client refuses serviceURL, and no call is made
	}
	return &sessionCookies{
		jar:        newExpiringJar(time.Now),
		store:      store,
		storeErr:   err,
		serviceURL: strings.TrimSuffix(serviceURL, "/"),
		base:       base,
		warn: func(format string, args ...any) {
			fmt.Fprintf(con.stderr, "pyexec-cli: warning: "+format+"\n", args...)
		},
	}
}

// sessionURL is where the session's calls go, and so the URL whose
// cookies they send, whatever path the service gave a cookie.
func (k *sessionCookies) sessionURL(id string) *url.URL {
	u := *k.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/sessions/" + id
	u.RawPath = ""
	return &u
}

// load puts the session's saved cookies into the jar. Each goes with
// every path of the service, as the jar holds only this session's.
func (k *sessionCookies) load(id string) {
	if k.storeErr != nil {
		return // with no store, nothing was saved
	}
	saved, err := k.store.load(k.serviceURL, id)
	if err != nil {
		k.warn("the session's cookies are not read: %v", err)
		return
	}
	cookies := make([]*http.Cookie, len(saved))
	for i, c := range saved {
		cookies[i] = &http.Cookie{Name: c.Name, Value: c.Value, Path: "/", Expires: c.Expires}
	}
	k.jar.SetCookies(k.sessionURL(id), cookies)
}

// save writes the jar's cookies for the session; a jar without any (a
// service with no affinity, or cookies that expired) removes the file.
func (k *sessionCookies) save(id string) {
	cookies := k.jar.saved(k.sessionURL(id))
	if len(cookies) == 0 {
		k.forget(id)
		return
	}
	err := k.storeErr
	if err == nil {
		err = k.store.save(k.serviceURL, id, cookies, time.Now())
	}
	if err != nil {
		k.warn("the session's cookies could not be kept, so on a service of more than one instance its later commands may answer session_not_found: %v", err)
	}
}

// forget removes the session's file: the session has ended.
func (k *sessionCookies) forget(id string) {
	if k.storeErr != nil {
		return
	}
	if err := k.store.remove(k.serviceURL, id); err != nil {
		k.warn("the ended session's cookies could not be removed: %v", err)
	}
}

// after keeps or forgets the session's cookies once a call has answered
// err: an answer may have set or refreshed a cookie, and one that says the
// session is gone leaves nothing to route.
func (k *sessionCookies) after(id string, err error) {
	if sessionGone(err) {
		k.forget(id)
		return
	}
	k.save(id)
}
