package server

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor"
)

// testDecoder decodes with the service's default caps.
var testDecoder = decoder{
	maxBytes: DefaultMaxRequestBytes,
	caps:     executor.Limits{Timeout: 30 * time.Second, MemoryBytes: 512 << 20, MaxInputFiles: 100, MaxInputFilesBytes: 8 << 20},
}

func TestTheDecoderReadsEveryFieldExactly(t *testing.T) {
	body := `{"script": "def main(d):\n    return d\n",
	  "input": {"big": 123456789012345678901234567890, "f": 0.1000000000000000055511151231257827, "l": [1, null]},
	  "stdin": "first\nsecond",
	  "files": [{"path": "data/in.csv", "content": "x\n1\n"},
	            {"path": "bin/blob", "content": "AP8K\n/w==", "encoding": "base64"},
	            {"path": "explicit.txt", "content": "é", "encoding": "utf-8"},
	            {"path": "null-encoding.txt", "content": "n", "encoding": null}],
	  "limits": {"timeout_seconds": 2.5, "memory_mb": 64},
	  "unknown": "ignored"}`
	req, err := testDecoder.decode([]byte(body), requestBody)
	if err != nil {
		t.Fatalf("decode = %v, want the request", err)
	}
	want := request{Request: executor.Request{
		Script: "def main(d):\n    return d\n",
		Input:  json.RawMessage(`{"big": 123456789012345678901234567890, "f": 0.1000000000000000055511151231257827, "l": [1, null]}`),
		Stdin:  "first\nsecond",
		Files: []executor.File{
			{Path: "data/in.csv", Content: []byte("x\n1\n")},
			{Path: "bin/blob", Content: []byte{0, 0xff, '\n', 0xff}},
			{Path: "explicit.txt", Content: []byte("é")},
			{Path: "null-encoding.txt", Content: []byte("n")},
		},
		Timeout:     2500 * time.Millisecond,
		MemoryBytes: 64 << 20,
		Extended:    true,
	}}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("decode =\n%+v\nwant\n%+v", req, want)
	}
	got := req.executorRequest("id-1")
	if got.ID != "id-1" || got.Script != want.Script || string(got.Input) != string(want.Input) || got.Stdin != want.Stdin ||
		!reflect.DeepEqual(got.Files, want.Files) || got.Timeout != want.Timeout || got.MemoryBytes != want.MemoryBytes {
		t.Errorf("executorRequest = %+v, want every field of %+v", got, want)
	}
}

func TestAbsentAndNullFieldsAreNoneButANullInputIsAnInput(t *testing.T) {
	for _, tt := range []struct {
		body      string
		wantInput json.RawMessage
	}{
		{`{"script": "x"}`, nil},
		{`{"script": "x", "stdin": null, "files": null, "limits": null}`, nil},
		{`{"script": "x", "limits": {"timeout_seconds": null, "memory_mb": null}}`, nil},
		{`{"script": "x", "input": null}`, json.RawMessage("null")},
		{`{"script": "x", "input": 0, "stdin": "", "files": []}`, json.RawMessage("0")},
	} {
		req, err := testDecoder.decode([]byte(tt.body), requestBody)
		if err != nil {
			t.Errorf("decode(%s) = %v", tt.body, err)
			continue
		}
		if string(req.Input) != string(tt.wantInput) || (req.Input == nil) != (tt.wantInput == nil) {
			t.Errorf("decode(%s).input = %q, want %q", tt.body, req.Input, tt.wantInput)
		}
		if req.Stdin != "" || len(req.Files) != 0 || req.Timeout != 0 || req.MemoryBytes != 0 {
			t.Errorf("decode(%s) = %+v, want no stdin, files or limits", tt.body, req)
		}
	}
}

