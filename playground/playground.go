// Package playground is pyexec's browser page: a small editor that runs
// scripts through POST /execute on the page's own origin, or, with "Keep
// state" on, runs each as the next cell of a session (/sessions), and shows
// what came back.
//
// Its files are embedded in the binary and served with a strict
// Content-Security-Policy: the page loads nothing from another origin and
// runs no inline script or style, so a result or traceback that holds HTML
// can never execute in it.
//
// The transport asks Wants whether a request is the playground's and passes
// those to Handler; everything else keeps the service's own JSON answers.
package playground

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pyexec/pyexec/examples"
)

// contentSecurityPolicy allows the page's own files and same-origin fetches
// only. Blob URLs are for downloads of returned files, which are
// navigations, not loads, and so need no source here.
// Images may also come from blob: URLs, which the page makes of the PNGs in
// an answer's display; nothing else does.
const contentSecurityPolicy = "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; " +
	"form-action 'none'; frame-ancestors 'none'"

// pagePath is where the page is served; assetPrefix is where its files are.
const (
	pagePath    = "/"
	assetPrefix = "/playground/"
)

//go:embed static examples
var embedded embed.FS

// file is one response body the playground serves, ready to write.
type file struct {
	body        []byte
	contentType string
	etag        string
}

// files maps each served path to its body. It is built once; a missing or
// unreadable embedded file is a build mistake, caught by the package's tests.
var files = mustLoadFiles()

func mustLoadFiles() map[string]file {
	out := map[string]file{}
	add := func(urlPath, contentType string, body []byte) {
		sum := sha256.Sum256(body)
		out[urlPath] = file{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	read := func(name string) []byte {
		b, err := fs.ReadFile(embedded, name)
		if err != nil {
			panic(fmt.Sprintf("playground: embedded file: %v", err))
		}
		return b
	}
	add(pagePath, "text/html; charset=utf-8", read("static/index.html"))
	add(assetPrefix+"app.js", "text/javascript; charset=utf-8", read("static/app.js"))
	add(assetPrefix+"app.css", "text/css; charset=utf-8", read("static/app.css"))
	add(assetPrefix+"icon.svg", "image/svg+xml", read("static/icon.svg"))
	menu, err := menuJSON()
	if err != nil {
		panic(fmt.Sprintf("playground: examples menu: %v", err))
	}
	add(assetPrefix+"examples.json", "application/json", menu)
	return out
}

// example is one entry of the examples menu, as the page reads it.
type example struct {
	Name   string `json:"name"`  // file name, e.g. "hello.py"
	Title  string `json:"title"` // the menu's label
	Script string `json:"script"`
	// Input is the text the page puts in its input box; empty for none.
	Input string `json:"input,omitempty"`
}

// menu is the examples menu: the five examples of docs/api.md (examples/*.py), then
// one that takes input and one that writes an output file.
var menu = []struct {
	title, name string
	fsys        fs.FS
	input       string
}{
	{"Hello: print and return a dict", "hello.py", examples.FS, ""},
	{"pandas: sums of two columns", "pandas_sum.py", examples.FS, ""},
	{"numpy: mean and standard deviation", "numpy_stats.py", examples.FS, ""},
	{"os: platform and CPU count", "os_info.py", examples.FS, ""},
	{"No main(): rejected before it runs", "no_main.py", examples.FS, ""},
	{"input: main(data) gets the input box", "input_totals.py", extras, `{"name": "pyexec", "numbers": [3, 1, 4, 1, 5]}`},
	{"Output file: writes outputs/result.csv", "output_csv.py", extras, ""},
}

// extras holds the playground's own examples (playground/examples/), the
// ones that use the request's extensions.
var extras = func() fs.FS {
	sub, err := fs.Sub(embedded, "examples")
	if err != nil {
		panic(err) // fs.Sub fails only for an invalid literal path
	}
	return sub
}()

func menuJSON() ([]byte, error) {
	var list []example
	for _, m := range menu {
		script, err := fs.ReadFile(m.fsys, m.name)
		if err != nil {
			return nil, err
		}
		if m.input != "" && !json.Valid([]byte(m.input)) {
			return nil, fmt.Errorf("input of %s is not JSON: %s", m.name, m.input)
		}
		list = append(list, example{Name: m.name, Title: m.title, Script: string(script), Input: m.input})
	}
	return json.Marshal(list)
}

// Wants reports whether r is for the playground: a GET or HEAD of one of its
// files, or of / from a client that asks for HTML, as browsers do. An API
// client asks for JSON, or for anything (*/*), or says nothing; it is not
// served the page and keeps getting the service's JSON answer for /.
func Wants(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if _, ok := files[r.URL.Path]; !ok {
		return false
	}
	return r.URL.Path != pagePath || acceptsHTML(r.Header.Values("Accept"))
}

// acceptsHTML reports whether an Accept header names HTML with a non-zero
// weight. Wildcards do not count: they are what API clients send.
func acceptsHTML(accept []string) bool {
	for _, value := range accept {
		for _, mediaRange := range strings.Split(value, ",") {
			mediaType, params, _ := strings.Cut(mediaRange, ";")
			switch strings.ToLower(strings.TrimSpace(mediaType)) {
			case "text/html", "application/xhtml+xml":
				if weight(params) > 0 {
					return true
				}
			}
		}
	}
	return false
}

// weight is the q parameter of a media range's parameters: 1 when absent,
// 0 when unreadable.
func weight(params string) float64 {
	for _, p := range strings.Split(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(name), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				return 0
			}
			return q
		}
	}
	return 1
}

// Handler serves the page at / and its files under /playground/. It serves
// whatever it is given; the transport decides with Wants which requests reach
// it.
func Handler() http.Handler { return http.HandlerFunc(serve) }

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	f, ok := files[r.URL.Path]
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: use GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == pagePath {
		// / answers JSON to API clients and this page to browsers.
		h.Set("Vary", "Accept")
	}
	// Revalidated on every use: the files change with the binary, under the
	// same names, and an unchanged file costs one 304.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	h.Set("Content-Type", f.contentType)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}
