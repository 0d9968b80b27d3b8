package pyexec

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// The original service's five documented examples, answered exactly.
func TestOriginalExamplesAnswerAsDocumented(t *testing.T) {
	ts := startService(t, nil)
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
			script, err := os.ReadFile(filepath.Join("examples", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			r := ts.execute(t, string(script))
			if r.Status != tt.wantStatus || !jsonEqual(t, r.Raw, tt.wantBody) {
				t.Errorf("POST /execute %s = %d %s, want %d %s", tt.file, r.Status, r.Raw, tt.wantStatus, tt.wantBody)
			}
		})
	}
	t.Run("os_info.py", func(t *testing.T) {
		script, err := os.ReadFile(filepath.Join("examples", "os_info.py"))
		if err != nil {
			t.Fatal(err)
		}
		r := ts.execute(t, string(script))
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
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		return false
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatalf("bad want JSON %s: %v", want, err)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb) && sameNumbers(got, want)
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
