package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/pyexec/pyexec/executor"
	ts "github.com/pyexec/pyexec/internal/testsupport"
	"github.com/pyexec/pyexec/server"
)

// A tools/call of run_python as an MCP client on protocol 2025-06-18 sends it.
const mcpCall = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"run_python","arguments":{"script":"def main():\n    return 1"}}}`

// guarded is one request a test sends to a guarded path: its method, path,
// body and headers (Host among them).
type guarded struct {
	method, path, body string
	header             map[string]string
}

// sendTo sends g to the server at base and returns the answer.
func (g guarded) sendTo(t *testing.T, base string) answer {
	t.Helper()
	req, err := http.NewRequest(g.method, base+g.path, strings.NewReader(g.body))
	if err != nil {
		t.Fatal(err)
	}
	if g.path == "/mcp" {
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	for k, v := range g.header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	return do(t, req)
}

// refusalType is the error_type of a refusal: a failure's, or, from /mcp,
// the JSON-RPC error's data's. It fails t when body is neither.
func refusalType(t *testing.T, path, body string) string {
	t.Helper()
	if path == "/mcp" {
		var rpc struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
				Data    struct {
					ErrorType string `json:"error_type"`
				} `json:"data"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &rpc); err != nil || rpc.JSONRPC != "2.0" || rpc.Error.Code == 0 || rpc.Error.Message == "" {
			t.Fatalf("/mcp refusal %q is not a JSON-RPC error (%v)", body, err)
		}
		return rpc.Error.Data.ErrorType
	}
	var f struct {
		Error     string  `json:"error"`
		ErrorType string  `json:"error_type"`
		Stdout    *string `json:"stdout"`
	}
	if err := json.Unmarshal([]byte(body), &f); err != nil || f.Error == "" || f.Stdout == nil {
		t.Fatalf("refusal %q is not a failure {error, error_type, stdout} (%v)", body, err)
	}
	return f.ErrorType
}

// The requests a web page can make a visitor's browser send without asking
// first (a <form>, or fetch with a "simple" body), and the ones a page whose
// name was rebound to the service's address sends: none of them runs
// anything, on any state-changing path.
func TestNoRequestAPageOfAnotherSiteCanSendRunsAnything(t *testing.T) {
	exec := answering(executor.Result{Value: json.RawMessage(`1`)}, nil)
	s := startServer(t, exec, nil)
	u, err := url.Parse(s.executeURL)
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]string{"/execute": `{"script": "def main():\n    return 1"}`, "/mcp": mcpCall, "/sessions": `{}`}
	for _, tc := range []struct {
		name      string
		header    map[string]string
		status    int
		errorType string
	}{
		{"a form's text/plain body", map[string]string{"Content-Type": "text/plain"}, 415, "unsupported_media_type"},
		{"a form's urlencoded body", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"a form's multipart body", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, 415, "unsupported_media_type"},
		{"a body with no Content-Type (fetch of a Blob)", map[string]string{}, 415, "unsupported_media_type"},
		{"a cross-site text/plain form, as chromium sends it", map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, 403, "forbidden"},
		{"Sec-Fetch-Site cross-site, JSON (a CORS fetch that ignores the preflight)", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403, "forbidden"},
		{"Sec-Fetch-Site same-site: another port of this host", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:1"}, 403, "forbidden"},
		{"an Origin of another site from a browser without Sec-Fetch-Site", map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, 403, "forbidden"},
		{"Origin null (a sandboxed frame)", map[string]string{"Content-Type": "application/json", "Origin": "null"}, 403, "forbidden"},
		{"a rebound name: Host and Origin evil.example, same-origin", map[string]string{"Content-Type": "application/json", "Host": "evil.example:" + u.Port(), "Origin": "http://evil.example:" + u.Port(), "Sec-Fetch-Site": "same-origin"}, 403, "forbidden"},
		{"a foreign Host from curl", map[string]string{"Content-Type": "application/json", "Host": "evil.example"}, 403, "forbidden"},
	} {
		for _, path := range []string{"/execute", "/mcp", "/sessions"} {
			t.Run(tc.name+" to "+path, func(t *testing.T) {
				before := exec.calls.Load()
				a := guarded{http.MethodPost, path, body[path], tc.header}.sendTo(t, s.executeURL)
				if a.status != tc.status || a.header.Get("Content-Type") != "application/json" {
					t.Fatalf("status = %d (%s) %s, want %d in JSON", a.status, a.header.Get("Content-Type"), a.body, tc.status)
				}
				if got := refusalType(t, path, a.body); got != tc.errorType {
					t.Errorf("error_type = %q, want %q (%s)", got, tc.errorType, a.body)
				}
				if n := exec.calls.Load() - before; n != 0 {
					t.Errorf("the executor ran %d times for a refused request", n)
				}
			})
		}
	}
	if entries := s.entries(t); len(entries) != 0 {
		t.Errorf("refused requests logged executions: %v", entries)
	}
}

