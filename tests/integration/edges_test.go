//go:build integration

package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// executions counts the execution entries in a service's log: one per
// script the service ran (or refused at its rules), none for a request it
// turned away at the door.
func executions(entries []map[string]any) int {
	n := 0
	for _, e := range entries {
		if _, ok := e["execution_id"]; ok && e["function"] != nil {
			n++
		}
	}
	return n
}

// rawPost sends body to the service at base with header (Host among
// them) and returns the status, the Content-Type and the body.
func rawPost(t *testing.T, base, path, body string, header map[string]string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), raw
}

// The built binary, as Cloud Run and `make run` run it: what a web page
// can make a browser send runs nothing, on /execute and /mcp; a foreign
// Host is refused although the connection comes from loopback, and the
// operator's own name is served; unclean paths answer the JSON 404.
func TestTheServiceRunsNothingForAForeignPage(t *testing.T) {
	b := testsupport.StartBinary(t, map[string]string{"PYEXEC_ALLOWED_HOSTS": "pyexec.test"})
	b.Health(t, http.StatusOK)
	u, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	script := `{"script": "def main():\n    print('ran')\n    return 1\n"}`
	mcpCall := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_python","arguments":` + script + `}}`
	mcpHeaders := map[string]string{"Accept": "application/json, text/event-stream", "Mcp-Protocol-Version": "2025-06-18"}
	for _, tc := range []struct {
		name   string
		header map[string]string
		status int
		typ    string
	}{
		{"a cross-site text/plain form", map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, 403, "forbidden"},
		{"a urlencoded form without browser headers", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"a rebound page (Host evil.example)", map[string]string{"Content-Type": "application/json", "Host": "evil.example:" + u.Port()}, 403, "forbidden"},
	} {
		for _, path := range []string{"/execute", "/mcp"} {
			header := map[string]string{}
			body := script
			if path == "/mcp" {
				body = mcpCall
				for k, v := range mcpHeaders {
					header[k] = v
				}
			}
			for k, v := range tc.header {
				header[k] = v
			}
			status, contentType, raw := rawPost(t, b.URL, path, body, header)
			if status != tc.status || contentType != "application/json" || !bytes.Contains(raw, []byte(`"error_type":"`+tc.typ+`"`)) {
				t.Errorf("%s to %s = %d %s %s, want %d JSON with error_type %s", tc.name, path, status, contentType, raw, tc.status, tc.typ)
			}
		}
	}
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, "//execute"},
		{http.MethodGet, "/playground/../openapi.json"},
	} {
		req, err := http.NewRequest(tc.method, b.URL+tc.path, strings.NewReader(script))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/json" || !bytes.Contains(raw, []byte(`"error_type":"not_found"`)) {
			t.Errorf("%s %s = %d %s %s, want the JSON 404", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
		}
	}
	if n := executions(b.Entries(t)); n != 0 {
		t.Fatalf("the service logged %d executions for requests it refused: %v", n, b.Entries(t))
	}

	// The same script, sent as its own clients send it, runs: under a
	// loopback name, under the configured one, and from the playground's
	// origin.
	for _, header := range []map[string]string{
		{"Content-Type": "application/json"},
		{"Content-Type": "application/json", "Host": "localhost:" + u.Port()},
		{"Content-Type": "application/json", "Host": "pyexec.test:" + u.Port()},
		{"Content-Type": "application/json", "Origin": b.URL, "Sec-Fetch-Site": "same-origin"},
	} {
		if status, _, raw := rawPost(t, b.URL, "/execute", script, header); status != http.StatusOK || !bytes.Contains(raw, []byte(`"stdout":"ran"`)) {
			t.Errorf("POST /execute with %v = %d %s, want 200 with stdout ran", header, status, raw)
		}
	}
	testsupport.PollUntil(t, 10*time.Second, "four execution entries", func() bool { return executions(b.Entries(t)) == 4 })
}

// Inputs that are not the script's fault are refused at the door, naming
// the rule, and those just within the rules reach main exactly; empty
// extensions make outputs/ as any extension does. In every mode, since
// each parses the job in an interpreter of its own kind.
func TestInputEdgesInEveryMode(t *testing.T) {
	echo := "def main(data):\n    depth = 0\n    while isinstance(data, list):\n        data, depth = (data[0] if data else None), depth + 1\n    return {'depth': depth, 'type': type(data).__name__, 'digits': len(str(abs(data))) if isinstance(data, int) else None}\n"
	for _, mode := range []string{"cold", "pool", "fork"} {
		t.Run(mode, func(t *testing.T) {
			ts := testsupport.StartService(t, map[string]string{"PYEXEC_MODE": mode})
			for _, tt := range []struct {
				name, fields string
				result       string  // for a success
				want         failure // for a refusal
			}{
				{name: "input nested 500 deep", fields: `"input": ` + strings.Repeat("[", 500) + "7" + strings.Repeat("]", 500), result: `{"depth":500,"type":"int","digits":1}`},
				{name: "input nested 501 deep", fields: `"input": ` + strings.Repeat("[", 501) + "7" + strings.Repeat("]", 501), want: failure{400, "invalid_request", "'input' is nested more than 500 levels deep"}},
				{name: "an integer of 4,300 digits", fields: `"input": [-` + strings.Repeat("9", 4300) + `]`, result: `{"depth":1,"type":"int","digits":4300}`},
				{name: "an integer of 3 million digits", fields: `"input": ` + strings.Repeat("9", 3_000_000), want: failure{400, "invalid_request", "'input' holds an integer of 3000000 digits; the limit is 4300 digits"}},
				{name: "1e400", fields: `"input": [1e400]`, want: failure{400, "invalid_request", "'input' holds the number 1e400, beyond the range of a float"}},
				{name: "the largest float", fields: `"input": 1.7976931348623157e308`, result: `{"depth":0,"type":"float","digits":null}`},
				{name: "a path with a lone surrogate", fields: `"input": 1, "files": [{"path": "a\ud800", "content": "x"}]`, want: failure{400, "invalid_request", "files[0].path holds a lone UTF-16 surrogate escape"}},
			} {
				t.Run(tt.name, func(t *testing.T) {
					body := fmt.Sprintf(`{"script": %q, %s}`, echo, tt.fields)
					r := ts.Post(t, "/execute", "application/json", []byte(body))
					if tt.result != "" {
						checkOK(t, mode+" mode: "+tt.name, r, tt.result, "")
						return
					}
					checkFailure(t, mode+" mode: "+tt.name, r, tt.want)
				})
			}
			for _, fields := range []string{`"files": []`, `"limits": {}`, `"stdin": ""`} {
				t.Run(fields+" makes outputs/", func(t *testing.T) {
					body := `{"script": "import os\ndef main():\n    return os.path.isdir('outputs')\n", ` + fields + `}`
					checkOK(t, mode+" mode: "+fields, ts.Post(t, "/execute", "application/json", []byte(body)), "true", "")
				})
			}
			t.Run("a script alone makes no outputs/", func(t *testing.T) {
				checkOK(t, mode+" mode: a script alone", ts.Execute(t, "import os\ndef main():\n    return os.path.isdir('outputs')\n"), "false", "")
			})
			var entries int
			for _, e := range ts.Logs.Entries(t, true) {
				if e["error_type"] == "invalid_request" {
					entries++
				}
			}
			if entries != 4 {
				t.Errorf("%d invalid_request entries logged, want one per refused request (4)", entries)
			}
		})
	}
}
