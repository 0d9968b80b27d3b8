package execlog

import (
	"net/http"
	"testing"
)

func TestTraceFromHeaders(t *testing.T) {
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	tests := []struct {
		name      string
		headers   map[string]string
		project   string
		wantTrace string
		wantSpan  string
	}{
		{
			name:      "a valid traceparent gives its trace and parent span",
			headers:   map[string]string{"traceparent": "00-" + traceID + "-00f067aa0ba902b7-01"},
			project:   "p",
			wantTrace: "projects/p/traces/" + traceID,
			wantSpan:  "00f067aa0ba902b7",
		},
		{
			name: "traceparent wins over X-Cloud-Trace-Context",
			headers: map[string]string{
				"traceparent":           "00-" + traceID + "-00f067aa0ba902b7-00",
				"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1",
			},
			project:   "p",
			wantTrace: "projects/p/traces/" + traceID,
			wantSpan:  "00f067aa0ba902b7",
		},
		{
			name:      "X-Cloud-Trace-Context's decimal span becomes 16 hex digits",
			headers:   map[string]string{"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/123;o=1"},
			project:   "p",
			wantTrace: "projects/p/traces/105445aa7843bc8bf206b12000100000",
			wantSpan:  "000000000000007b",
		},
		{
			name:      "X-Cloud-Trace-Context without a span gives only the trace",
			headers:   map[string]string{"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000"},
			project:   "p",
			wantTrace: "projects/p/traces/105445aa7843bc8bf206b12000100000",
		},
		{
			name: "an invalid traceparent falls back to X-Cloud-Trace-Context",
			headers: map[string]string{
				"traceparent":           "00-" + traceID + "-0000000000000000-01",
				"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1",
			},
			project:   "p",
			wantTrace: "projects/p/traces/105445aa7843bc8bf206b12000100000",
			wantSpan:  "0000000000000001",
		},
		{
			name:    "an all-zero trace ID is no trace",
			headers: map[string]string{"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
			project: "p",
		},
		{
			name:    "version ff is no trace",
			headers: map[string]string{"traceparent": "ff-" + traceID + "-00f067aa0ba902b7-01"},
			project: "p",
		},
		{
			name:    "uppercase hex is no trace",
			headers: map[string]string{"traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"},
			project: "p",
		},
		{
			name:    "an unknown project gives no trace, since a trace name needs one",
			headers: map[string]string{"traceparent": "00-" + traceID + "-00f067aa0ba902b7-01"},
		},
		{
			name:    "no headers give no trace",
			project: "p",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			trace, span := TraceFromHeaders(h, tt.project)
			if trace != tt.wantTrace || span != tt.wantSpan {
				t.Errorf("TraceFromHeaders(%v, %q) = %q, %q; want %q, %q", tt.headers, tt.project, trace, span, tt.wantTrace, tt.wantSpan)
			}
		})
	}
}
