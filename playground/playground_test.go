package playground

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Browsers ask for HTML when they navigate; API clients ask for JSON, for
// anything, or say nothing, and must keep getting the service's JSON 404.
func TestWantsServesThePageOnlyToClientsThatAskForHTML(t *testing.T) {
	const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
	tests := []struct {
		name   string
		method string
		path   string
		accept []string
		want   bool
	}{
		{"a browser navigating to /", "GET", "/", []string{browser}, true},
		{"HEAD of / from a browser", "HEAD", "/", []string{browser}, true},
		{"plain text/html", "GET", "/", []string{"text/html"}, true},
		{"XHTML", "GET", "/", []string{"application/xhtml+xml"}, true},
		{"HTML in a second Accept header", "GET", "/", []string{"application/json", "text/html"}, true},
		{"HTML among JSON, upper case", "GET", "/", []string{"application/json, TEXT/HTML ;q=0.5"}, true},
		{"an API client asking for JSON", "GET", "/", []string{"application/json"}, false},
		{"an API client asking for anything", "GET", "/", []string{"*/*"}, false},
		{"a client that sends no Accept", "GET", "/", nil, false},
		{"text/* is a wildcard", "GET", "/", []string{"text/*"}, false},
		{"HTML refused with q=0", "GET", "/", []string{"text/html;q=0, application/json"}, false},
		{"HTML with q=0.000", "GET", "/", []string{"text/html; q=0.000"}, false},
		{"HTML with an unreadable q", "GET", "/", []string{"text/html;q=high"}, false},
		{"POST / from a browser", "POST", "/", []string{browser}, false},
		{"OPTIONS / from a browser", "OPTIONS", "/", []string{browser}, false},
		{"the script, whatever is accepted", "GET", "/playground/app.js", []string{"*/*"}, true},
		{"the stylesheet", "GET", "/playground/app.css", []string{"text/css,*/*;q=0.1"}, true},
		{"the examples", "GET", "/playground/examples.json", []string{"application/json"}, true},
		{"the icon", "GET", "/playground/icon.svg", nil, true},
		{"HEAD of an asset", "HEAD", "/playground/app.js", nil, true},
		{"POST to an asset", "POST", "/playground/app.js", nil, false},
		{"the asset folder itself", "GET", "/playground/", []string{browser}, false},
		{"a file the playground does not have", "GET", "/playground/missing.js", nil, false},
		{"an embedded file by its source name", "GET", "/static/app.js", nil, false},
		{"another page", "GET", "/index.html", []string{browser}, false},
		{"the API's own path", "GET", "/execute", []string{browser}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			for _, a := range tt.accept {
				r.Header.Add("Accept", a)
			}
			if got := Wants(r); got != tt.want {
				t.Errorf("Wants(%s %s, Accept %q) = %v, want %v", tt.method, tt.path, tt.accept, got, tt.want)
			}
		})
	}
}

func get(t *testing.T, method, path string, header http.Header) (*http.Response, string) {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	res := w.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// Every file is served with the headers that keep the page to its own
// origin and its types as declared.
func TestHandlerServesEachFileWithStrictHeaders(t *testing.T) {
	tests := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", "<title>pyexec playground</title>"},
		{"/playground/app.js", "text/javascript; charset=utf-8", `fetch("/execute"`},
		{"/playground/app.css", "text/css; charset=utf-8", ".editor"},
		{"/playground/icon.svg", "image/svg+xml", "<svg"},
		{"/playground/examples.json", "application/json", `"hello.py"`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res, body := get(t, "GET", tt.path, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d, want 200", tt.path, res.StatusCode)
			}
			if !strings.Contains(body, tt.contains) {
				t.Errorf("GET %s body does not contain %q", tt.path, tt.contains)
			}
			want := map[string]string{
				"Content-Type":           tt.contentType,
				"X-Content-Type-Options": "nosniff",
				"Cache-Control":          "no-cache",
				"Referrer-Policy":        "no-referrer",
			}
			for name, value := range want {
				if got := res.Header.Get(name); got != value {
					t.Errorf("GET %s %s = %q, want %q", tt.path, name, got, value)
				}
			}
			csp := res.Header.Get("Content-Security-Policy")
			if !strings.HasPrefix(csp, "default-src 'self';") || strings.Contains(csp, "unsafe") ||
				!strings.Contains(csp, "object-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("GET %s Content-Security-Policy = %q, want default-src 'self', no unsafe-*, no objects, no framing", tt.path, csp)
			}
			if etag := res.Header.Get("ETag"); !regexp.MustCompile(`^"[0-9a-f]{24}"$`).MatchString(etag) {
				t.Errorf("GET %s ETag = %q, want a quoted content hash", tt.path, etag)
			}
		})
	}
}

// The same URL answers JSON to API clients and HTML to browsers, so caches
// must key the page on Accept.
func TestPageVariesOnAccept(t *testing.T) {
	res, _ := get(t, "GET", "/", nil)
	if got := res.Header.Get("Vary"); got != "Accept" {
		t.Errorf("GET / Vary = %q, want Accept", got)
	}
}

func TestHandlerAnswersRevalidationWithNotModified(t *testing.T) {
	first, _ := get(t, "GET", "/playground/app.js", nil)
	etag := first.Header.Get("ETag")
	res, body := get(t, "GET", "/playground/app.js", http.Header{"If-None-Match": {etag}})
	if res.StatusCode != http.StatusNotModified || body != "" {
		t.Errorf("GET with If-None-Match %s = %d with %d bytes, want 304 and no body", etag, res.StatusCode, len(body))
	}
	res, _ = get(t, "GET", "/playground/app.js", http.Header{"If-None-Match": {`"stale"`}})
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET with a stale If-None-Match = %d, want 200", res.StatusCode)
	}
}

