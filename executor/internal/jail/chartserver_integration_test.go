//go:build integration

package jail

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// chartScript draws a line chart of a 1,000-row DataFrame and leaves it
// open; it reports whether pyplot was imported before it asked for it (true
// only in the chart server), and which descriptors it holds.
const chartScript = `import os, sys
preloaded = "matplotlib.pyplot" in sys.modules
import matplotlib.pyplot as plt
import pandas as pd

def main():
    frame = pd.DataFrame({"x": range(1000), "y": [i % 97 for i in range(1000)]})
    frame.plot(x="x", y="y", title="a chart")
    return {"preloaded": preloaded, "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd"))}
`

// A script that draws starts the chart server and runs in the plain fork
// server meanwhile; once the chart server has passed its self-test, scripts
// that draw run there, with pyplot imported already, and get the same PNG
// and no descriptor of the server's. Scripts that do not draw never see
// matplotlib. Shutdown leaves nothing of either server.
func TestScriptsThatDrawRunInTheChartServerOnceItIsReady(t *testing.T) {
	cfg := realConfig(t)
	cfg.Mode = ModeFork
	var mu sync.Mutex
	var events []Event
	cfg.Notify = func(ev Event) { mu.Lock(); events = append(events, ev); mu.Unlock() }
	e := startExecutor(t, cfg)
	box := e.box.(*forkSandbox)
	box.charts.idleAfter = 3 * time.Second
	if box.charts.running() != nil {
		t.Fatal("the chart server runs before any script drew")
	}

	type drawn struct {
		Preloaded bool  `json:"preloaded"`
		FDs       []int `json:"fds"`
	}
	draw := func() (drawn, Result) {
		t.Helper()
		res, err := e.Run(context.Background(), Request{Script: chartScript})
		if err != nil {
			t.Fatalf("Run(chart): %v", err)
		}
		var d drawn
		if err := json.Unmarshal(res.Value, &d); err != nil {
			t.Fatalf("result %s: %v", res.Value, err)
		}
		if len(res.Display) != 1 || res.Display[0].Type != DisplayPNG || !bytes.HasPrefix(res.Display[0].Data, []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("display = %+v, want one PNG", res.Display)
		}
		if want := []int{0, 1, 2, 3, 4}; !slices.Equal(d.FDs, want) {
			t.Errorf("the script holds descriptors %v, want %v", d.FDs, want)
		}
		return d, res
	}

	if d, _ := draw(); d.Preloaded {
		t.Fatal("the first script that draws ran with pyplot imported: it cannot have waited for the chart server")
	}
	deadline := time.Now().Add(2 * time.Minute)
	for box.charts.running() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the chart server did not start; events: %+v", events)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 0; i < 3; i++ {
		if d, _ := draw(); !d.Preloaded {
			t.Fatalf("script %d that draws ran without pyplot imported once the chart server was ready", i)
		}
	}

	res, err := e.Run(context.Background(), Request{Script: "import sys\ndef main():\n    return sorted(m for m in sys.modules if m.startswith('mat' + 'plotlib'))  # not named: it would pick the chart server\n"})
	if err != nil || string(res.Value) != "[]" {
		t.Fatalf("a script that does not draw sees matplotlib modules %s (%v), want none", res.Value, err)
	}

	// Unused, it stops, leaving no process; the next chart starts it again.
	charts := box.charts.running()
	chartServerPid := serverPid(charts)
	deadline = time.Now().Add(time.Minute)
	for box.charts.running() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the chart server did not stop once unused")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := syscall.Kill(chartServerPid, 0); err == nil {
		t.Errorf("the stopped chart server's nsjail (pid %d) still runs", chartServerPid)
	}
	draw()
	deadline = time.Now().Add(2 * time.Minute)
	for box.charts.running() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the chart server did not start again")
		}
		time.Sleep(100 * time.Millisecond)
	}

	mu.Lock()
	defer mu.Unlock()
	var said []string
	for _, ev := range events {
		if ev.Warning {
			t.Errorf("warning event: %s", ev.Message)
		}
		said = append(said, ev.Message)
	}
	want := []string{"chart server started", "chart server stopped", "chart server started"}
	if len(said) != len(want) {
		t.Fatalf("events %q, want %d: %q", said, len(want), want)
	}
	for i := range want {
		if !strings.Contains(said[i], want[i]) {
			t.Errorf("event %d = %q, want it to say %q", i, said[i], want[i])
		}
	}
}
