package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"time"
)

// Sessions (SPEC §11), measured on the fork-mode service beside its
// one-shot figures of the same run: how long starting a session takes, a
// trivial cell in a live session, and the memory an idle session holds of
// its own after a pandas cell, over many idle sessions at once.

// sessionFigures are the sessions' measurements.
type sessionFigures struct {
	createP50, cellP50 time.Duration
	creates, cells     int
	// idle is how many idle sessions were held at once, and idlePSS the
	// process tree's PSS they added, per session.
	idle    int
	idlePSS int64
	failed  int
}

// The session measurements' sizes.
const (
	sessionCreates = 200
	sessionCells   = 1000
	idleSessions   = 100
	// pandasCell leaves a DataFrame in the session, as an analyst's first
	// cell does.
	pandasCell = "import pandas as pd\ndf = pd.DataFrame({'a': range(1000), 'b': range(1000)})\nint(df.a.sum())"
)

// measureSessions measures s's sessions; nil when s holds none.
func measureSessions(s *service) *sessionFigures {
	if s.active != "fork" {
		return nil
	}
	f := &sessionFigures{}
	fail := func(what string, err error) {
		f.failed++
		if f.failed <= 3 {
			fmt.Fprintf(os.Stderr, "  sessions: %s: %v\n", what, err)
		}
	}

	var creates []time.Duration
	for range sessionCreates {
		t := time.Now()
		id, err := newSession(s.base)
		if err != nil {
			fail("creating a session", err)
			continue
		}
		creates = append(creates, time.Since(t))
		if err := endSession(s.base, id); err != nil {
			fail("ending a session", err)
		}
	}
	f.creates, f.createP50 = len(creates), median(creates)

	if id, err := newSession(s.base); err != nil {
		fail("creating a session", err)
	} else {
		if _, err := runCell(s.base, id, "x = 1"); err != nil {
			fail("the first cell", err)
		}
		var cells []time.Duration
		for range sessionCells {
			t := time.Now()
			result, err := runCell(s.base, id, "x + 1")
			if err != nil || result != "2" {
				fail("a cell", fmt.Errorf("%s, %v", result, err))
				continue
			}
			cells = append(cells, time.Since(t))
		}
		f.cells, f.cellP50 = len(cells), median(cells)
		_ = endSession(s.base, id)
	}

	if s.pidOf != 0 {
		time.Sleep(2 * time.Second)
		_, before := treeMemory(s)
		var ids []string
		for range idleSessions {
			id, err := newSession(s.base)
			if err != nil {
				fail("creating an idle session", err)
				break
			}
			if result, err := runCell(s.base, id, pandasCell); err != nil || result != "499500" {
				fail("a pandas cell", fmt.Errorf("%s, %v", result, err))
			}
			ids = append(ids, id)
		}
		time.Sleep(2 * time.Second)
		_, after := treeMemory(s)
		if f.idle = len(ids); f.idle > 0 {
			f.idlePSS = (after - before) / int64(f.idle)
		}
		for _, id := range ids {
			_ = endSession(s.base, id)
		}
	}
	fmt.Fprintf(os.Stderr, "  sessions: create p50=%v, cell p50=%v, %d idle sessions: %d KiB PSS each\n",
		f.createP50.Round(10*time.Microsecond), f.cellP50.Round(10*time.Microsecond), f.idle, f.idlePSS>>10)
	return f
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return percentile(d, 50)
}

// sessionCall sends body to path and decodes a 2xx answer into v.
func sessionCall(method, url string, body any, v any) error {
	var reader io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, reader)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, data)
	}
	if v != nil {
		return json.Unmarshal(data, v)
	}
	return nil
}

func newSession(base string) (string, error) {
	var s struct {
		ID string `json:"session_id"`
	}
	err := sessionCall(http.MethodPost, base+"/sessions", map[string]any{}, &s)
	return s.ID, err
}

// runCell runs code in the session id and returns its result's JSON.
func runCell(base, id, code string) (string, error) {
	var a struct {
		Result json.RawMessage `json:"result"`
	}
	err := sessionCall(http.MethodPost, base+"/sessions/"+id+"/execute", map[string]string{"code": code}, &a)
	return string(a.Result), err
}

func endSession(base, id string) error {
	return sessionCall(http.MethodDelete, base+"/sessions/"+id, nil, nil)
}

// reportSessions prints the sessions' figures and checks their targets
// against trivialP50, the one-shot trivial execution's p50 at one client
// in the same run.
func reportSessions(f *sessionFigures, trivialP50 time.Duration, target func(ok bool, format string, args ...any)) {
	fmt.Printf("sessions: create p50 %s ms (n=%d), trivial cell p50 %s ms (n=%d), %d idle sessions after a pandas cell: %.1f MiB PSS each; one-shot trivial p50 %s ms\n",
		ms(f.createP50), f.creates, ms(f.cellP50), f.cells, f.idle, float64(f.idlePSS)/(1<<20), ms(trivialP50))
	target(f.failed == 0 && f.cells > 0 && f.cellP50*2 <= trivialP50, "a trivial cell in a live session: p50 %s ms <= half the one-shot trivial p50 (%s ms)", ms(f.cellP50), ms(trivialP50))
	target(f.failed == 0 && f.creates > 0 && f.createP50*2 <= trivialP50*3, "creating a session: p50 %s ms <= 1.5 x the one-shot trivial p50 (%s ms)", ms(f.createP50), ms(trivialP50))
	if f.idle > 0 {
		target(f.idle == idleSessions && f.idlePSS <= 8<<20, "%d idle sessions after a pandas cell: %.1f MiB PSS each <= 8 MiB", f.idle, float64(f.idlePSS)/(1<<20))
	}
}
