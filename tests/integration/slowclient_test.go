//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// The read deadlines bound a request's arrival, never its execution: with a
// 2 s read deadline, a script that runs 5 s, on a kept-alive connection,
// is answered, and so is the next request on that connection.
func TestReadDeadlinesNeverCutAnExecution(t *testing.T) {
	svc := testsupport.StartBinary(t, map[string]string{
		"PYEXEC_READ_HEADER_TIMEOUT_SECONDS": "1",
		"PYEXEC_READ_TIMEOUT_SECONDS":        "2",
	})
	svc.Health(t, http.StatusOK)
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	for _, c := range []struct{ script, want string }{
		{"import time\ndef main():\n    time.sleep(5)\n    return 'done'\n", `"result":"done"`},
		{"def main():\n    return 2 + 2\n", `"result":4`},
	} {
		body, _ := json.Marshal(map[string]string{"script": c.script})
		started := time.Now()
		resp, err := client.Post(svc.URL+"/execute", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("execution cut off after %v: %v", time.Since(started), err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), c.want) {
			t.Errorf("answered %d %s, want 200 with %s", resp.StatusCode, raw, c.want)
		}
	}
}
