//go:build integration

package browser

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// page is one chromium tab on the playground, driven for the test t.
type page struct {
	t *testing.T
	*tab
}

// tab is a chromium tab on the playground of a service, with every request
// it sent and every problem it reported recorded.
type tab struct {
	ctx    context.Context
	origin string

	mu         sync.Mutex
	requests   []*network.Request // every request the tab sent, in order
	executeIDs []string           // X-Execution-Id of each /execute answer
	problems   []string           // console errors, exceptions, CSP reports
}

// actionTimeout bounds one step of a test; a run in the sandbox takes well
// under a second, a page load less.
const actionTimeout = time.Minute

// openPlayground starts a headless chromium with a fresh profile, loads the
// playground and waits until its examples menu is filled. When t ends it
// checks that no request left for another origin and that the page reported
// no error of its own.
func openPlayground(t *testing.T, svc *service) *page {
	t.Helper()
	chromium, err := chromiumPath()
	if err != nil {
		t.Fatal(err)
	}
	profile, err := os.MkdirTemp("", "pyexec-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), browserOptions(chromium, profile, "127.0.0.1")...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	p := &page{t: t, tab: &tab{ctx: ctx, origin: svc.URL}}
	t.Cleanup(func() {
		p.checkOrigins()
		p.checkProblems()
		cancelTab()
		cancelAlloc() // waits for the browser to exit
		removeProfile(t, profile)
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	if err := chromedp.Listen(ctx, p.record); err != nil {
		t.Fatalf("listening to the tab: %v", err)
	}
	p.do(chromedp.Navigate(svc.URL + "/"))
	p.poll(`document.querySelectorAll("#examples option").length > 1 && document.getElementById("code").value !== ""`)
	return p
}

// browserOptions are the options of a headless chromium with the profile
// directory profile. Names resolve to nothing but the names reachable lists,
// so the browser itself cannot reach anything but the loopback listeners of
// the test.
func browserOptions(chromium, profile string, reachable ...string) []chromedp.ExecAllocatorOption {
	rules := "MAP * ~NOTFOUND"
	for _, name := range reachable {
		rules += ", EXCLUDE " + name
	}
	return append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("host-resolver-rules", rules),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	)
}

// forTest is the same tab driven for the subtest t.
func (p *page) forTest(t *testing.T) *page { return &page{t: t, tab: p.tab} }

// removeProfile removes the browser's profile; its child processes can still
// write there for a moment after the browser has exited.
func removeProfile(t *testing.T, dir string) {
	var err error
	for range 50 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("removing the browser profile: %v", err)
}

// record runs for every event of the tab, on chromedp's reading goroutine.
func (p *tab) record(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		p.requests = append(p.requests, ev.Request)
	case *network.EventResponseReceived:
		if ev.Response.URL == p.origin+"/execute" {
			p.executeIDs = append(p.executeIDs, header(ev.Response.Headers, "X-Execution-Id"))
		}
	case *runtime.EventExceptionThrown:
		p.problems = append(p.problems, "exception: "+ev.ExceptionDetails.Text+" "+describeException(ev.ExceptionDetails))
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
			p.problems = append(p.problems, "console."+string(ev.Type)+" called")
		}
	case *log.EventEntryAdded:
		e := ev.Entry
		// A 4xx answer of /execute, or of a session's cell, is logged as a
		// failed load; it is the script's error the page shows, not a fault
		// of the page.
		if e.Source == log.EntrySourceNetwork && (e.URL == p.origin+"/execute" || isCellURL(p.origin, e.URL)) {
			return
		}
		if e.Level == log.EntryLevelError || e.Level == log.EntryLevelWarning {
			p.problems = append(p.problems, string(e.Source)+" "+string(e.Level)+": "+e.Text+" ("+e.URL+")")
		}
	}
}