func TestHandlerAnswersHeadWithoutABody(t *testing.T) {
	res, body := get(t, "HEAD", "/", nil)
	if res.StatusCode != http.StatusOK || body != "" || res.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("HEAD / = %d with %d bytes (CSP %q), want 200, no body, the CSP", res.StatusCode, len(body), res.Header.Get("Content-Security-Policy"))
	}
	if got, want := res.Header.Get("Content-Length"), "0"; got == want || got == "" {
		t.Errorf("HEAD / Content-Length = %q, want the page's length", got)
	}
}

func TestHandlerRefusesOtherMethodsAndPaths(t *testing.T) {
	res, _ := get(t, "POST", "/", nil)
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST / = %d (Allow %q), want 405 with Allow: GET, HEAD", res.StatusCode, res.Header.Get("Allow"))
	}
	res, _ = get(t, "GET", "/playground/nothing.js", nil)
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /playground/nothing.js = %d, want 404", res.StatusCode)
	}
}

// The CSP forbids inline code and other origins; the page must not need
// either, or the browser would silently drop parts of it.
func TestPageNeedsNothingTheCSPForbids(t *testing.T) {
	page := string(files[pagePath].body)
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)<style`),
		regexp.MustCompile(`(?i)\sstyle\s*=`),
		regexp.MustCompile(`(?i)\son[a-z]+\s*=`),
		regexp.MustCompile(`(?i)<script[^>]*>\s*[^<\s]`), // a script with a body
		regexp.MustCompile(`(?i)javascript:`),
		regexp.MustCompile(`(?i)(?:src|href)\s*=\s*"(?:https?:)?//`),
	} {
		if m := bad.FindString(page); m != "" {
			t.Errorf("index.html holds %q, which the Content-Security-Policy blocks", m)
		}
	}
	for _, tag := range regexp.MustCompile(`(?i)<script[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, ` src="/`) {
			t.Errorf("index.html has %s, want only scripts loaded from the page's origin", tag)
		}
	}
	// Every file the page refers to is one the handler serves.
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"#]+)"`).FindAllStringSubmatch(page, -1) {
		r := httptest.NewRequest("GET", m[1], nil)
		if !Wants(r) {
			t.Errorf("index.html refers to %s, which the playground does not serve", m[1])
		}
	}
	// The script builds the page from untrusted text (results, tracebacks,
	// file names): it must only ever set text, never markup, and run no
	// string as code.
	script := string(files[assetPrefix+"app.js"].body)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", `setAttribute("style"`} {
		if strings.Contains(script, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}

// The menu offers the five examples of docs/api.md, from examples/ itself, then one
// that takes input and one that writes an output file.
func TestExamplesMenuHoldsREADMEsExamplesThenTheExtensions(t *testing.T) {
	var got []example
	if err := json.Unmarshal(files[assetPrefix+"examples.json"].body, &got); err != nil {
		t.Fatalf("examples.json: %v", err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| \\[`examples/([a-z_]+\\.py)`\\]").FindAllStringSubmatch(string(readme), -1) {
		documented = append(documented, m[1])
	}
	if len(documented) != 5 {
		t.Fatalf("docs/api.md's Examples table lists %q, want five scripts", documented)
	}
	if len(got) != len(documented)+2 {
		t.Fatalf("menu has %d examples, want docs/api.md's %d and 2 more", len(got), len(documented))
	}
	for i, name := range documented {
		want, err := os.ReadFile(filepath.Join("..", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		if got[i].Name != name || got[i].Script != string(want) || got[i].Input != "" || got[i].Title == "" {
			t.Errorf("menu[%d] = %q (title %q, input %q), want examples/%s as it is, titled, without input", i, got[i].Name, got[i].Title, got[i].Input, name)
		}
	}
	inputExample, outputExample := got[5], got[6]
	var input map[string]any
	if err := json.Unmarshal([]byte(inputExample.Input), &input); err != nil || len(input) == 0 {
		t.Errorf("input example's input = %q, want a JSON object", inputExample.Input)
	}
	if !strings.Contains(inputExample.Script, "def main(data):") {
		t.Errorf("input example does not define main(data):\n%s", inputExample.Script)
	}
	if !strings.Contains(outputExample.Script, `"outputs/result.csv"`) || outputExample.Input != "" {
		t.Errorf("output example does not write outputs/result.csv, or takes input:\n%s", outputExample.Script)
	}
}

// Keep state runs cells of a session, and the page ends its session when it
// is left: sendBeacon cannot DELETE, so a keepalive fetch does.
func TestPageOffersKeepStateAndEndsItsSessionWhenLeft(t *testing.T) {
	page := string(files[pagePath].body)
	for _, want := range []string{`id="keep-state" type="checkbox" role="switch"`, `id="restart"`, `id="history"`} {
		if !strings.Contains(page, want) {
			t.Errorf("index.html does not hold %s", want)
		}
	}
	script := string(files[assetPrefix+"app.js"].body)
	for _, want := range []string{`fetch("/sessions", { method: "POST"`, `"/execute", {`, `method: "DELETE", keepalive: true`, `addEventListener("pagehide"`} {
		if !strings.Contains(script, want) {
			t.Errorf("app.js does not hold %s", want)
		}
	}
}
