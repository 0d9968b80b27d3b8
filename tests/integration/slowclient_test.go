//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// openFDs counts the open file descriptors of process pid.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// closedWithin reads conn until the service closes it, and fails t unless
// that happens within limit. It returns what the service wrote first.
func closedWithin(t *testing.T, conn net.Conn, limit time.Duration) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(limit))
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the service still held the connection after %v (read %q)", limit, got)
	}
	return string(got)
}

// TestSlowClientsAreCutOff holds 2,000 connections whose headers never end
// and one whose body arrives at 1 byte/s against the real binary: the
// service keeps answering executions (one of them longer than the body
// deadline), and closes every slow connection after its deadline, leaving
// no descriptor behind.
func TestSlowClientsAreCutOff(t *testing.T) {
	const headerDeadline, bodyDeadline = 2 * time.Second, 4 * time.Second
	b := testsupport.StartBinary(t, map[string]string{
		"PYEXEC_READ_HEADER_TIMEOUT_SECONDS": strconv.Itoa(int(headerDeadline / time.Second)),
		"PYEXEC_BODY_TIMEOUT_SECONDS":        strconv.Itoa(int(bodyDeadline / time.Second)),
	})
	b.Health(t, http.StatusOK)
	client := &http.Client{Timeout: time.Minute}
	execute := func(script string) (int, string) {
		body, _ := json.Marshal(map[string]string{"script": script})
		resp, err := client.Post(b.URL+"/execute", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Errorf("execution while slow clients hold connections: %v", err)
			return 0, ""
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if code, body := execute("def main():\n    return 1\n"); code != http.StatusOK {
		t.Fatalf("first execution answered %d %s", code, body)
	}
	client.CloseIdleConnections()
	baseline := openFDs(t, b.Pid())

	// Half of the connections send nothing at all, half a request line and
	// one header that never ends.
	const halfOpen = 2000
	conns := make([]net.Conn, 0, halfOpen)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	opened := time.Now()
	for i := range halfOpen {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(b.URL, "http://"), 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		if i%2 == 1 {
			if _, err := io.WriteString(c, "POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: applica"); err != nil {
				t.Fatal(err)
			}
		}
	}
	dialled := time.Since(opened)

	// The slow body: complete headers, then one byte a second of 64.
	slow, err := net.Dial("tcp", strings.TrimPrefix(b.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	body := `{"script": "def main():\n    return 'x'\n", "input": "` + strings.Repeat("a", 64) + `"}`
	if _, err := fmt.Fprintf(slow, "POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body)); err != nil {
		t.Fatal(err)
	}
	slowStart := time.Now()
	var trickled int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < len(body); i++ {
			if _, err := slow.Write([]byte{body[i]}); err != nil {
				return
			}
			trickled++
			time.Sleep(time.Second)
		}
	}()

	// While they hold on, the service answers others: quick executions and
	// one that runs past the body deadline (the write deadline is longer).
	if code, got := execute("def main():\n    return 2 + 2\n"); code != http.StatusOK || !strings.Contains(got, `"result":4`) {
		t.Errorf("execution during the slow clients answered %d %s", code, got)
	}
	long := bodyDeadline + 2*time.Second
	if code, got := execute(fmt.Sprintf("import time\ndef main():\n    time.sleep(%d)\n    return 'done'\n", int(long/time.Second))); code != http.StatusOK || !strings.Contains(got, `"result":"done"`) {
		t.Errorf("an execution of %v answered %d %s, want 200: no deadline may cut it", long, code, got)
	}

	// Every half-open connection is closed by the service once the header
	// deadline has passed (measured from the last one's opening, with room
	// for a loaded machine).
	limit := headerDeadline + dialled + 20*time.Second
	for i, c := range conns {
		got := closedWithin(t, c, time.Until(opened.Add(limit)))
		if i == 0 && time.Since(opened) < headerDeadline {
			t.Errorf("the first half-open connection was closed after %v, before the %v header deadline", time.Since(opened), headerDeadline)
		}
		if strings.Contains(got, "200 OK") {
			t.Fatalf("half-open connection %d got an answer: %q", i, got)
		}
	}
	got := closedWithin(t, slow, bodyDeadline+20*time.Second)
	held := time.Since(slowStart)
	wg.Wait()
	t.Logf("%d half-open connections closed after at most %v; the 1 byte/s body was cut after %v and %d of %d bytes, answered %.80q",
		halfOpen, time.Since(opened).Round(time.Millisecond), held.Round(time.Millisecond), trickled, len(body), got)
	if held < bodyDeadline-time.Second || trickled >= len(body) {
		t.Errorf("the slow body was cut after %v and %d of %d bytes, want after the %v body deadline and before its end", held, trickled, len(body), bodyDeadline)
	}
	if strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Errorf("the slow body was executed: %q", got)
	}

	// The service let every descriptor go.
	testsupport.PollUntil(t, 10*time.Second, "the service's descriptors back to their count before the slow clients", func() bool {
		return openFDs(t, b.Pid()) <= baseline+2
	})
	if code, got := execute("def main():\n    return 'after'\n"); code != http.StatusOK {
		t.Errorf("execution after the slow clients answered %d %s", code, got)
	}
}
