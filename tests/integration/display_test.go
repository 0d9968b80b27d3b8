//go:build integration

package integration

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// displayed is the display list of an answer.
func displayed(t *testing.T, r testsupport.Response) []struct{ Type, Data string } {
	t.Helper()
	var body struct {
		Display []struct{ Type, Data string } `json:"display"`
	}
	if err := json.Unmarshal(r.Raw, &body); err != nil {
		t.Fatalf("answer %s: %v", testsupport.Clip(r.Raw), err)
	}
	return body.Display
}

// decodePNG decodes a display item's base64 PNG.
func decodePNG(t *testing.T, data string) image.Image {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		t.Fatalf("display data is not base64: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("display data is not a PNG: %v", err)
	}
	return img
}

// A figure left open comes back as a PNG of the size the script drew, with
// its pixels: a red background and a black line across it.
func TestAFigureLeftOpenComesBackAsAPNG(t *testing.T) {
	for _, mode := range []string{"cold", "fork"} {
		t.Run(mode, func(t *testing.T) {
			ts := testsupport.StartService(t, map[string]string{"PYEXEC_MODE": mode})
			r := ts.Execute(t, "import matplotlib.pyplot as plt\n\ndef main():\n"+
				"    fig = plt.figure(figsize=(2, 1), dpi=50, facecolor='red')\n"+
				"    ax = fig.add_axes([0, 0, 1, 1])\n    ax.set_axis_off()\n"+
				"    ax.plot([0, 1], [0.5, 0.5], color='black', linewidth=4)\n    ax.set_xlim(0, 1)\n    ax.set_ylim(0, 1)\n"+
				"    return 'drawn'\n")
			items := displayed(t, r)
			if r.Status != http.StatusOK || string(r.Result) != `"drawn"` || len(items) != 1 || items[0].Type != "image/png" {
				t.Fatalf("%s mode: a figure left open = %d %s, want 200 with one image/png", mode, r.Status, testsupport.Clip(r.Raw))
			}
			img := decodePNG(t, items[0].Data)
			if b := img.Bounds(); b.Dx() != 100 || b.Dy() != 50 {
				t.Errorf("%s mode: PNG is %dx%d, want 100x50 (2x1 inches at 50 DPI)", mode, b.Dx(), b.Dy())
			}
			if red, _, _, _ := img.At(5, 5).RGBA(); red>>8 != 255 {
				t.Errorf("%s mode: corner pixel = %v, want the red background", mode, img.At(5, 5))
			}
			if red, g, b, _ := img.At(50, 25).RGBA(); red>>8 > 40 || g>>8 > 40 || b>>8 > 40 {
				t.Errorf("%s mode: centre pixel = %v, want the black line", mode, img.At(50, 25))
			}
		})
	}
}

// Every plt.show() and display() is an item, in the order produced; a
// DataFrame is an escaped HTML table and its text; the value of main() is
// unchanged; a script that displays nothing answers without "display".
func TestDisplayKeepsTheOrderAndEscapesTables(t *testing.T) {
	ts := testsupport.StartService(t, nil)
	r := ts.Execute(t, "import pandas as pd\nimport matplotlib.pyplot as plt\n\ndef main():\n"+
		"    display('first')\n    plt.plot([1, 2, 3])\n    plt.show()\n"+
		"    display(pd.DataFrame({'name': ['<script>alert(1)</script>'], 'n': [1]}))\n"+
		"    plt.plot([3, 2, 1])\n    plt.show()\n    return len(plt.get_fignums())\n")
	items := displayed(t, r)
	var types []string
	for _, it := range items {
		types = append(types, it.Type)
	}
	want := "text/plain image/png text/html text/plain image/png"
	if r.Status != http.StatusOK || string(r.Result) != "0" || strings.Join(types, " ") != want {
		t.Fatalf("display order = %d %v (%s), want 200 result 0 with %s", r.Status, types, testsupport.Clip(r.Raw), want)
	}
	if items[0].Data != "'first'" {
		t.Errorf("display('first') = %q, want its repr", items[0].Data)
	}
	html := items[2].Data
	if !strings.Contains(html, "&lt;script&gt;alert(1)&lt;/script&gt;") || strings.Contains(html, "<script>") || !strings.HasPrefix(html, "<table") {
		t.Errorf("DataFrame HTML = %q, want a table with the cell escaped", html)
	}
	plain := ts.Execute(t, "def main():\n    return 1\n")
	if strings.Contains(string(plain.Raw), "display") {
		t.Errorf("a script that displays nothing = %s, want no display field", plain.Raw)
	}
}

