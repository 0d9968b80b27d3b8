//go:build integration

package adversarial

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// Encodings and bodies: NUL, BOM, invalid UTF-8, oversized and hostile JSON
// bodies are refused (or run) as the contract says, without running anything
// they should not and without reading past the body cap.
func TestAdversarialEncodings(t *testing.T) {
	ts := testsupport.StartService(t, nil)
	tests := []struct {
		name       string
		body       []byte
		wantStatus int
		wantType   string
		wantResult string
	}{
		{"a NUL byte in the script", []byte(`{"script": "def main():\n    return 1\u0000"}`), 400, "invalid_request", ""},
		{"a raw NUL byte in the body", []byte("{\"script\": \"def main():\x00\"}"), 400, "invalid_request", ""},
		{"invalid UTF-8 in the body", []byte("{\"script\": \"def main():\\n    return '\xff\xfe'\"}"), 400, "invalid_request", ""},
		{"an overlong UTF-8 encoding", []byte("{\"script\": \"def main():\\n    return '\xc0\xaf'\"}"), 400, "invalid_request", ""},
		{"a UTF-8 byte order mark before the script", []byte("{\"script\": \"\ufeffdef main():\\n    return 1\"}"), 200, "", "1"},
		{"a byte order mark before the JSON body", []byte("\xef\xbb\xbf{\"script\": \"def main():\\n    return 1\"}"), 400, "invalid_request", ""},
		{"a lone surrogate escape in the script", []byte(`{"script": "def main():\n    return '\ud800'"}`), 200, "", "\"\uFFFD\""},
		{"the script given twice", []byte(`{"script": "def main():\n    return 1", "script": "def main():\n    return 2"}`), 200, "", "2"},
		{"a script that is not a string", []byte(`{"script": ["def main(): return 1"]}`), 400, "invalid_request", ""},
		{"deeply nested JSON", append(bytes.Repeat([]byte("["), 100000), bytes.Repeat([]byte("]"), 100000)...), 400, "invalid_request", ""},
		{"a script over 100 KiB", []byte(`{"script": "def main():\n    return 1\n#` + strings.Repeat("x", 100<<10) + `"}`), 400, "invalid_request", ""},
		{"UTF-16 instead of UTF-8", []byte("\xff\xfe{\x00\"\x00s\x00\"\x00}\x00"), 400, "invalid_request", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.Post(t, "/execute", "application/json", tt.body)
			if r.Status != tt.wantStatus || r.ErrorType != tt.wantType {
				t.Fatalf("answered %d %s, want %d %q", r.Status, testsupport.Clip(r.Raw), tt.wantStatus, tt.wantType)
			}
			if tt.wantResult != "" && string(r.Result) != tt.wantResult {
				t.Errorf("result = %s, want %s", r.Result, tt.wantResult)
			}
		})
	}

	// A 20 MiB body is refused with 413 whether or not it announces its
	// length, and the service stops reading it: what the client managed
	// to send is bounded by the cap plus the loopback's socket buffers,
	// far from the whole body.
	for _, announce := range []bool{true, false} {
		name := "a 20 MiB body with its length announced"
		if !announce {
			name = "a 20 MiB body sent chunked"
		}
		t.Run(name, func(t *testing.T) {
			const size = 20 << 20
			body := &testsupport.CountingReader{R: io.MultiReader(strings.NewReader(`{"script": "`), io.LimitReader(testsupport.Endless('x'), size))}
			req, err := http.NewRequest(http.MethodPost, ts.URL+"/execute", body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if announce {
				req.ContentLength = size + 12
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("POST: %v", err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(raw, []byte(`"invalid_request"`)) {
				t.Errorf("answered %d %s, want 413 invalid_request", resp.StatusCode, testsupport.Clip(raw))
			}
			if n := body.N(); n >= size {
				t.Errorf("the whole %d-byte body was consumed (%d bytes), want the service to stop at its cap", size, n)
			}
		})
	}
}
