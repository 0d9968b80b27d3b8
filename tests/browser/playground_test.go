//go:build integration

package browser

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/pyexec/pyexec/internal/testenv"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "also write the screenshots into testdata/screenshots/ (README shows them)")

var executionID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Each README example, picked from the menu and run, shows the answer
// README documents for it.
func TestEachREADMEExampleRunsAndShowsItsAnswer(t *testing.T) {
	p := openPlayground(t, sharedService(t))
	tests := []struct {
		file       string
		httpStatus string
		result     string // as shown: indented, numbers as the service wrote them
		stdout     string
		errorType  string
		error      string
	}{
		{file: "hello.py", httpStatus: "200 OK", result: "{\n  \"answer\": 4\n}", stdout: "Calculating..."},
		{file: "pandas_sum.py", httpStatus: "200 OK", result: "{\n  \"sum_a\": 6,\n  \"sum_b\": 15\n}"},
		{file: "numpy_stats.py", httpStatus: "200 OK", result: "{\n  \"mean\": 3.0,\n  \"std\": 1.4142135623730951\n}"},
		{file: "os_info.py", httpStatus: "200 OK"}, // cpu_count depends on the machine: checked below
		{file: "no_main.py", httpStatus: "400 Bad Request", errorType: "no_main", error: "Script must contain a 'def main()' function"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p := p.forTest(t)
			want, err := os.ReadFile(filepath.Join("..", "..", "examples", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.pickExample(tt.file); got != string(want) {
				t.Fatalf("the editor holds %q after picking %s, want examples/%s:\n%s", got, tt.file, tt.file, want)
			}
			got := p.run()
			if body := p.lastExecuteBody(); len(body) != 1 || string(body["script"]) != js(string(want)) {
				t.Errorf("POST /execute sent %v, want only the script", keys(body))
			}
			if got.HTTPStatus != tt.httpStatus || !executionID.MatchString(got.ExecutionID) ||
				got.ExecutionID != p.lastExecutionID() || !strings.HasSuffix(got.Duration, " ms") {
				t.Errorf("shown status %q, execution ID %q (answer's %q), duration %q; want %s, the answer's ID, a duration in ms",
					got.HTTPStatus, got.ExecutionID, p.lastExecutionID(), got.Duration, tt.httpStatus)
			}
			if tt.errorType != "" {
				if !got.ErrorShown || got.ErrorType != tt.errorType || got.Error != tt.error || got.ResultShown || got.State != "error" {
					t.Errorf("shown error %v %q %q (result shown %v), want %s %q and no result", got.ErrorShown, got.ErrorType, got.Error, got.ResultShown, tt.errorType, tt.error)
				}
				if !strings.Contains(got.Status, tt.errorType) {
					t.Errorf("status line %q does not name the error type %s", got.Status, tt.errorType)
				}
				return
			}
			if got.ErrorShown || !got.ResultShown || !got.StdoutShown || got.Stdout != tt.stdout || got.State != "ok" {
				t.Errorf("shown error %v, result %v, stdout %v %q; want a result and stdout %q", got.ErrorShown, got.ResultShown, got.StdoutShown, got.Stdout, tt.stdout)
			}
			if tt.result != "" && got.Result != tt.result {
				t.Errorf("shown result:\n%s\nwant:\n%s", got.Result, tt.result)
			}
			if tt.file == "os_info.py" {
				var info struct {
					Platform string `json:"platform"`
					CPUCount int    `json:"cpu_count"`
				}
				if err := json.Unmarshal([]byte(got.Result), &info); err != nil || info.Platform != "posix" || info.CPUCount < 1 ||
					!strings.Contains(got.Result, "\n  \"platform\": \"posix\"") {
					t.Errorf("shown result:\n%s\nwant platform posix and a positive cpu_count, indented", got.Result)
				}
			}
		})
	}
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// A syntax error shows its type and a link that selects the line in the
// editor.
func TestSyntaxErrorLinksToItsLine(t *testing.T) {
	p := openPlayground(t, sharedService(t))
	p.setScript("def main():\n    total = 0\n    for i in range(3)\n        total += i\n    return total\n")
	got := p.run()
	if !got.ErrorShown || got.ErrorType != "syntax_error" || !strings.HasPrefix(got.Error, "SyntaxError: ") ||
		!strings.HasSuffix(got.Error, "(line 3)") || got.HTTPStatus != "400 Bad Request" {
		t.Fatalf("shown %s %q %q, want 400 syntax_error \"SyntaxError: ... (line 3)\"", got.HTTPStatus, got.ErrorType, got.Error)
	}
	if !slices.Equal(got.LineLinks, []int{3}) {
		t.Fatalf("line links %v, want [3]", got.LineLinks)
	}
	p.do(chromedp.Click(chromedp.CSS(`#error-message button.line-link`)))
	sel := p.editorSelection()
	if !sel.Focused || sel.Selected != "    for i in range(3)" || !slices.Equal(sel.Marked, []string{"3"}) {
		t.Errorf("after following the link: editor focused %v, selection %q, marked lines %v; want focus, line 3 selected and marked", sel.Focused, sel.Selected, sel.Marked)
	}
}

// An exception shows its traceback with the script's frames linked to their
// lines; text that looks like HTML stays text.
func TestExceptionTracebackLinksToEachFrame(t *testing.T) {
	p := openPlayground(t, sharedService(t))
	p.setScript("def ratio(x):\n    return 10 / x\n\n\ndef main():\n    print('<img src=x id=injected>')\n    return ratio(0)\n")
	got := p.run()
	if got.ErrorType != "exception" || got.Error != "ZeroDivisionError: division by zero" || got.Stdout != "<img src=x id=injected>" {
		t.Fatalf("shown %q %q, stdout %q; want exception ZeroDivisionError: division by zero and the printed text", got.ErrorType, got.Error, got.Stdout)
	}
	if !strings.HasPrefix(got.Traceback, "Traceback (most recent call last):") || !strings.Contains(got.Traceback, `File "<script>", line 7, in main`) {
		t.Errorf("shown traceback:\n%s\nwant the script's frames", got.Traceback)
	}
	if !slices.Equal(got.LineLinks, []int{7, 2}) {
		t.Fatalf("line links %v, want [7 2] (main, then ratio)", got.LineLinks)
	}
	if n := evaluate[int](p, `document.querySelectorAll("#injected").length`); n != 0 {
		t.Errorf("printed HTML became %d element(s) in the page", n)
	}
	p.do(chromedp.Click(chromedp.CSS(`#traceback button.line-link[data-line="2"]`)))
	if sel := p.editorSelection(); !sel.Focused || sel.Selected != "    return 10 / x" || !slices.Equal(sel.Marked, []string{"2"}) {
		t.Errorf("after following line 2: editor focused %v, selection %q, marked %v", sel.Focused, sel.Selected, sel.Marked)
	}
	// Keyboard users follow a link with Enter.
	p.do(chromedp.Focus(chromedp.CSS(`#traceback button.line-link[data-line="7"]`)), press(kb.Enter))
	if sel := p.editorSelection(); !sel.Focused || sel.Selected != "    return ratio(0)" {
		t.Errorf("after Enter on line 7: editor focused %v, selection %q", sel.Focused, sel.Selected)
	}
}

// A script that runs past the service's wall-clock limit shows timeout.
func TestTimeoutShowsItsType(t *testing.T) {
	p := openPlayground(t, serviceWith(t, map[string]string{"PYEXEC_TIMEOUT_SECONDS": "2"}))
	p.setScript("import time\n\n\ndef main():\n    time.sleep(30)\n")
	start := time.Now()
	got := p.run()
	if got.ErrorType != "timeout" || got.Error != "Execution timed out after 2 seconds" || got.HTTPStatus != "400 Bad Request" {
		t.Errorf("shown %s %q %q, want 400 timeout \"Execution timed out after 2 seconds\"", got.HTTPStatus, got.ErrorType, got.Error)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the timeout took %v to show", d)
	}
}

// The editor indents as Python needs, runs on Ctrl+Enter and never traps
// the keyboard.
func TestEditorWorksFromTheKeyboard(t *testing.T) {
	p := openPlayground(t, sharedService(t))
	value := func() string { return evaluate[string](p, `document.getElementById("code").value`) }

	// Focus order: skip link, examples menu, Run, editor.
	p.do(chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`), press(kb.Tab))
	var order []string
	for range 4 {
		order = append(order, evaluate[string](p, `document.activeElement.id`))
		p.do(press(kb.Tab))
	}
	if want := []string{"skip", "examples", "run", "code"}; !slices.Equal(order, want) {
		t.Errorf("focus order %v, want %v", order, want)
	}

	p.setScript("")
	p.do(chromedp.Focus(chromedp.ID("code")), press("def main():\n"))
	if got := value(); got != "def main():\n    " {
		t.Fatalf("after typing def main(): and Enter, the editor holds %q, want the next line indented", got)
	}
	p.do(press("x = 2\nif x:\n"))
	if got := value(); got != "def main():\n    x = 2\n    if x:\n        " {
		t.Fatalf("the editor holds %q, want indentation kept, and added after the colon", got)
	}
	p.do(press(kb.Tab, chromedp.ModifierShift))
	if got := value(); got != "def main():\n    x = 2\n    if x:\n    " {
		t.Fatalf("after Shift+Tab the editor holds %q, want one level less", got)
	}
	p.do(press(kb.Tab))
	if got := value(); got != "def main():\n    x = 2\n    if x:\n        " {
		t.Fatalf("after Tab the editor holds %q, want one level more", got)
	}
	p.do(press("x = x * 21\nreturn {\"n\": x}"))
	got := p.runWith(press(kb.Enter, chromedp.ModifierCtrl))
	if got.Result != "{\n  \"n\": 42\n}" {
		t.Errorf("Ctrl+Enter showed result %q (error %q %q), want {\"n\": 42}", got.Result, got.ErrorType, got.Error)
	}
	if want := "def main():\n    x = 2\n    if x:\n        x = x * 21\n        return {\"n\": x}"; value() != want {
		t.Errorf("the editor holds %q, want %q (Ctrl+Enter must not type a newline)", value(), want)
	}

	// Selected lines indent and dedent together.
	p.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("code").setSelectionRange(14, 30)`), press(kb.Tab))
	if want := "def main():\n        x = 2\n        if x:\n        x = x * 21\n        return {\"n\": x}"; value() != want {
		t.Errorf("after Tab on lines 2-3 the editor holds %q, want %q", value(), want)
	}
	p.do(press(kb.Tab, chromedp.ModifierShift))
	if want := "def main():\n    x = 2\n    if x:\n        x = x * 21\n        return {\"n\": x}"; value() != want {
		t.Errorf("after Shift+Tab on lines 2-3 the editor holds %q, want %q", value(), want)
	}

	// Esc, then Tab, leaves the editor.
	p.do(press(kb.Escape), press(kb.Tab))
	if id := evaluate[string](p, `document.activeElement === document.getElementById("code") ? "code" : document.activeElement.tagName`); id == "code" {
		t.Errorf("Esc then Tab left the focus in the editor")
	}

	// The menu shows that the edited script is no example, and works from
	// the keyboard too.
	if menu := evaluate[string](p, `document.getElementById("examples").value`); menu != "" {
		t.Errorf("after editing, the examples menu shows %q, want no example chosen", menu)
	}
	p.do(chromedp.Focus(chromedp.ID("examples")), press(kb.ArrowDown))
	if menu := evaluate[string](p, `document.getElementById("examples").value`); menu != "hello.py" || !strings.Contains(value(), "Calculating...") {
		t.Errorf("ArrowDown in the menu chose %q and loaded %q, want the first example", menu, value())
	}
	p.do(press(kb.ArrowDown))
	if menu := evaluate[string](p, `document.getElementById("examples").value`); menu != "pandas_sum.py" || !strings.Contains(value(), "import pandas as pd") {
		t.Errorf("a second ArrowDown chose %q and loaded %q, want the pandas example", menu, value())
	}
}

// An input box that does not hold JSON stops the run with a message, and
// nothing is sent.
func TestInvalidInputIsRefusedBeforeSending(t *testing.T) {
	p := openPlayground(t, sharedService(t))
	p.do(chromedp.Click(chromedp.CSS("#request-extras summary")),
		chromedp.SendKeys(chromedp.ID("input"), `{"min": 2,}`))
	sent := len(p.urls())
	p.do(chromedp.Click(chromedp.ID("run")))
	p.poll(`document.getElementById("input-message").textContent !== ""`)
	state := evaluate[struct {
		Message string `json:"message"`
		Invalid string `json:"invalid"`
		Focus   string `json:"focus"`
		Status  string `json:"status"`
	}](p, `({
		message: document.getElementById("input-message").textContent,
		invalid: document.getElementById("input").getAttribute("aria-invalid"),
		focus: document.activeElement.id,
		status: document.getElementById("status").textContent,
	})`)
	if !strings.HasPrefix(state.Message, "Input is not valid JSON") || state.Invalid != "true" || state.Focus != "input" || !strings.Contains(state.Status, "Not run") {
		t.Errorf("after Run with bad input: message %q, aria-invalid %q, focus on %q, status %q; want a message, the box marked invalid and focused, not run", state.Message, state.Invalid, state.Focus, state.Status)
	}
	if n := len(p.urls()); n != sent {
		t.Errorf("the page sent %d request(s) with invalid input: %v", n-sent, p.urls()[sent:])
	}
}

// The input example fills the input box and sends its text as the request's
// input, exactly as written.
func TestInputExampleSendsItsInput(t *testing.T) {
	svc := sharedService(t)
	p := openPlayground(t, svc)
	p.pickExample("input_totals.py")
	input := evaluate[string](p, `document.getElementById("input").value`)
	if !json.Valid([]byte(input)) || input == "" {
		t.Fatalf("the input box holds %q after picking the input example, want JSON", input)
	}
	got := p.run()
	body := p.lastExecuteBody()
	if !testenv.SameJSON(body["input"], []byte(input)) || len(body) != 2 {
		t.Errorf("POST /execute sent %v with input %s, want the script and input %s", keys(body), body["input"], input)
	}
	t.Run("the answer", func(t *testing.T) {
		if want := "{\n  \"greeting\": \"Hello, pyexec!\",\n  \"count\": 5,\n  \"total\": 14\n}"; got.Result != want {
			t.Errorf("shown result %q (error %q %q), want %q", got.Result, got.ErrorType, got.Error, want)
		}
	})
}

// Uploaded files and stdin are sent as the request's files (base64, at the
// path shown) and stdin, and the script reads them.
func TestUploadsAndStdinAreSent(t *testing.T) {
	svc := sharedService(t)
	p := openPlayground(t, svc)
	upload := filepath.Join(t.TempDir(), "in.csv")
	content := "x\n1\n3\n\xff\n" // not UTF-8: files travel as bytes
	if err := os.WriteFile(upload, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	p.do(chromedp.Click(chromedp.CSS("#request-extras summary")),
		chromedp.SetUploadFiles(chromedp.ID("upload"), []string{upload}))
	p.poll(`document.querySelectorAll("#upload-list input").length === 1`)
	if path := evaluate[string](p, `document.querySelector("#upload-list input").value`); path != "data/in.csv" {
		t.Errorf("the uploaded file's path is %q, want data/in.csv", path)
	}
	p.do(chromedp.SendKeys(chromedp.ID("stdin"), "typed line"))
	p.setScript("import sys\n\n\ndef main():\n    data = open('data/in.csv', 'rb').read()\n    return {'bytes': len(data), 'stdin': sys.stdin.read()}\n")
	got := p.run()
	body := p.lastExecuteBody()
	var files []map[string]string
	if err := json.Unmarshal(body["files"], &files); err != nil || len(files) != 1 ||
		files[0]["path"] != "data/in.csv" || files[0]["encoding"] != "base64" || files[0]["content"] != base64.StdEncoding.EncodeToString([]byte(content)) {
		t.Errorf("POST /execute sent files %s, want data/in.csv with the file's bytes in base64", body["files"])
	}
	if string(body["stdin"]) != `"typed line"` {
		t.Errorf("POST /execute sent stdin %s, want \"typed line\"", body["stdin"])
	}
	t.Run("the answer", func(t *testing.T) {
		if want := "{\n  \"bytes\": 8,\n  \"stdin\": \"typed line\"\n}"; got.Result != want {
			t.Errorf("shown result %q (error %q %q), want %q", got.Result, got.ErrorType, got.Error, want)
		}
	})
}

// The output file example's CSV comes back as a download link, and the
// download holds the file.
func TestOutputFileExampleOffersADownload(t *testing.T) {
	svc := sharedService(t)
	p := openPlayground(t, svc)
	p.pickExample("output_csv.py")
	got := p.run()
	if len(got.Files) != 1 || got.Files[0].Download != "result.csv" || !strings.HasPrefix(got.Files[0].Href, "blob:"+svc.URL+"/") ||
		!strings.HasPrefix(got.Files[0].Text, "outputs/result.csv") {
		t.Fatalf("shown files %+v (error %q %q), want one download link for outputs/result.csv", got.Files, got.ErrorType, got.Error)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir,
	}); err != nil {
		t.Fatal(err)
	}
	p.do(chromedp.Click(chromedp.CSS("#files a")))
	file := filepath.Join(dir, "result.csv")
	want := "n,square\n1,1\n2,4\n3,9\n4,16\n5,25\n"
	for deadline := time.Now().Add(actionTimeout); ; time.Sleep(100 * time.Millisecond) {
		b, err := os.ReadFile(file)
		if err == nil && string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("downloaded result.csv = %q (%v), want %q", b, err, want)
		}
	}
}