// The display caps: the count, and the bytes shared with the output files,
// each named by the output_limit it gives.
func TestDisplayCapsAreOutputLimits(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_MAX_OUTPUT_FILES_BYTES": "1048576"})
	for _, tt := range []struct {
		name, script, message string
	}{
		{"too many items", "def main():\n    for i in range(51):\n        display(i)\n", "Output limit exceeded (more than 50 display items)"},
		{"display alone over the bytes", "def main():\n    display('x' * 40000)\n    for i in range(30):\n        display('y' * 40000)\n", "Output limit exceeded (display and output files over 1 MB)"},
		{"display and files over the bytes", "import os\n\ndef main():\n    display('x' * 60000)\n    os.makedirs('outputs', exist_ok=True)\n" +
			"    with open('outputs/big.bin', 'wb') as f:\n        f.write(b'0' * 1000000)\n", "Output limit exceeded (display and output files over 1 MB)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.Execute(t, tt.script)
			checkFailure(t, tt.name, r, failure{400, "output_limit", tt.message})
		})
	}
}

// chartScript draws a 2x1-inch figure at 50 DPI and leaves it open.
const chartScript = "import matplotlib.pyplot as plt\n\ndef main():\n" +
	"    plt.figure(figsize=(2, 1), dpi=50)\n    plt.plot([1, 3, 2])\n    display('drawn')\n    return 1\n"

// An agent's run_python gets the chart as an image it can show, and the
// texts displayed as text blocks; the structured content is the answer
// /execute gives, display included.
func TestMCPReturnsTheChartAsAnImage(t *testing.T) {
	ts := testsupport.StartService(t, nil)
	cs := testsupport.ConnectMCP(t, ts.URL)
	res := testsupport.CallRunPython(t, cs, map[string]string{"script": chartScript})
	if res.IsError || len(res.Content) != 3 {
		t.Fatalf("run_python(chart) = isError %v with %d content blocks, want a success with the JSON, the text and the image", res.IsError, len(res.Content))
	}
	first, ok := res.Content[0].(*mcp.TextContent)
	if !ok || strings.Contains(first.Text, "display") || !strings.Contains(first.Text, `"result":1`) {
		t.Errorf("run_python(chart) first block = %#v, want the answer's JSON without its display", res.Content[0])
	}
	if text, ok := res.Content[1].(*mcp.TextContent); !ok || text.Text != "'drawn'" {
		t.Errorf("run_python(chart) second block = %#v, want the text displayed", res.Content[1])
	}
	img, ok := res.Content[2].(*mcp.ImageContent)
	if !ok || img.MIMEType != "image/png" {
		t.Fatalf("run_python(chart) third block = %#v, want an image/png", res.Content[2])
	}
	decoded, err := png.Decode(bytes.NewReader(img.Data))
	if err != nil {
		t.Fatalf("run_python(chart) image: %v", err)
	}
	if b := decoded.Bounds(); b.Dx() != 100 || b.Dy() != 50 {
		t.Errorf("run_python(chart) image is %dx%d, want 100x50", b.Dx(), b.Dy())
	}
	structured, _ := json.Marshal(res.StructuredContent)
	var success api.Success
	if err := json.Unmarshal(structured, &success); err != nil || len(success.Display) != 2 ||
		success.Display[0] != (api.DisplayItem{Type: "text/plain", Data: "'drawn'"}) ||
		success.Display[1].Type != "image/png" || !bytes.Equal(mustBase64(t, success.Display[1].Data), img.Data) {
		t.Errorf("run_python(chart) structured content = %s, want the display whole", testsupport.Clip(structured))
	}
}

// ExecuteEvent publishes the display with the outcome.
func TestExecuteEventPublishesTheDisplay(t *testing.T) {
	srv, ps := startPublishingEventService(t)
	send := testsupport.NewSender(t, srv.URL+"/")
	if status := send.SendOnce(t, testsupport.BinaryMode, testsupport.PublishedEvent("chart-1", testsupport.ScriptData(chartScript, "chart-1"))); status != 200 {
		t.Fatalf("status = %d, want 200", status)
	}
	found := publishedOutcome(t, ps, "chart-1")
	if found.Status != "ok" || len(found.Display) != 2 || found.Display[0] != (api.DisplayItem{Type: "text/plain", Data: "'drawn'"}) || found.Display[1].Type != "image/png" {
		t.Fatalf("published outcome = %+v, want ok with the text and the image displayed", found)
	}
	if b := decodePNG(t, found.Display[1].Data).Bounds(); b.Dx() != 100 || b.Dy() != 50 {
		t.Errorf("published image is %dx%d, want 100x50", b.Dx(), b.Dy())
	}
}

func mustBase64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