// curl, the Go client, MCP clients (no Origin, no Sec-Fetch-Site) and the
// playground (same-origin fetch) still run scripts, under every name the
// service has.
func TestTheServicesOwnClientsStillRunScripts(t *testing.T) {
	exec := answering(executor.Result{Value: json.RawMessage(`1`)}, nil)
	s := serve(t, server.Config{AllowedHosts: []string{"pyexec.internal", "10.0.0.5"}}, exec, nil)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(s.executeURL)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	jsonType := "application/json; charset=utf-8"
	for _, tc := range []struct {
		name   string
		header map[string]string
	}{
		{"curl on 127.0.0.1", map[string]string{"Content-Type": "application/json"}},
		{"a charset parameter", map[string]string{"Content-Type": jsonType}},
		{"Host localhost", map[string]string{"Content-Type": "application/json", "Host": "localhost:" + port}},
		{"Host [::1]", map[string]string{"Content-Type": "application/json", "Host": "[::1]:" + port}},
		{"Host app.localhost", map[string]string{"Content-Type": "application/json", "Host": "app.localhost:" + port}},
		{"a configured name, any case, a final dot", map[string]string{"Content-Type": "application/json", "Host": "PyExec.Internal.:8080"}},
		{"a configured address", map[string]string{"Content-Type": "application/json", "Host": "10.0.0.5:" + port}},
		{"the playground's same-origin fetch", map[string]string{"Content-Type": "application/json", "Origin": s.executeURL, "Sec-Fetch-Site": "same-origin"}},
		{"a same-origin fetch from an older browser (Origin only)", map[string]string{"Content-Type": "application/json", "Origin": s.executeURL}},
		{"a browser's address bar or a bookmark (Sec-Fetch-Site none)", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "none"}},
	} {
		for _, path := range []string{"/execute", "/mcp"} {
			t.Run(tc.name+" to "+path, func(t *testing.T) {
				before := exec.calls.Load()
				body := map[string]string{"/execute": `{"script": "def main():\n    return 1"}`, "/mcp": mcpCall}[path]
				a := guarded{http.MethodPost, path, body, tc.header}.sendTo(t, s.executeURL)
				if a.status != http.StatusOK || exec.calls.Load() != before+1 {
					t.Errorf("status = %d (%s), runs %d; want 200 after one run", a.status, a.body, exec.calls.Load()-before)
				}
			})
		}
	}
}

// Behind Cloud Run's front end (K_SERVICE set) the Host is the one the
// front end routed by, so it is not checked; the Origin of a browser request
// still must be the service's: the run.app page itself, or loopback through
// `gcloud run services proxy`.
func TestBehindAFrontEndTheOriginStillDecides(t *testing.T) {
	exec := answering(executor.Result{Value: json.RawMessage(`1`)}, nil)
	cfg, err := server.ConfigFromEnv(func(name string) string {
		return map[string]string{"K_SERVICE": "pyexec"}[name]
	})
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, cfg, exec, nil)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	const runApp = "pyexec-abc123-ew.a.run.app"
	for _, tc := range []struct {
		name   string
		header map[string]string
		status int
	}{
		{"the run.app host", map[string]string{"Host": runApp}, 200},
		{"a custom domain", map[string]string{"Host": "py.example.com"}, 200},
		{"the playground on run.app", map[string]string{"Host": runApp, "Origin": "https://" + runApp, "Sec-Fetch-Site": "same-origin"}, 200},
		{"the playground through the local proxy", map[string]string{"Host": runApp, "Origin": "http://localhost:8080", "Sec-Fetch-Site": "same-origin"}, 200},
		{"a page rebound to the local proxy", map[string]string{"Host": runApp, "Origin": "http://evil.example:8080", "Sec-Fetch-Site": "same-origin"}, 403},
		{"a cross-site form", map[string]string{"Host": runApp, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := exec.calls.Load()
			tc.header["Content-Type"] = "application/json"
			a := guarded{http.MethodPost, "/execute", `{"script": "def main():\n    return 1"}`, tc.header}.sendTo(t, s.executeURL)
			ran := exec.calls.Load() > before
			if a.status != tc.status || ran != (tc.status == 200) {
				t.Errorf("status = %d (%s), ran %v; want %d", a.status, a.body, ran, tc.status)
			}
		})
	}
}

func TestAllowedHostsConfiguration(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  []string
		fails bool
	}{
		{"", nil, false},
		{"pyexec.internal", []string{"pyexec.internal"}, false},
		{" a.example , 10.0.0.5:8080,, ", []string{"a.example", "10.0.0.5:8080"}, false},
		{"http://a.example", nil, true},
		{"*.example", nil, true},
		{"a example", nil, true},
	} {
		cfg, err := server.ConfigFromEnv(func(name string) string {
			return map[string]string{"PYEXEC_ALLOWED_HOSTS": tc.value}[name]
		})
		if tc.fails {
			if err == nil || !strings.Contains(err.Error(), "PYEXEC_ALLOWED_HOSTS") {
				t.Errorf("PYEXEC_ALLOWED_HOSTS=%q: error %v, want one naming the variable", tc.value, err)
			}
			continue
		}
		if err != nil || strings.Join(cfg.AllowedHosts, "|") != strings.Join(tc.want, "|") {
			t.Errorf("PYEXEC_ALLOWED_HOSTS=%q: %q, %v; want %q", tc.value, cfg.AllowedHosts, err, tc.want)
		}
	}
}