// The page loads its own files and talks to /execute, and nothing else.
func TestPageLoadsNothingFromAnotherOrigin(t *testing.T) {
	svc := sharedService(t)
	p := openPlayground(t, svc)
	p.pickExample("pandas_sum.py")
	p.run()
	var paths []string
	for _, u := range p.urls() {
		paths = append(paths, strings.TrimPrefix(u, svc.URL))
	}
	for _, want := range []string{"/", "/playground/app.css", "/playground/app.js", "/playground/examples.json", "/execute"} {
		if !slices.Contains(paths, want) {
			t.Errorf("the page did not request %s; it requested %v", want, paths)
		}
	}
	// openPlayground's cleanup checks every request's origin.
}

// Screenshots at desktop and phone widths, and a layout that fits a phone
// without sideways scrolling.
func TestScreenshotsAtDesktopAndPhoneWidths(t *testing.T) {
	p := openPlayground(t, sharedService(t))
	p.pickExample("pandas_sum.py")
	p.run()
	sizes := []struct {
		name          string
		width, height int64
		mobile        bool
	}{
		{"desktop", 1280, 900, false},
		{"phone", 375, 812, true},
	}
	for _, size := range sizes {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
		if size.mobile {
			opts = append(opts, chromedp.EmulateMobile)
		}
		p.do(chromedp.EmulateViewport(size.width, size.height, opts...))
		p.checkFits(size.width)
		ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(shot))
		if err != nil {
			t.Fatalf("%s screenshot: %v", size.name, err)
		}
		if w := img.Bounds().Dx(); w != int(size.width) {
			t.Errorf("%s screenshot is %dpx wide, want %d", size.name, w, size.width)
		}
		save(t, filepath.Join(t.ArtifactDir(), size.name+".png"), shot)
		if *updateScreenshots {
			save(t, filepath.Join("testdata", "screenshots", size.name+".png"), shot)
		}
	}
	// The narrowest phones in use.
	p.do(chromedp.EmulateViewport(360, 740, chromedp.EmulateScale(1), chromedp.EmulateMobile))
	p.checkFits(360)
}

