package execlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// newStdoutLogger returns a stdout-mode Logger writing to out with a fixed
// clock, and the errors it reports.
func newStdoutLogger(t *testing.T, out *bytes.Buffer) (*Logger, *errorList) {
	t.Helper()
	errs := &errorList{}
	l, err := New(context.Background(), Config{Mode: ModeStdout, Out: out, OnError: errs.add})
	if err != nil {
		t.Fatalf("New(stdout) = %v", err)
	}
	l.now = func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC) }
	return l, errs
}

func TestStdoutWritesOneStructuredLinePerEntry(t *testing.T) {
	tests := []struct {
		name  string
		entry Entry
		want  map[string]any
	}{
		{
			name: "a full entry carries severity, trace, span, labels and its fields at top level",
			entry: Entry{
				Severity: Warning,
				Message:  "script error: no_main",
				Trace:    "projects/p/traces/0af7651916cd43dd8448eb211c80319c",
				SpanID:   "b7ad6b7169203331",
				Labels:   map[string]string{"function": "ExecuteEvent"},
				Fields: map[string]any{
					"execution_id": "e-1",
					"error_type":   "no_main",
					"duration_ms":  12,
					"result":       json.RawMessage(`{"answer":4}`),
				},
			},
			want: map[string]any{
				"severity":                      "WARNING",
				"message":                       "script error: no_main",
				"time":                          "2025-01-02T03:04:05.000000006Z",
				"logging.googleapis.com/trace":  "projects/p/traces/0af7651916cd43dd8448eb211c80319c",
				"logging.googleapis.com/spanId": "b7ad6b7169203331",
				"logging.googleapis.com/labels": map[string]any{"function": "ExecuteEvent"},
				"execution_id":                  "e-1",
				"error_type":                    "no_main",
				"duration_ms":                   float64(12),
				"result":                        map[string]any{"answer": float64(4)},
			},
		},
		{
			name:  "an entry without trace or labels leaves those keys out",
			entry: Entry{Severity: Info, Message: "ok"},
			want: map[string]any{
				"severity": "INFO",
				"message":  "ok",
				"time":     "2025-01-02T03:04:05.000000006Z",
			},
		},
		{
			name: "fields cannot override the keys Cloud Logging reserves",
			entry: Entry{Severity: Error, Message: "real", Fields: map[string]any{
				"severity":                     "DEBUG",
				"message":                      "fake",
				"time":                         "yesterday",
				"logging.googleapis.com/trace": "projects/x/traces/y",
				"kept":                         true,
			}},
			want: map[string]any{
				"severity": "ERROR",
				"message":  "real",
				"time":     "2025-01-02T03:04:05.000000006Z",
				"kept":     true,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			l, errs := newStdoutLogger(t, &out)
			l.Log(tt.entry)
			lines := lines(&out)
			if len(lines) != 1 {
				t.Fatalf("Log wrote %d lines, want 1: %q", len(lines), out.String())
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
				t.Fatalf("line %q is not JSON: %v", lines[0], err)
			}
			if g, w := mustJSON(t, got), mustJSON(t, tt.want); g != w {
				t.Errorf("Log(%+v) wrote\n%s\nwant\n%s", tt.entry, g, w)
			}
			if errs.len() != 0 {
				t.Errorf("OnError got %v, want no errors", errs.all())
			}
		})
	}
}

func TestStdoutStillLogsAnEntryWhoseFieldsDoNotMarshal(t *testing.T) {
	var out bytes.Buffer
	l, errs := newStdoutLogger(t, &out)
	l.Log(Entry{Severity: Info, Message: "odd", Fields: map[string]any{"ratio": math.NaN()}})

	lines := lines(&out)
	if len(lines) != 1 {
		t.Fatalf("Log wrote %d lines, want 1", len(lines))
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("line %q is not JSON: %v", lines[0], err)
	}
	if got["message"] != "odd" || got["severity"] != "INFO" {
		t.Errorf("line = %v, want message and severity kept", got)
	}
	if s, _ := got["execlog_error"].(string); !strings.Contains(s, "NaN") {
		t.Errorf("execlog_error = %q, want the marshaling error", s)
	}
	if errs.len() != 1 {
		t.Errorf("OnError called %d times, want 1", errs.len())
	}
}

func TestStdoutReportsAFailedWriteToOnError(t *testing.T) {
	errs := &errorList{}
	l, err := New(context.Background(), Config{Mode: ModeStdout, Out: failingWriter{}, OnError: errs.add})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(Entry{Severity: Info, Message: "lost"})
	if errs.len() != 1 || !errors.Is(errs.all()[0], errDiskFull) {
		t.Errorf("OnError got %v, want one error wrapping %v", errs.all(), errDiskFull)
	}
}

func TestStdoutLinesWrittenConcurrentlyNeverInterleave(t *testing.T) {
	var out bytes.Buffer
	l, _ := newStdoutLogger(t, &out)
	const writers, perWriter = 16, 50
	// Entries large enough that a torn write would show.
	big := strings.Repeat("x", 8<<10)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				l.Log(Entry{Severity: Info, Message: "m", Fields: map[string]any{"w": w, "i": i, "pad": big}})
			}
		})
	}
	wg.Wait()

	lines := lines(&out)
	if len(lines) != writers*perWriter {
		t.Fatalf("got %d lines, want %d", len(lines), writers*perWriter)
	}
	seen := map[string]bool{}
	for _, line := range lines {
		var got struct {
			W, I int
			Pad  string
		}
		if err := json.Unmarshal([]byte(line), &got); err != nil || got.Pad != big {
			t.Fatalf("line is torn or not JSON (%v): %.80q", err, line)
		}
		seen[fmt.Sprint(got.W, "/", got.I)] = true
	}
	if len(seen) != writers*perWriter {
		t.Errorf("got %d distinct entries, want %d", len(seen), writers*perWriter)
	}
}

// lines splits what a Logger wrote into its lines. A plain buffer stands
// in for stdout: the Logger itself serializes its writes, which the race
// detector checks.
func lines(b *bytes.Buffer) []string {
	s := strings.TrimSuffix(b.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

var errDiskFull = errors.New("disk full")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }

// errorList collects what a Logger reports to OnError.
type errorList struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorList) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errorList) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

func (l *errorList) len() int { return len(l.all()) }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
