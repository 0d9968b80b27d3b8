//go:build integration

package adversarial

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/pyexec/pyexec/internal/testsupport"
	"github.com/pyexec/pyexec/server"
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
		{"a lone surrogate escape in the script (it would be rewritten)", []byte(`{"script": "def main():\n    return '\ud800'"}`), 400, "invalid_request", ""},
		{"a lone surrogate escape in a file's path", []byte(`{"script": "def main():\n    return 1", "files": [{"path": "a\ud800", "content": ""}]}`), 400, "invalid_request", ""},
		{"a lone surrogate escape in input reaches Python as sent", []byte(`{"script": "def main(x):\n    return [len(x), hex(ord(x))]", "input": "\ud800"}`), 200, "", `[1,"0xd800"]`},
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

	// A body far over the cap is refused with 413 whether or not it
	// announces its length, and the service stops reading it: what the
	// client manages to send is bounded by the cap plus what the loopback's
	// socket buffers take (the kernel grows them up to tcp_rmem's and
	// tcp_wmem's maximum), and the body is twice that.
	bound := int64(server.DefaultMaxRequestBytes) + tcpBufferMax(t, "tcp_rmem") + tcpBufferMax(t, "tcp_wmem") + 1<<20
	size := 2 * bound
	for _, announce := range []bool{true, false} {
		name := "a body over twice the cap and socket buffers, its length announced"
		if !announce {
			name = "a body over twice the cap and socket buffers, sent chunked"
		}
		t.Run(name, func(t *testing.T) {
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
			if n := body.N(); n >= bound {
				t.Errorf("%d bytes of the %d-byte body were sent, want at most the cap and the socket buffers (%d): the service must stop reading at its cap", n, size, bound)
			}
		})
	}
}

// tcpBufferMax is the largest a TCP socket buffer may grow to: the third
// field of /proc/sys/net/ipv4/<name> (tcp_rmem or tcp_wmem).
func tcpBufferMax(t *testing.T, name string) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/sys/net/ipv4/" + name)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(data))
	if len(fields) != 3 {
		t.Fatalf("%s = %q, want three numbers", name, data)
	}
	n, err := strconv.ParseInt(fields[2], 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}