// isCellURL reports whether u is the URL of a session's cell,
// origin/sessions/{id}/execute.
func isCellURL(origin, u string) bool {
	id, ok := strings.CutPrefix(u, origin+"/sessions/")
	id, cell := strings.CutSuffix(id, "/execute")
	return ok && cell && id != "" && !strings.Contains(id, "/")
}

func describeException(d *runtime.ExceptionDetails) string {
	if d.Exception != nil {
		return d.Exception.Description
	}
	return ""
}

func header(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

// checkOrigins fails t if the tab sent any request to another origin than
// the service's.
func (p *page) checkOrigins() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.requests) == 0 {
		p.t.Errorf("no network request was recorded; the recording is broken")
	}
	for _, r := range p.requests {
		u, err := url.Parse(r.URL)
		if err == nil && u.Scheme == "blob" {
			// A blob: URL (a download of a returned file) carries the
			// origin that made it.
			u, err = url.Parse(u.Opaque)
		}
		if err != nil || u.Scheme+"://"+u.Host != p.origin {
			p.t.Errorf("the page sent %s %s, outside its origin %s", r.Method, r.URL, p.origin)
		}
	}
}

// checkProblems fails t for every error, warning or Content-Security-Policy
// report the page logged.
func (p *page) checkProblems() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, problem := range p.problems {
		p.t.Errorf("the page reported: %s", problem)
	}
}

// urls is every URL the tab requested, in order.
func (p *page) urls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, r := range p.requests {
		out = append(out, r.URL)
	}
	return out
}

// lastExecuteBody is the body of the tab's last POST /execute.
func (p *page) lastExecuteBody() map[string]json.RawMessage {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.requests) - 1; i >= 0; i-- {
		r := p.requests[i]
		if r.URL != p.origin+"/execute" || r.Method != "POST" {
			continue
		}
		var body []byte
		for _, e := range r.PostDataEntries {
			body = append(body, e.Bytes...)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			p.t.Fatalf("POST /execute body %q: %v", body, err)
		}
		return fields
	}
	p.t.Fatalf("the page sent no POST /execute")
	return nil
}

// lastExecutionID is the X-Execution-Id of the last /execute answer.
func (p *page) lastExecutionID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.executeIDs) == 0 {
		return ""
	}
	return p.executeIDs[len(p.executeIDs)-1]
}

// do runs the actions in the tab, failing t on an error.
func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("in the browser: %v", err)
	}
}

// poll waits until the JavaScript expression is true in the page.
func (p *page) poll(expression string) {
	p.t.Helper()
	p.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](expression, chromedp.WithPollingTimeout(actionTimeout))(ctx, t)
		return err
	}))
}

// evaluate returns the value of a JavaScript expression in the page.
func evaluate[T any](p *page, expression string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expression))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", expression, err)
	}
	return v
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// pickExample chooses an example from the menu, as a user's selection does,
// and returns the script the editor then holds.
func (p *page) pickExample(name string) string {
	p.t.Helper()
	return evaluate[string](p, `(() => {
		const menu = document.getElementById("examples");
		menu.value = `+js(name)+`;
		if (menu.value !== `+js(name)+`) return "(no such example)";
		menu.dispatchEvent(new Event("change", { bubbles: true }));
		return document.getElementById("code").value;
	})()`)
}

// setScript replaces the editor's text, as pasting a script does.
func (p *page) setScript(script string) {
	p.t.Helper()
	evaluate[chromedp.Void](p, `(() => {
		const code = document.getElementById("code");
		code.value = `+js(script)+`;
		code.dispatchEvent(new Event("input", { bubbles: true }));
	})()`)
}

