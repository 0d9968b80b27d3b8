//go:build integration

package integration

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// What the running binary serves beside the API: its OpenAPI document, as
// a new user fetches it, and the playground page, to browsers only.

// get sends GET path with the Accept header accept ("" for none) and
// returns the answer and its body.
func get(t *testing.T, url, accept string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestTheRunningServiceServesItsDocumentAndThePlayground(t *testing.T) {
	b := testsupport.StartBinary(t, nil)
	b.Health(t, http.StatusOK)

	t.Run("GET /openapi.json is a valid OpenAPI 3.1 document", func(t *testing.T) {
		resp, body := get(t, b.URL+"/openapi.json", "")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Execution-Id") == "" {
			t.Fatalf("GET /openapi.json = %d %q X-Execution-Id %q, want 200 application/json with an ID",
				resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("X-Execution-Id"))
		}
		doc, err := openapi3.NewLoader().LoadFromData(body)
		if err != nil {
			t.Fatalf("loading the served document: %v", err)
		}
		if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
			t.Errorf("openapi = %q, want 3.1.x", doc.OpenAPI)
		}
		if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
			t.Errorf("the served document is invalid: %v", err)
		}
		for _, path := range []string{"/execute", "/healthz", "/openapi.json", "/", "/mcp"} {
			if doc.Paths.Value(path) == nil {
				t.Errorf("the served document has no path %s", path)
			}
		}
	})

	t.Run("an API client's GET / still answers the JSON 404", func(t *testing.T) {
		for _, accept := range []string{"application/json", "*/*", ""} {
			resp, body := get(t, b.URL+"/", accept)
			r := testsupport.Response{Request: "GET /", Status: resp.StatusCode, Header: resp.Header, Raw: body}
			const want = `{"error":"Not found: use POST /execute or GET /healthz","error_type":"not_found","stdout":""}` + "\n"
			if resp.StatusCode != http.StatusNotFound || string(body) != want {
				t.Errorf("GET / with Accept %q = %d %s, want 404 %s", accept, resp.StatusCode, body, want)
			}
			checkCommonFields(t, "GET / with Accept "+accept, r)
		}
	})

	t.Run("a browser's GET / gets the page", func(t *testing.T) {
		resp, body := get(t, b.URL+"/", "text/html,application/xhtml+xml,*/*;q=0.8")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") || !strings.Contains(string(body), "<html") {
			t.Errorf("GET / from a browser = %d %q CSP %q, want 200 HTML under default-src 'self'",
				resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Security-Policy"))
		}
		if resp.Header.Get("X-Execution-Id") == "" {
			t.Error("GET / from a browser has no X-Execution-Id")
		}
	})
}
