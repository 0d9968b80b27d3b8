//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// A client that hangs up stops its execution: the jail is killed at once
// rather than at the timeout, and the log says the client left (a warning),
// not that the service failed.
func TestAClientThatHangsUpStopsItsExecution(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_TIMEOUT_SECONDS": "60"})
	body, _ := json.Marshal(map[string]string{"script": "import time\ndef main():\n    time.sleep(50)\n"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/execute", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("POST /execute answered %d before the client hung up, want no answer", resp.StatusCode)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, e := range ts.Logs.Entries(t, true) {
			if e["client_gone"] == true {
				if e["severity"] != "WARNING" {
					t.Errorf("log entry of the abandoned execution = %v, want severity WARNING", e)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log entry says the client went away within 20 s (the script sleeps 50 s); logs:\n%s", ts.Logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
