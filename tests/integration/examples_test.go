//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyexec/pyexec/internal/testenv"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// The original service's five documented examples, answered exactly.
func TestOriginalExamplesAnswerAsDocumented(t *testing.T) {
	ts := testsupport.StartService(t, nil)
	tests := []struct {
		file       string
		wantStatus int
		wantBody   string
	}{
		{"hello.py", 200, `{"result":{"answer":4},"stdout":"Calculating..."}`},
		{"pandas_sum.py", 200, `{"result":{"sum_a":6,"sum_b":15},"stdout":""}`},
		{"numpy_stats.py", 200, `{"result":{"mean":3.0,"std":1.4142135623730951},"stdout":""}`},
		{"no_main.py", 400, `{"error":"Script must contain a 'def main()' function","error_type":"no_main","stdout":""}`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			script, err := os.ReadFile(filepath.Join(testsupport.RepoRoot(t), "examples", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			r := ts.Execute(t, string(script))
			if r.Status != tt.wantStatus || !jsonEqual(t, r.Raw, tt.wantBody) {
				t.Errorf("POST /execute %s = %d %s, want %d %s", tt.file, r.Status, r.Raw, tt.wantStatus, tt.wantBody)
			}
		})
	}
	t.Run("os_info.py", func(t *testing.T) {
		script, err := os.ReadFile(filepath.Join(testsupport.RepoRoot(t), "examples", "os_info.py"))
		if err != nil {
			t.Fatal(err)
		}
		r := ts.Execute(t, string(script))
		var got struct {
			Platform string `json:"platform"`
			CPUCount int    `json:"cpu_count"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Result, &got) != nil || got.Platform != "posix" || got.CPUCount < 1 {
			t.Errorf("POST /execute os_info.py = %d %s, want platform posix and a positive cpu_count", r.Status, r.Raw)
		}
	})
}

// jsonEqual compares JSON texts by value, numbers by their text (so 3.0 and 3
// differ, as they do to a client that reads floats).
func jsonEqual(t *testing.T, got []byte, want string) bool {
	t.Helper()
	if !json.Valid([]byte(want)) {
		t.Fatalf("bad want JSON %s", want)
	}
	return testenv.SameJSON(got, []byte(want)) && sameNumbers(got, want)
}

// sameNumbers checks that the number texts match exactly, in order.
func sameNumbers(got []byte, want string) bool {
	return numberTexts(got) == numberTexts([]byte(want))
}

func numberTexts(b []byte) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out []byte
	for {
		tok, err := dec.Token()
		if err != nil {
			return string(out)
		}
		if n, ok := tok.(json.Number); ok {
			out = append(out, n...)
			out = append(out, ',')
		}
	}
}

// Every HTTP execution is logged once, under the ID its response carries,
// with its sizes and outcome but never the script's text or outputs.
func TestEachHTTPExecutionIsLoggedOnceWithoutItsText(t *testing.T) {
	ts := testsupport.StartService(t, nil)
	const secret = "canary-8f2c1e"
	r := ts.Execute(t, "def main():\n    print('"+secret+"')\n    return '"+secret+"'\n")
	id := r.Header.Get("X-Execution-Id")
	if r.Status != http.StatusOK || id == "" {
		t.Fatalf("POST /execute = %d %s (X-Execution-Id %q), want 200 with an ID", r.Status, r.Raw, id)
	}
	var mine []map[string]any
	for _, e := range ts.Logs.Entries(t, true) {
		if e["execution_id"] == id {
			mine = append(mine, e)
		}
	}
	if len(mine) != 1 {
		t.Fatalf("log entries for execution %s = %v, want exactly one", id, mine)
	}
	e := mine[0]
	if e["severity"] != "INFO" || e["status"] != "ok" || e["script_bytes"] == nil || e["duration_ms"] == nil {
		t.Errorf("log entry = %v, want severity INFO, status ok, script_bytes and duration_ms", e)
	}
	if strings.Contains(ts.Logs.String(), secret) {
		t.Errorf("the log holds the script's text or output:\n%s", ts.Logs.String())
	}
}
