package jail

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// envOf is an environment of m's variables alone.
func envOf(m map[string]string) func(string) string {
	return func(name string) string { return m[name] }
}

const okScript = "def main(data=None):\n    return 1\n"

func TestTheJobCarriesTheRequestAsTheHarnessReadsIt(t *testing.T) {
	cfg, err := ConfigFromEnv(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	decode := func(t *testing.T, data []byte) map[string]any {
		t.Helper()
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.UseNumber()
		var fields map[string]any
		if err := dec.Decode(&fields); err != nil {
			t.Fatalf("the job is not JSON: %v", err)
		}
		return fields
	}
	t.Run("a script alone is the script and the output caps", func(t *testing.T) {
		data, err := newJob(Request{Script: "def main():\n    return '<&>'\n"}, cfg, false, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := decode(t, data)
		want := map[string]any{"script": "def main():\n    return '<&>'\n", "outputs": map[string]any{"max_files": json.Number("100"), "max_bytes": json.Number("8388608"), "max_display": json.Number("50")}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("job = %v, want %v", got, want)
		}
	})
	t.Run("every field", func(t *testing.T) {
		req := Request{
			Script: okScript, Input: json.RawMessage(`{"big": 123456789012345678901234567890, "x": [1.5, null]}`), Stdin: "a\nb",
			Files: []File{{Path: "data/in.bin", Content: []byte{0, 0xff}}, {Path: "empty", Content: nil}},
		}
		data, err := newJob(req, cfg, true, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		got := decode(t, data)
		if fmt.Sprint(got["input"]) != "map[big:123456789012345678901234567890 x:[1.5 <nil>]]" {
			t.Errorf("input = %v, want the numbers exactly as sent", got["input"])
		}
		files := []any{map[string]any{"path": "data/in.bin", "content": "AP8="}, map[string]any{"path": "empty", "content": nil}}
		if got["stdin"] != "a\nb" || !reflect.DeepEqual(got["files"], files) || got["prepare_outputs"] != true || got["rlimit_as"] != json.Number("67108864") {
			t.Errorf("job = %v, want stdin, base64 files, prepare_outputs and rlimit_as", got)
		}
	})
	t.Run("a null input is sent, an absent one is not", func(t *testing.T) {
		data, err := newJob(Request{Script: okScript, Input: json.RawMessage("null")}, cfg, true, 0)
		if err != nil {
			t.Fatal(err)
		}
		if input, ok := decode(t, data)["input"]; !ok || input != nil {
			t.Errorf("job = %s, want \"input\": null", data)
		}
	})
}

func TestRequestsThatAskForMoreThanAScriptGetAnOutputsDirectory(t *testing.T) {
	for _, tt := range []struct {
		req  Request
		want bool
	}{
		{Request{Script: okScript}, false},
		{Request{Script: okScript, Input: json.RawMessage("null")}, true},
		{Request{Script: okScript, Stdin: "x"}, true},
		{Request{Script: okScript, Files: []File{{Path: "a"}}}, true},
		{Request{Script: okScript, Timeout: time.Second}, true},
		{Request{Script: okScript, MemoryBytes: 64 << 20}, true},
		{Request{Script: okScript, Extended: true}, true},
	} {
		if got := tt.req.extended(); got != tt.want {
			t.Errorf("%+v.extended() = %v, want %v", tt.req, got, tt.want)
		}
	}
}