// ExecuteEvent's deliveries come from Pub/Sub push (application/json) and
// Eventarc (binary mode: application/json; structured mode:
// application/cloudevents+json); a form a page sends runs nothing.
func TestExecuteEventRefusesWhatAPageCanSend(t *testing.T) {
	envelope := func(id string) string {
		b, _ := json.Marshal(map[string]any{"message": map[string]any{"data": base64.StdEncoding.EncodeToString(ts.ScriptData(okScript, "")), "messageId": id}})
		return string(b)
	}
	structured, _ := json.Marshal(map[string]any{
		"specversion": "1.0", "id": "m3", "type": server.MessagePublished, "source": "//pubsub",
		"datacontenttype": "application/json", "data": json.RawMessage(envelope("m3")),
	})
	for _, tc := range []struct {
		name   string
		header map[string]string
		body   string
		status int
	}{
		{"a push envelope as text/plain", map[string]string{"Content-Type": "text/plain"}, envelope("m1"), 415},
		{"a push envelope as a cross-site form", map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, envelope("m1"), 403},
		{"a push envelope naming a foreign Host", map[string]string{"Content-Type": "application/json", "Host": "evil.example"}, envelope("m1"), 403},
		{"a push envelope", map[string]string{"Content-Type": "application/json"}, envelope("m2"), 200},
		{"a structured-mode CloudEvent", map[string]string{"Content-Type": "application/cloudevents+json; charset=utf-8"}, string(structured), 200},
		{"a binary-mode CloudEvent", map[string]string{"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Id": "m4", "Ce-Type": server.MessagePublished, "Ce-Source": "//pubsub"}, envelope("m4"), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exec := answering(executor.Result{Value: json.RawMessage(`4`)}, nil)
			s := startServer(t, exec, nil)
			a := guarded{http.MethodPost, "/", tc.body, tc.header}.sendTo(t, s.eventURL)
			if a.status != tc.status {
				t.Fatalf("status = %d (%s), want %d", a.status, a.body, tc.status)
			}
			if want := int32(0); tc.status == 200 {
				want = 1
				if n := exec.calls.Load(); n != want {
					t.Errorf("the executor ran %d times, want %d", n, want)
				}
				return
			}
			if n := exec.calls.Load(); n != 0 {
				t.Errorf("the executor ran %d times for a refused delivery", n)
			}
			refusalType(t, "/", a.body)
		})
	}
}

// A path that is not clean is no path: the JSON 404, never a redirect.
func TestUncleanPathsAnswerTheJSON404(t *testing.T) {
	exec := answering(executor.Result{Value: json.RawMessage(`1`)}, nil)
	s := startServer(t, exec, nil)
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, "//execute"},
		{http.MethodPost, "/./execute"},
		{http.MethodGet, "/playground/../openapi.json"},
		{http.MethodGet, "/healthz/"},
	} {
		a := send(t, tc.method, s.executeURL+tc.path, map[string]string{http.MethodPost: `{"script": "def main():\n    return 1"}`}[tc.method])
		if a.status != http.StatusNotFound || refusalType(t, tc.path, a.body) != "not_found" {
			t.Errorf("%s %s = %d %s, want the JSON 404", tc.method, tc.path, a.status, a.body)
		}
	}
	if n := exec.calls.Load(); n != 0 {
		t.Errorf("the executor ran %d times", n)
	}
}

// Inside a container with a published port, connections reach the service
// on the container's own address, not on loopback: the Host alone decides.
func TestTheHostDecidesWhateverAddressTheConnectionReached(t *testing.T) {
	exec := answering(executor.Result{Value: json.RawMessage(`1`)}, nil)
	s := startServer(t, exec, nil)
	containerAddr := &net.TCPAddr{IP: net.ParseIP("10.88.0.5"), Port: 8080}
	for _, tc := range []struct {
		host   string
		status int
	}{
		{"evil.example:8080", http.StatusForbidden},
		{"10.88.0.5:8080", http.StatusForbidden}, // not configured
		{"localhost:8080", http.StatusOK},        // docker run -p 8080:8080, then localhost:8080
	} {
		for _, path := range []string{"/execute", "/mcp"} {
			body := map[string]string{"/execute": `{"script": "def main():\n    return 1"}`, "/mcp": mcpCall}[path]
			req := httptest.NewRequest(http.MethodPost, "http://"+tc.host+path, strings.NewReader(body))
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, containerAddr))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			w := httptest.NewRecorder()
			s.Execute(w, req)
			if w.Code != tc.status {
				t.Errorf("POST %s with Host %s on %v = %d %s, want %d", path, tc.host, containerAddr, w.Code, w.Body, tc.status)
			}
		}
	}
	if n := exec.calls.Load(); n != 2 {
		t.Errorf("the executor ran %d times, want twice (localhost, on both paths)", n)
	}
}
