package execlog

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// TraceFromHeaders returns the trace ("projects/P/traces/T") and span ID an
// entry should carry to be correlated with the request that caused it. It
// reads the W3C traceparent header first, then Google's
// X-Cloud-Trace-Context. It returns "", "" when neither is valid or the
// project is unknown, since a trace name needs the project.
func TraceFromHeaders(h http.Header, projectID string) (trace, spanID string) {
	if projectID == "" {
		return "", ""
	}
	traceID, spanID, ok := parseTraceparent(h.Get("traceparent"))
	if !ok {
		traceID, spanID, ok = parseCloudTraceContext(h.Get("X-Cloud-Trace-Context"))
	}
	if !ok {
		return "", ""
	}
	return "projects/" + projectID + "/traces/" + traceID, spanID
}

// parseTraceparent reads "VERSION-TRACEID-PARENTID-FLAGS" as the W3C Trace
// Context specifies it.
func parseTraceparent(v string) (traceID, spanID string, ok bool) {
	parts := strings.Split(strings.TrimSpace(v), "-")
	if len(parts) < 4 {
		return "", "", false
	}
	version, traceID, spanID, flags := parts[0], parts[1], parts[2], parts[3]
	// Version ff is forbidden; later versions may append fields, version 00
	// may not.
	if !isHex(version, 2) || version == "ff" || (version == "00" && len(parts) != 4) {
		return "", "", false
	}
	if !isHex(traceID, 32) || !isHex(spanID, 16) || !isHex(flags, 2) || isZero(traceID) || isZero(spanID) {
		return "", "", false
	}
	return traceID, spanID, true
}

// parseCloudTraceContext reads "TRACE_ID[/SPAN_ID][;o=OPTIONS]", whose span
// ID is decimal; Cloud Logging wants it as 16 hex digits.
func parseCloudTraceContext(v string) (traceID, spanID string, ok bool) {
	v, _, _ = strings.Cut(strings.TrimSpace(v), ";")
	traceID, span, hasSpan := strings.Cut(v, "/")
	traceID = strings.ToLower(traceID)
	if !isHex(traceID, 32) || isZero(traceID) {
		return "", "", false
	}
	if !hasSpan {
		return traceID, "", true
	}
	n, err := strconv.ParseUint(span, 10, 64)
	if err != nil || n == 0 {
		return traceID, "", true
	}
	return traceID, fmt.Sprintf("%016x", n), true
}

// isHex reports whether s is n lowercase hex digits, as trace IDs are.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func isZero(s string) bool { return strings.Trim(s, "0") == "" }