// checkFits fails the test if the page is wider than the viewport, or the
// controls a user needs are out of view.
func (p *page) checkFits(width int64) {
	p.t.Helper()
	layout := evaluate[struct {
		ScrollWidth int     `json:"scrollWidth"`
		RunRight    float64 `json:"runRight"`
		EditorWidth float64 `json:"editorWidth"`
		ResultRight float64 `json:"resultRight"`
	}](p, `({
		scrollWidth: document.documentElement.scrollWidth,
		runRight: document.getElementById("run").getBoundingClientRect().right,
		editorWidth: document.getElementById("code").getBoundingClientRect().width,
		resultRight: document.getElementById("result").getBoundingClientRect().right,
	})`)
	if layout.ScrollWidth > int(width) || layout.RunRight > float64(width) || layout.ResultRight > float64(width) || layout.EditorWidth < 0.4*float64(width) {
		p.t.Errorf("at %dpx: page %dpx wide, Run ends at %.0f, result ends at %.0f, editor %.0fpx wide; want everything within the width and a wide editor",
			width, layout.ScrollWidth, layout.RunRight, layout.ResultRight, layout.EditorWidth)
	}
}

func save(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// API clients see no change: / still answers them the JSON 404, and only a
// browser's request for HTML gets the page.
func TestAPIClientsStillGetTheJSON404(t *testing.T) {
	svc := sharedService(t)
	const notFound = `{"error":"Not found: use POST /execute or GET /healthz","error_type":"not_found","stdout":""}` + "\n"
	tests := []struct {
		name, method, path, accept string
		wantStatus                 int
		wantType                   string
	}{
		{"JSON asked for", "GET", "/", "application/json", 404, "application/json"},
		{"anything asked for", "GET", "/", "*/*", 404, "application/json"},
		{"nothing asked for", "GET", "/", "", 404, "application/json"},
		{"a POST from a browser", "POST", "/", "text/html", 404, "application/json"},
		{"a browser", "GET", "/", "text/html,application/xhtml+xml,*/*;q=0.8", 200, "text/html; charset=utf-8"},
		{"the page's script", "GET", "/playground/app.js", "*/*", 200, "text/javascript; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, svc.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.wantStatus || res.Header.Get("Content-Type") != tt.wantType {
				t.Fatalf("%s %s (Accept %q) = %d %s, want %d %s", tt.method, tt.path, tt.accept, res.StatusCode, res.Header.Get("Content-Type"), tt.wantStatus, tt.wantType)
			}
			if res.Header.Get("X-Execution-Id") == "" {
				t.Errorf("%s %s has no X-Execution-Id", tt.method, tt.path)
			}
			if tt.wantStatus == 404 {
				if string(body) != notFound || res.Header.Get("Content-Security-Policy") != "" {
					t.Errorf("%s %s (Accept %q) body %q, want the JSON 404 %q as before", tt.method, tt.path, tt.accept, body, notFound)
				}
				return
			}
			if !strings.HasPrefix(res.Header.Get("Content-Security-Policy"), "default-src 'self'") {
				t.Errorf("%s %s Content-Security-Policy = %q", tt.method, tt.path, res.Header.Get("Content-Security-Policy"))
			}
		})
	}
}

