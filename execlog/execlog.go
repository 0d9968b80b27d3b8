// Package execlog writes one structured log entry per execution, to Cloud
// Logging through its client library on Cloud Run and as JSON lines on stdout
// elsewhere. Both ways produce the same entry: the Fields and the message
// become the jsonPayload, and severity, trace, span and labels the entry's own
// fields, which is how Cloud Logging reads a structured stdout line.
package execlog

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// Severity is the severity of an entry, named as Cloud Logging names it.
type Severity string

// The severities pyexec writes: INFO for executions that succeeded, WARNING
// for failures the caller caused, ERROR for faults of the service.
const (
	Info    Severity = "INFO"
	Warning Severity = "WARNING"
	Error   Severity = "ERROR"
)

// Entry is one log entry.
type Entry struct {
	Severity Severity
	// Message is a short summary for people; it becomes jsonPayload.message.
	Message string
	// Trace is "projects/P/traces/T", or "" when the entry belongs to no trace.
	Trace  string
	SpanID string
	Labels map[string]string
	// Fields become the jsonPayload: execution_id, error_type, duration_ms, ...
	// Every value must marshal to JSON. Keys Cloud Logging reserves for
	// structured stdout lines ("severity", "time", "logging.googleapis.com/...")
	// are dropped so that both modes write the same entry; "message" is
	// replaced by Message.
	Fields map[string]any
}

// Logger writes entries. It is safe for concurrent use.
type Logger struct {
	project string
	onError func(error)
	now     func() time.Time
	stdout  *lineWriter

	// mu orders Log against Close: entries logged after Close go to stdout,
	// where Cloud Run still collects them, rather than to a closed client.
	mu     sync.RWMutex
	closed bool
	cloud  *cloudSink // nil in stdout mode
}

// Log writes e. It never fails the caller: a problem writing the entry is
// reported to Config.OnError. In cloud mode it only buffers the entry; in
// stdout mode it writes one line with a single Write call.
func (l *Logger) Log(e Entry) {
	payload, err := l.payload(e)
	if err != nil {
		l.onError(err)
	}
	ts := l.now()

	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.cloud != nil && !l.closed {
		l.cloud.log(e, payload, ts)
		return
	}
	if err := l.stdout.write(e, payload, ts); err != nil {
		l.onError(err)
	}
}

// Close flushes buffered entries to Cloud Logging and releases the client. It
// is meant for shutdown (SIGTERM); entries logged afterwards go to stdout.
func (l *Logger) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	if l.cloud == nil {
		return nil
	}
	return l.cloud.close()
}

// ProjectID is the Google Cloud project the logger writes for, or "" when it
// is not known (local runs).
func (l *Logger) ProjectID() string { return l.project }

// reserved are the keys of a structured stdout line that Cloud Logging takes
// out of the payload; Fields may not use them, or the two modes would differ.
var reserved = map[string]bool{
	"severity":                              true,
	"time":                                  true,
	"timestamp":                             true,
	keyTrace:                                true,
	keySpanID:                               true,
	keyLabels:                               true,
	"logging.googleapis.com/insertId":       true,
	"logging.googleapis.com/operation":      true,
	"logging.googleapis.com/sourceLocation": true,
	"logging.googleapis.com/trace_sampled":  true,
	"httpRequest":                           true,
}

// payload marshals the jsonPayload of e: its Fields and its message. When a
// field cannot be marshaled the entry is still written, with the message and
// the reason in place of the fields, so an execution is never unlogged.
func (l *Logger) payload(e Entry) ([]byte, error) {
	m := make(map[string]any, len(e.Fields)+1)
	for k, v := range e.Fields {
		if !reserved[k] {
			m[k] = v
		}
	}
	m["message"] = e.Message
	b, err := json.Marshal(m)
	if err == nil {
		return b, nil
	}
	err = fmt.Errorf("marshaling log fields of %q: %w", e.Message, err)
	b, _ = json.Marshal(map[string]string{"message": e.Message, "execlog_error": err.Error()})
	return b, err
}

// serialized makes a handler safe to call from several goroutines: the cloud
// client calls it from its own, stdout writes from the caller's.
func serialized(fn func(error)) func(error) {
	if fn == nil {
		fn = func(err error) { fmt.Fprintf(os.Stderr, "execlog: %v\n", err) }
	}
	var mu sync.Mutex
	return func(err error) {
		mu.Lock()
		defer mu.Unlock()
		fn(err)
	}
}
