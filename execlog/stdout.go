package execlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// The keys of a structured line that Cloud Logging maps to entry fields.
const (
	keyTrace  = "logging.googleapis.com/trace"
	keySpanID = "logging.googleapis.com/spanId"
	keyLabels = "logging.googleapis.com/labels"
)

// lineWriter writes entries as JSON lines in Cloud Logging's structured
// format. Each line is one Write under a lock, so lines written concurrently
// never interleave.
type lineWriter struct {
	mu  sync.Mutex
	out io.Writer
}

func (w *lineWriter) write(e Entry, payload []byte, ts time.Time) error {
	var b bytes.Buffer
	b.Grow(len(payload) + 256)
	b.WriteByte('{')
	if e.Severity != "" {
		writeField(&b, "severity", string(e.Severity))
	}
	writeField(&b, "time", ts.UTC().Format(time.RFC3339Nano))
	if e.Trace != "" {
		writeField(&b, keyTrace, e.Trace)
	}
	if e.SpanID != "" {
		writeField(&b, keySpanID, e.SpanID)
	}
	if len(e.Labels) > 0 {
		writeField(&b, keyLabels, e.Labels)
	}
	// payload is a JSON object that always holds "message", so its members
	// follow the ones above after a comma.
	b.Write(payload[1:])
	b.WriteByte('\n')

	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.out.Write(b.Bytes()); err != nil {
		return fmt.Errorf("writing log line: %w", err)
	}
	return nil
}

// writeField appends `"key":value,`; the values written here (strings and
// string maps) always marshal.
func writeField(b *bytes.Buffer, key string, value any) {
	k, _ := json.Marshal(key)
	v, _ := json.Marshal(value)
	b.Write(k)
	b.WriteByte(':')
	b.Write(v)
	b.WriteByte(',')
}