// A chart and a DataFrame table come back as the page shows them: the PNG
// as an image that loaded, the table rebuilt from its cells' text, so a
// cell holding a script shows as text and never runs. A screenshot of it
// sits beside the others.
func TestDisplayShowsTheChartAndASafeTable(t *testing.T) {
	svc := sharedService(t)
	p := openPlayground(t, svc)
	p.setScript("import pandas as pd\n\n\ndef main():\n" +
		"    df = pd.DataFrame({'month': ['Jan', 'Feb', 'Mar', 'Apr'], 'sales': [3, 7, 5, 9]})\n" +
		"    df.plot(x='month', y='sales', figsize=(4, 2.5), title='Sales')\n" +
		"    display(pd.DataFrame({'note': ['<script>document.title = \"ran\"</script>', '<img src=x onerror=\"document.title=1\">']}))\n" +
		"    return int(df['sales'].sum())\n")
	got := p.run()
	if got.Result != "24" {
		t.Fatalf("shown result %q (error %q %q), want 24", got.Result, got.ErrorType, got.Error)
	}
	p.poll(`document.querySelector("#display img") !== null && document.querySelector("#display img").complete`)
	view := evaluate[struct {
		Width    int      `json:"width"`
		Height   int      `json:"height"`
		Cells    []string `json:"cells"`
		Elements int      `json:"elements"`
		Title    string   `json:"title"`
	}](p, `(() => {
		const img = document.querySelector("#display img");
		const table = document.querySelector("#display table");
		return {
			width: img.naturalWidth, height: img.naturalHeight,
			cells: Array.from(table.querySelectorAll("td")).map((c) => c.textContent),
			elements: table.querySelectorAll("script, img, [onerror], [style]").length,
			title: document.title,
		};
	})()`)
	if view.Width != 400 || view.Height != 250 {
		t.Errorf("shown chart is %dx%d, want the 400x250 PNG the script drew", view.Width, view.Height)
	}
	want := []string{`<script>document.title = "ran"</script>`, `<img src=x onerror="document.title=1">`}
	if !slices.Equal(view.Cells, want) || view.Elements != 0 {
		t.Errorf("shown table cells %q with %d script, img or handler elements, want %q as text only", view.Cells, view.Elements, want)
	}
	if view.Title == "ran" || view.Title == "1" {
		t.Errorf("document.title = %q: a cell's script ran", view.Title)
	}
	p.do(chromedp.EmulateViewport(1280, 900, chromedp.EmulateScale(1)))
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	save(t, filepath.Join(t.ArtifactDir(), "chart.png"), shot)
	if *updateScreenshots {
		save(t, filepath.Join("testdata", "screenshots", "chart.png"), shot)
	}
}
