//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// Clients that trickle: 2,000 connections that never finish their headers
// and one that sends its body a byte a second. The service keeps answering
// others while they hang on, and closes each at its deadline.
func TestSlowClientsAreCutOffAtTheirDeadlines(t *testing.T) {
	const headerTimeout, readTimeout = 2 * time.Second, 5 * time.Second
	svc := testsupport.StartBinary(t, map[string]string{
		"PYEXEC_READ_HEADER_TIMEOUT_SECONDS": "2",
		"PYEXEC_READ_TIMEOUT_SECONDS":        "5",
	})
	svc.Health(t, http.StatusOK)
	addr := strings.TrimPrefix(svc.URL, "http://")

	// 2,000 half-open requests: a request line and one header, then nothing.
	const halfOpen = 2000
	conns := make([]net.Conn, 0, halfOpen)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	opened := time.Now()
	for range halfOpen {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("opening connection %d: %v", len(conns)+1, err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "POST /execute HTTP/1.1\r\nHost: localhost\r\n"); err != nil {
			t.Fatal(err)
		}
	}

	// One request whose 100-byte body comes a byte a second.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /execute HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
	slowStarted := time.Now()
	var trickle sync.WaitGroup
	trickle.Add(1)
	go func() {
		defer trickle.Done()
		for range 100 {
			if _, err := slow.Write([]byte(" ")); err != nil {
				return // closed by the service
			}
			time.Sleep(time.Second)
		}
	}()

	// Meanwhile others are answered as ever.
	for i := range 3 {
		start := time.Now()
		r := testsupport.Do(t, executeRequest(t, svc.URL, "def main():\n    return 7\n"))
		if r.Status != http.StatusOK || string(r.Result) != "7" || time.Since(start) > 5*time.Second {
			t.Errorf("execution %d while slow clients hang on = %d %s in %v, want 200 with 7 promptly", i, r.Status, testsupport.Clip(r.Raw), time.Since(start))
		}
	}

	// Every half-open connection is closed once its header deadline passed.
	var closedAll sync.WaitGroup
	var mu sync.Mutex
	open := 0
	for _, c := range conns {
		closedAll.Add(1)
		go func(c net.Conn) {
			defer closedAll.Done()
			_ = c.SetReadDeadline(opened.Add(headerTimeout + 15*time.Second))
			_, err := io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				mu.Lock()
				open++
				mu.Unlock()
			}
		}(c)
	}
	closedAll.Wait()
	if open > 0 {
		t.Errorf("%d of %d half-open connections were still open %v after they opened, want all closed after the %v header deadline", open, halfOpen, headerTimeout+15*time.Second, headerTimeout)
	}

	// The trickling body is cut off at the read deadline, not served to its end.
	_ = slow.SetReadDeadline(time.Now().Add(readTimeout + 15*time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err == nil {
		// The service may answer the broken body before it closes.
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		_, err = slow.Read(make([]byte, 1))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("the connection sending a byte a second is still open after %v, want it closed at the %v read deadline", time.Since(slowStarted), readTimeout)
	}
	if took := time.Since(slowStarted); took > readTimeout+15*time.Second || took < readTimeout-time.Second {
		t.Errorf("the trickling connection ended after %v, want about the %v read deadline", took, readTimeout)
	}
	slow.Close()
	trickle.Wait()

	r := testsupport.Do(t, executeRequest(t, svc.URL, "def main():\n    return 8\n"))
	if r.Status != http.StatusOK || string(r.Result) != "8" {
		t.Errorf("execution after the slow clients = %d %s, want 200 with 8", r.Status, testsupport.Clip(r.Raw))
	}
}

// executeRequest is a POST /execute of script to base.
func executeRequest(t *testing.T, base, script string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/execute", strings.NewReader(string(testsupport.ScriptBody(t, script))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

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