// shown is what the output pane shows after a run.
type shown struct {
	Runs        int    `json:"runs"`
	State       string `json:"state"`
	Status      string `json:"status"` // the live status line
	HTTPStatus  string `json:"httpStatus"`
	Duration    string `json:"duration"`
	ExecutionID string `json:"executionId"`
	ErrorShown  bool   `json:"errorShown"`
	ErrorType   string `json:"errorType"`
	Error       string `json:"error"`
	Traceback   string `json:"traceback"`
	ResultShown bool   `json:"resultShown"`
	Result      string `json:"result"`
	StdoutShown bool   `json:"stdoutShown"`
	Stdout      string `json:"stdout"`
	Files       []struct {
		Text     string `json:"text"`
		Href     string `json:"href"`
		Download string `json:"download"`
	} `json:"files"`
	LineLinks []int `json:"lineLinks"` // the line numbers the error links to
}

// run presses Run and waits for the answer to be shown.
func (p *page) run() shown {
	p.t.Helper()
	return p.runWith(chromedp.Click(chromedp.ID("run")))
}

// runWith does action (a click, a key press) and waits for the run it starts
// to be shown.
func (p *page) runWith(action chromedp.Action[chromedp.Void]) shown {
	p.t.Helper()
	before := p.read().Runs
	p.do(action)
	p.poll(`Number(document.getElementById("output").dataset.runs) > ` + strconv.Itoa(before))
	return p.read()
}

// read returns what the output pane shows now.
func (p *page) read() shown {
	p.t.Helper()
	return evaluate[shown](p, `(() => {
		const $ = (id) => document.getElementById(id);
		const out = $("output");
		return {
			runs: Number(out.dataset.runs),
			state: out.dataset.state || "",
			status: $("status").textContent,
			httpStatus: $("meta").hidden ? "" : $("meta-status").textContent,
			duration: $("meta").hidden ? "" : $("meta-duration").textContent,
			executionId: $("meta").hidden ? "" : $("meta-id").textContent,
			errorShown: !$("error").hidden,
			errorType: $("error-type").textContent,
			error: $("error-message").textContent,
			traceback: $("traceback").hidden ? "" : $("traceback").textContent,
			resultShown: !$("result-block").hidden,
			result: $("result").textContent,
			stdoutShown: !$("stdout-block").hidden,
			stdout: $("stdout").textContent,
			files: $("files-block").hidden ? [] : Array.from($("files").querySelectorAll("li")).map((li) => {
				const a = li.querySelector("a");
				return { text: li.textContent, href: a ? a.href : "", download: a ? a.download : "" };
			}),
			lineLinks: Array.from($("error").querySelectorAll("button.line-link")).map((b) => Number(b.dataset.line)),
		};
	})()`)
}

// editorSelection is the editor's state after a line link was followed.
type editorSelection struct {
	Focused  bool     `json:"focused"`
	Selected string   `json:"selected"`
	Marked   []string `json:"marked"`
}

func (p *page) editorSelection() editorSelection {
	p.t.Helper()
	return evaluate[editorSelection](p, `(() => {
		const code = document.getElementById("code");
		return {
			focused: document.activeElement === code,
			selected: code.value.slice(code.selectionStart, code.selectionEnd),
			marked: Array.from(document.querySelectorAll("#gutter-lines .marked")).map((e) => e.textContent),
		};
	})()`)
}

// press types keys as a keyboard does: one keydown carrying the key's text,
// then a keyup. (chromedp.KeyEvent sends the text as a separate char event,
// which a page's preventDefault on keydown cannot cancel, unlike a real key
// press.) A Ctrl, Alt or Meta modifier types no text.
func press(keys string, modifiers ...chromedp.Modifier) chromedp.Action[chromedp.Void] {
	var mods int64
	for _, m := range modifiers {
		mods |= int64(m)
	}
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, r := range keys {
			events := kb.Encode(r)
			down, up := *events[0], *events[len(events)-1]
			if len(events) == 3 && mods&^int64(chromedp.ModifierShift) == 0 {
				down.Text, down.UnmodifiedText = events[1].Text, events[1].UnmodifiedText
			}
			down.Modifiers |= mods
			up.Modifiers |= mods
			for _, e := range []input.DispatchKeyEventParams{down, up} {
				if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, e); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
