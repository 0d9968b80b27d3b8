//go:build integration

package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// executions counts the execution entries in the service's log: one for
// every request that reached the executor, whatever its outcome.
func (s *service) executions() int {
	n := 0
	for _, line := range strings.Split(s.out.String(), "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) != nil {
			continue
		}
		if _, ok := entry["execution_id"]; ok && entry["function"] != nil {
			n++
		}
	}
	return n
}

// attackerPage serves, on its own loopback port, a page that makes the
// browser post a script to the service's /execute as soon as it loads, in
// the ways a page needs no permission for: a <form> with a text/plain body
// shaped as JSON, and a no-cors fetch.
func attackerPage(t *testing.T, target, how string) *httptest.Server {
	t.Helper()
	// A text/plain form sends name=value: the name opens the JSON object,
	// the value closes it, and the "=" lands inside a string.
	name := `{"script": "def main():\n    print('ran for another site')\n    return 1\n", "pad": "`
	var body string
	switch how {
	case "form":
		body = fmt.Sprintf(`<form method="POST" action="%s/execute" enctype="text/plain"><input name="%s" value='"}'></form>
<script>document.forms[0].submit()</script>`, html.EscapeString(target), html.EscapeString(name))
	case "fetch":
		body = fmt.Sprintf(`<script>
fetch(%q + "/execute", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: %q})
  .then(() => { document.title = "sent" }, () => { document.title = "sent" });
</script>`, target, name+`"}`)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>elsewhere</title>%s", body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A page on another loopback origin — another site (localhost against
// 127.0.0.1) or the same site on another port — cannot make a visitor's
// browser run a script: the form reaches the service and is refused, and
// the service's log shows that nothing ran. A request as the service's own
// clients send it then runs, so the count would have shown one that did.
func TestAPageOfAnotherOriginCannotRunAScript(t *testing.T) {
	svc := serviceWith(t, nil) // its log holds this test's requests only
	chromium, err := chromiumPath()
	if err != nil {
		t.Fatal(err)
	}
	profile, err := os.MkdirTemp("", "pyexec-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), browserOptions(chromium, profile, "127.0.0.1", "localhost")...)
	t.Cleanup(func() {
		cancelAlloc()
		removeProfile(t, profile)
	})
	before := svc.executions()

	for _, tc := range []struct{ name, origin, how string }{
		{"a form on another site", "localhost", "form"},
		{"a form on another port of the same host", "127.0.0.1", "form"},
		{"a no-cors fetch on another site", "localhost", "fetch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := attackerPage(t, svc.URL, tc.how)
			_, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			pageURL := "http://" + tc.origin + ":" + port + "/"
			ctx, cancel := chromedp.NewContext(allocCtx)
			defer cancel()
			ctx, cancelTimeout := context.WithTimeout(ctx, actionTimeout)
			defer cancelTimeout()
			if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
				t.Fatalf("opening %s: %v", pageURL, err)
			}
			if tc.how == "fetch" {
				if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.title === "sent"`, chromedp.WithPollingTimeout(actionTimeout))); err != nil {
					t.Fatalf("waiting for the fetch: %v", err)
				}
				return
			}
			// The form navigates the tab to the service's answer.
			if _, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`location.href === %q`, svc.URL+"/execute"), chromedp.WithPollingTimeout(actionTimeout))); err != nil {
				t.Fatalf("waiting for the form's answer: %v", err)
			}
			text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(text, `"error_type":"forbidden"`) {
				t.Errorf("the service answered the form with %q, want a forbidden failure", text)
			}
		})
	}
	// Let any request still on its way arrive and be logged.
	time.Sleep(time.Second)
	if n := svc.executions() - before; n != 0 {
		t.Fatalf("the service ran %d scripts for pages of other origins; its log:\n%s", n, svc.out.String())
	}

	resp, err := http.Post(svc.URL+"/execute", "application/json", bytes.NewReader([]byte(`{"script": "def main():\n    return 1\n"}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for svc.executions()-before != 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if resp.StatusCode != http.StatusOK || svc.executions()-before != 1 {
		t.Errorf("a JSON request from a client = %d and %d executions logged, want 200 and one", resp.StatusCode, svc.executions()-before)
	}
}