func TestEveryFieldOfTheWrongShapeIsAClearInvalidRequest(t *testing.T) {
	const timeoutRule = "'limits.timeout_seconds' must be a number above 0 and at most 30 (seconds, the service's limit), got "
	const memoryRule = "'limits.memory_mb' must be a whole number above 0 and at most 512 (MiB, the service's limit), got "
	tests := []struct {
		name, fields string
		want         string // the message's start
	}{
		{"stdin that is a number", `"stdin": 5`, "'stdin' must be a string"},
		{"stdin that is an array", `"stdin": ["a"]`, "'stdin' must be a string"},
		{"files that are an object", `"files": {"path": "a", "content": ""}`, `'files' must be an array of {"path", "content", "encoding"} objects`},
		{"files that are a string", `"files": "a.csv"`, `'files' must be an array`},
		{"a file that is null", `"files": [{"path": "a", "content": ""}, null]`, `files[1] must be an object {"path", "content", "encoding"}`},
		{"a file that is a string", `"files": ["a.csv"]`, `files[0] must be an object`},
		{"a file without a path", `"files": [{"content": "x"}]`, "files[0].path must be a string"},
		{"a file with a null path", `"files": [{"path": null, "content": "x"}]`, "files[0].path must be a string"},
		{"a file with a numeric path", `"files": [{"path": 7, "content": "x"}]`, "files[0].path must be a string"},
		{"a file without content", `"files": [{"path": "a"}]`, "files[0].content must be a string"},
		{"a file with bytes as numbers", `"files": [{"path": "a", "content": [1, 2]}]`, "files[0].content must be a string"},
		{"an unknown encoding", `"files": [{"path": "a", "content": "x", "encoding": "latin-1"}]`, `files[0].encoding of "a" must be "utf-8" (the default) or "base64"`},
		{"an empty encoding", `"files": [{"path": "a", "content": "x", "encoding": ""}]`, `files[0].encoding of "a" must be "utf-8" (the default) or "base64"`},
		{"an encoding that is not a string", `"files": [{"path": "a", "content": "x", "encoding": 64}]`, `files[0].encoding of "a" must be "utf-8" (the default) or "base64"`},
		{"base64 with a stray character", `"files": [{"path": "a", "content": "AP*=", "encoding": "base64"}]`, "files[0].content of \"a\" is not valid base64"},
		{"base64 cut short", `"files": [{"path": "a", "content": "AP8", "encoding": "base64"}]`, "files[0].content of \"a\" is not valid base64"},
		{"base64 with padding bits set", `"files": [{"path": "a", "content": "AP9=", "encoding": "base64"}]`, "files[0].content of \"a\" is not valid base64"},
		{"base64url", `"files": [{"path": "a", "content": "AP_-", "encoding": "base64"}]`, "files[0].content of \"a\" is not valid base64"},
		{"limits that are a number", `"limits": 5`, `'limits' must be an object {"timeout_seconds", "memory_mb"}`},
		{"a timeout of zero", `"limits": {"timeout_seconds": 0}`, timeoutRule + "0"},
		{"a negative timeout", `"limits": {"timeout_seconds": -5}`, timeoutRule + "-5"},
		{"a timeout above the cap", `"limits": {"timeout_seconds": 30.5}`, timeoutRule + "30.5"},
		{"a timeout too large for a float", `"limits": {"timeout_seconds": 1e999}`, timeoutRule + "1e999"},
		{"a timeout as a string", `"limits": {"timeout_seconds": "5"}`, timeoutRule + `"5"`},
		{"a timeout as a bool", `"limits": {"timeout_seconds": true}`, timeoutRule + "true"},
		{"memory of zero", `"limits": {"memory_mb": 0}`, memoryRule + "0"},
		{"negative memory", `"limits": {"memory_mb": -64}`, memoryRule + "-64"},
		{"memory above the cap", `"limits": {"memory_mb": 513}`, memoryRule + "513"},
		{"a fraction of a MiB", `"limits": {"memory_mb": 64.5}`, memoryRule + "64.5"},
		{"memory as a string", `"limits": {"memory_mb": "64"}`, memoryRule + `"64"`},
		{"a long value is quoted in part", `"limits": {"memory_mb": "` + strings.Repeat("9", 100) + `"}`, memoryRule + `"` + strings.Repeat("9", 39) + "…"},
		{"input nested 501 deep", `"input": ` + nested(501), "'input' is nested more than 500 levels deep (arrays and objects within one another); the limit is 500"},
		{"input nested 501 deep in objects", `"input": ` + strings.Repeat(`{"a": `, 501) + "1" + strings.Repeat("}", 501), "'input' is nested more than 500 levels deep"},
		{"input with an integer of 4,301 digits", `"input": {"n": [` + strings.Repeat("9", 4301) + `]}`, "'input' holds an integer of 4301 digits; the limit is 4300 digits (send a larger one as a string)"},
		{"input with a negative integer of 3 million digits", `"input": -` + strings.Repeat("9", 3_000_000), "'input' holds an integer of 3000000 digits; the limit is 4300 digits"},
		{"input with 1e400", `"input": {"x": 1e400}`, "'input' holds the number 1e400, beyond the range of a float (about ±1.8e308): send it as a string"},
		{"input with -1.5E+400", `"input": [-1.5E+400]`, "'input' holds the number -1.5E+400, beyond the range of a float"},
		{"a path with a lone high surrogate", `"files": [{"path": "a\ud800", "content": ""}]`, `files[0].path holds a lone UTF-16 surrogate escape (\ud800-\udfff not in a pair), which is no character`},
		{"a path with a lone low surrogate", `"files": [{"path": "\udc00a", "content": ""}]`, "files[0].path holds a lone UTF-16 surrogate escape"},
		{"a path with a high surrogate before a letter escape", `"files": [{"path": "\ud800\u0041", "content": ""}]`, "files[0].path holds a lone UTF-16 surrogate escape"},
		{"a path with two high surrogates", `"files": [{"path": "\ud83d\ud83d", "content": ""}]`, "files[0].path holds a lone UTF-16 surrogate escape"},
		{"content with a lone surrogate", `"files": [{"path": "a", "content": "x\uDFFF"}]`, "files[0].content of \"a\" holds a lone UTF-16 surrogate escape"},
		{"stdin with a lone surrogate", `"stdin": "\ud800"`, "'stdin' holds a lone UTF-16 surrogate escape"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"script": "def main():\n    return 1\n", "id": "c1", ` + tt.fields + `}`
			for _, p := range []payload{requestBody, messageData} {
				req, err := testDecoder.decode([]byte(body), p)
				var e *executor.Error
				if !errors.As(err, &e) || e.Type != api.ErrorTypeInvalidRequest || !strings.HasPrefix(e.Message, tt.want) {
					t.Errorf("decode(%s) = %v, want invalid_request starting %q", tt.fields, err, tt.want)
				}
				if req.Script != "" || req.Files != nil || req.Input != nil {
					t.Errorf("decode(%s) = %+v with its error, want nothing to run", tt.fields, req)
				}
				if p.withCallerID && req.callerID != "c1" {
					t.Errorf("decode(%s) lost the caller ID: %+v", tt.fields, req)
				}
			}
		})
	}
}

func TestLimitsMayBeFractionsAndWholeNumbersWrittenAsDecimals(t *testing.T) {
	for _, tt := range []struct {
		limits      string
		wantTimeout time.Duration
		wantMemory  int64
	}{
		{`{"timeout_seconds": 0.25}`, 250 * time.Millisecond, 0},
		{`{"timeout_seconds": 30}`, 30 * time.Second, 0},
		{`{"timeout_seconds": 3e1}`, 30 * time.Second, 0},
		{`{"timeout_seconds": 1e-300}`, time.Nanosecond, 0}, // rounded up: never no limit
		{`{"memory_mb": 64.0}`, 0, 64 << 20},
		{`{"memory_mb": 512}`, 0, 512 << 20},
		{`{"memory_mb": 1}`, 0, 1 << 20},
	} {
		req, err := testDecoder.decode([]byte(`{"script": "x", "limits": `+tt.limits+`}`), requestBody)
		if err != nil || req.Timeout != tt.wantTimeout || req.MemoryBytes != tt.wantMemory {
			t.Errorf("decode(limits %s) = %v, %d, %v; want %v, %d", tt.limits, req.Timeout, req.MemoryBytes, err, tt.wantTimeout, tt.wantMemory)
		}
	}
}

func TestMessageDataOverTheRequestCapIsRefused(t *testing.T) {
	d := decoder{maxBytes: 1 << 10, caps: testDecoder.caps}
	data := []byte(`{"script": "` + strings.Repeat("x", 1<<10) + `"}`)
	_, err := d.decodeMessage(data)
	var e *executor.Error
	if !errors.As(err, &e) || e.Type != api.ErrorTypeInvalidRequest || e.Message != "message data is larger than the service's limit of 1KB" {
		t.Errorf("decodeMessage(%d bytes) = %v, want invalid_request naming the 1KB limit", len(data), err)
	}
}

// nested is n arrays within one another around a 1.
func nested(n int) string {
	return strings.Repeat("[", n) + "1" + strings.Repeat("]", n)
}

// The edges of the input and string rules: what is just within them is
// taken, exactly as sent.
func TestInputsJustWithinTheRulesAreTakenAsSent(t *testing.T) {
	for _, tt := range []struct{ name, fields string }{
		{"input nested 500 deep", `"input": ` + nested(500)},
		{"input with an integer of 4,300 digits", `"input": -` + strings.Repeat("9", 4300)},
		{"input with the largest float", `"input": 1.7976931348623157e308`},
		{"input with a number too small for a float (zero, as in Python)", `"input": 1e-400`},
		{"input with a lone surrogate in a string (Python takes it as sent)", `"input": "\ud800"`},
		{"a path with a surrogate pair", `"files": [{"path": "\ud83d\ude00.txt", "content": ""}]`},
		{"a path with an escaped backslash before u", `"files": [{"path": "a\\ud800", "content": ""}]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"script": "def main(x=None):\n    return 1\n", ` + tt.fields + `}`
			req, err := testDecoder.decode([]byte(body), requestBody)
			if err != nil {
				t.Fatalf("decode(%s) = %v, want it taken", tt.fields, err)
			}
			if raw, ok := strings.CutPrefix(tt.fields, `"input": `); ok && string(req.Input) != raw {
				t.Errorf("input = %.80s, want %.80s exactly", req.Input, raw)
			}
		})
	}
}

func TestAScriptWithALoneSurrogateIsRefused(t *testing.T) {
	_, err := testDecoder.decode([]byte(`{"script": "def main():\n    return '\ud800'\n"}`), requestBody)
	var e *executor.Error
	if !errors.As(err, &e) || e.Type != api.ErrorTypeInvalidRequest || !strings.HasPrefix(e.Message, "'script' holds a lone UTF-16 surrogate escape") {
		t.Errorf("decode = %v, want invalid_request naming 'script' and the lone surrogate", err)
	}
}

// Any of input, stdin, files and limits, even empty, makes the request an
// extended one (outputs/ is made for it); null members other than input
// are absent.
func TestEmptyExtensionsStillExtendTheRequest(t *testing.T) {
	for _, tt := range []struct {
		fields string
		want   bool
	}{
		{`"files": []`, true},
		{`"limits": {}`, true},
		{`"stdin": ""`, true},
		{`"input": null`, true},
		{`"files": null, "limits": null, "stdin": null`, false},
		{`"unknown": []`, false},
	} {
		req, err := testDecoder.decode([]byte(`{"script": "x", `+tt.fields+`}`), requestBody)
		if err != nil {
			t.Fatalf("decode(%s) = %v", tt.fields, err)
		}
		if got := req.executorRequest("id").Extended; got != tt.want {
			t.Errorf("decode(%s): Extended = %v, want %v", tt.fields, got, tt.want)
		}
	}
}
