//go:build integration

package browser

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// With Keep state on, each Run is the next cell of one session: a DataFrame
// one cell makes is there in the next, the history lists the cells, Restart
// forgets them, a cell that ends the session says so, and switching off
// goes back to POST /execute.
func TestKeepStateRunsCellsOfOneSession(t *testing.T) {
	svc := sharedService(t)
	p := openPlayground(t, svc)
	p.do(chromedp.Click(chromedp.ID("keep-state")))

	p.setScript("import pandas as pd, io\ndf = pd.read_csv(io.StringIO(\"a,b\\n1,2\\n3,4\\n\"))")
	got := p.run()
	if got.ErrorShown || got.ResultShown || got.State != "ok" || got.HTTPStatus != "200 OK" {
		t.Fatalf("first cell shown %s, error %v %q %q, result shown %v; want 200, no error and no value", got.HTTPStatus, got.ErrorShown, got.ErrorType, got.Error, got.ResultShown)
	}
	p.setScript("int(df.a.sum())")
	got = p.run()
	if got.ErrorShown || !got.ResultShown || got.Result != "4" || !strings.HasPrefix(got.Status, "Cell 2 finished") {
		t.Fatalf("second cell shown result %q (error %q %q), status %q; want 4 from cell 2", got.Result, got.ErrorType, got.Error, got.Status)
	}
	cells := p.history()
	if len(cells) != 2 || cells[0].Code != "import pandas as pd, io\ndf = pd.read_csv(io.StringIO(\"a,b\\n1,2\\n3,4\\n\"))" ||
		cells[1].Code != "int(df.a.sum())" || cells[1].Label != "[2]" || cells[1].Result != "4" {
		t.Fatalf("history %+v, want the two cells in order, the second with 4", cells)
	}

	// A value with no JSON form shows as its repr, and printed HTML stays text.
	p.setScript("print('<b id=injected>x</b>')\nobject")
	got = p.run()
	if got.Result != "<class 'object'>" || got.Stdout != "<b id=injected>x</b>" {
		t.Errorf("third cell shown result %q, stdout %q; want the repr as it is and the printed text", got.Result, got.Stdout)
	}
	if n := evaluate[int](p, `document.querySelectorAll("#injected").length`); n != 0 {
		t.Errorf("printed HTML became %d element(s) in the page", n)
	}

	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	save(t, filepath.Join(t.ArtifactDir(), "session.png"), shot)

	p.do(chromedp.Click(chromedp.ID("restart")))
	p.poll(`document.querySelectorAll("#history li").length === 0`)
	p.setScript("df")
	got = p.run()
	if got.ErrorType != "exception" || got.Error != "NameError: name 'df' is not defined" || !strings.Contains(got.Traceback, `File "<cell 1>", line 1`) ||
		!slices.Equal(got.LineLinks, []int{1}) {
		t.Fatalf("after Restart, df shown %q %q, traceback %q, links %v; want a NameError of cell 1 linked to line 1", got.ErrorType, got.Error, got.Traceback, got.LineLinks)
	}
	if cells := p.history(); len(cells) != 1 || cells[0].Error != "NameError: name 'df' is not defined" {
		t.Errorf("history after Restart %+v, want the one failed cell", cells)
	}
	p.waitRequests("POST", "/sessions", 2)
	p.waitRequests("DELETE", "/sessions/", 1)

	// A cell that ends the session says so; the next Run starts another.
	p.setScript("import os\nos._exit(3)")
	got = p.run()
	if got.ErrorType != "exited" || !strings.Contains(got.Status, "session has ended") {
		t.Errorf("a cell that exits shown %q, status %q; want exited and the session's end", got.ErrorType, got.Status)
	}
	p.setScript("1 + 1")
	got = p.run()
	notes := evaluate[[]string](p, `Array.from(document.querySelectorAll("#history li.note")).map((li) => li.textContent)`)
	if got.Result != "2" || len(notes) != 2 || !strings.HasPrefix(notes[0], "The session ended") || !strings.HasPrefix(notes[1], "A new session started") {
		t.Errorf("after the session ended, 1 + 1 shown %q (error %q), history notes %q; want 2, the end and a new session", got.Result, got.Error, notes)
	}
	p.waitRequests("POST", "/sessions", 3)

	// Switching off ends the session and runs scripts on their own again.
	p.do(chromedp.Click(chromedp.ID("keep-state")))
	p.waitRequests("DELETE", "/sessions/", 2)
	if !evaluate[bool](p, `document.getElementById("session-block").hidden && document.getElementById("restart").hidden`) {
		t.Errorf("with Keep state off, the session history or Restart still shows")
	}
	p.pickExample("hello.py")
	got = p.run()
	if got.Result != "{\n  \"answer\": 4\n}" || p.count("POST", "/execute") != 1 {
		t.Errorf("with Keep state off, hello.py shown %q after %d POST /execute; want its answer from POST /execute", got.Result, p.count("POST", "/execute"))
	}
}

// historyCell is one cell the session history shows.
type historyCell struct {
	Label  string `json:"label"`
	Code   string `json:"code"`
	Result string `json:"result"`
	Error  string `json:"error"`
}

func (p *page) history() []historyCell {
	p.t.Helper()
	return evaluate[[]historyCell](p, `Array.from(document.querySelectorAll("#history li.cell")).map((li) => {
		const text = (c) => { const e = li.querySelector(c); return e ? e.textContent : ""; };
		return { label: text(".cell-label"), code: text(".cell-code"), result: text(".cell-result"), error: text(".cell-error") };
	})`)
}

// count is how many requests of method the tab sent to the service's
// path, or under it when path ends in "/".
func (p *page) count(method, path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.requests {
		u := strings.TrimPrefix(r.URL, p.origin)
		if r.Method == method && (u == path || strings.HasSuffix(path, "/") && strings.HasPrefix(u, path) && !strings.HasSuffix(u, "/execute")) {
			n++
		}
	}
	return n
}

// waitRequests waits until the tab has sent n requests count counts; the
// page sends a DELETE without waiting for its answer.
func (p *page) waitRequests(method, path string, n int) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.count(method, path) < n {
		if time.Now().After(deadline) {
			p.t.Fatalf("the page sent %d %s %s, want %d", p.count(method, path), method, path, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := p.count(method, path); got != n {
		p.t.Errorf("the page sent %d %s %s, want %d", got, method, path, n)
	}
}

// Leaving the page ends its session: the service forgets it.
func TestLeavingThePageEndsItsSession(t *testing.T) {
	svc := sharedService(t)
	p := openPlayground(t, svc)
	p.do(chromedp.Click(chromedp.ID("keep-state")))
	p.setScript("x = 1\nx")
	if got := p.run(); got.Result != "1" {
		t.Fatalf("cell shown %q (error %q %q), want 1", got.Result, got.ErrorType, got.Error)
	}
	var id string
	for _, u := range p.urls() {
		if rest, ok := strings.CutPrefix(u, svc.URL+"/sessions/"); ok {
			id = strings.TrimSuffix(rest, "/execute")
		}
	}
	if id == "" {
		t.Fatalf("the page sent no cell; it requested %v", p.urls())
	}
	// The DELETE leaves with the page, so the tab may not report it: the
	// service is asked instead.
	p.do(chromedp.Navigate(svc.URL + "/"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(svc.URL + "/sessions/" + id)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusNotFound {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /sessions/%s = %d after the page was left, want 404", id, res.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
