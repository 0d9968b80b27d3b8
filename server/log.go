package server

import (
	"fmt"
	"runtime/debug"
	"time"
	"unicode/utf8"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/execlog"
	"github.com/pyexec/pyexec/executor"
)

// The fields of the service's log entries (docs/operations.md: "Reading outcomes in
// Cloud Logging"). Every entry is built in this file.
const (
	fieldFunction        = "function"
	fieldExecutionID     = "execution_id"
	fieldMessageID       = "message_id"
	fieldCallerID        = "id"
	fieldStatus          = "status"
	fieldDurationMS      = "duration_ms"
	fieldScriptBytes     = "script_bytes"
	fieldStdoutBytes     = "stdout_bytes"
	fieldInputBytes      = "input_bytes"
	fieldStdinBytes      = "stdin_bytes"
	fieldFiles           = "files"
	fieldFilesBytes      = "files_bytes"
	fieldOutputFiles     = "output_files"
	fieldOutputBytes     = "output_files_bytes"
	fieldStdout          = "stdout"
	fieldStdoutTruncated = "stdout_truncated"
	fieldResult          = "result"
	fieldResultBytes     = "result_bytes"
	fieldResultTruncated = "result_truncated"
	fieldError           = "error"
	fieldErrorType       = "error_type"
	fieldTraceback       = "traceback"
	fieldCause           = "cause"
	fieldRetry           = "retry"
	fieldClientGone      = "client_gone"
	fieldDuplicate       = "duplicate"
	fieldPanic           = "panic"
	fieldStack           = "stack"
	fieldMode            = "mode"
	fieldIsolation       = "isolation"
	fieldVersions        = "versions"
	fieldRetryInMS       = "retry_in_ms"
)

// maxLoggedBytes caps stdout, result and traceback in a log entry of
// ExecuteEvent; the published outcome carries them whole.
const maxLoggedBytes = 64 << 10

// executionEntry is the one log entry of an execution, whatever it came by.
// elapsed is the request's time at the service; hungUp tells whether the
// caller's context ended before the answer.
func executionEntry(via entryPoint, x execution, o outcome, elapsed time.Duration, hungUp bool) execlog.Entry {
	fields := map[string]any{
		fieldFunction:    via.function,
		fieldExecutionID: x.id,
		fieldStatus:      api.OutcomeOK,
		fieldDurationMS:  elapsed.Milliseconds(),
		fieldScriptBytes: len(x.req.Script),
		fieldStdoutBytes: len(o.result.Stdout),
	}
	// What came with the script and what came back, as sizes: never their
	// content. Absent for a script alone.
	if x.req.Input != nil {
		fields[fieldInputBytes] = len(x.req.Input)
	}
	if x.req.Stdin != "" {
		fields[fieldStdinBytes] = len(x.req.Stdin)
	}
	if len(x.req.Files) > 0 {
		fields[fieldFiles], fields[fieldFilesBytes] = len(x.req.Files), x.req.inputFilesBytes()
	}
	if n := len(o.result.Files); n > 0 {
		total := 0
		for _, f := range o.result.Files {
			total += len(f.Content)
		}
		fields[fieldOutputFiles], fields[fieldOutputBytes] = n, total
	}
	entry := execlog.Entry{Severity: execlog.Info, Message: "execution ok", Trace: x.trace, SpanID: x.span, Fields: fields}
	if via.fromPubSub {
		// Nobody reads an answer: the entry is the outcome, as published.
		published := o.published
		fields[fieldMessageID] = published.MessageID
		fields[fieldCallerID] = published.ID
		fields[fieldDurationMS] = published.DurationMS
		stdout, cut := capText(published.Stdout)
		fields[fieldStdout] = stdout
		if cut {
			fields[fieldStdoutTruncated] = true
		}
		if o.err == nil {
			if len(published.Result) <= maxLoggedBytes {
				fields[fieldResult] = published.Result
			} else {
				fields[fieldResultTruncated] = true
			}
			fields[fieldResultBytes] = len(published.Result)
		} else {
			fields[fieldError] = published.Error
			if published.Traceback != "" {
				fields[fieldTraceback], _ = capText(published.Traceback)
			}
		}
	}
	if o.err == nil {
		return entry
	}

	t := o.failure.body.ErrorType
	fields[fieldStatus] = api.OutcomeError
	fields[fieldErrorType] = t
	entry.Severity, entry.Message = o.failure.severity, "execution failed: "+t
	if t == string(api.ErrorTypeInternal) {
		fields[fieldCause] = o.err.Error() // the caller saw only the execution ID
	}
	switch {
	case via.fromPubSub && o.failure.redeliver:
		entry.Message += "; the message will be redelivered"
		fields[fieldRetry] = true
	case !via.fromPubSub && hungUp:
		// The client hung up and the execution was stopped for it: not a
		// fault of the service, and nobody got the answer.
		entry.Severity = execlog.Warning
		entry.Message = "client went away; execution stopped"
		fields[fieldClientGone] = true
	}
	return entry
}

// duplicateEntry logs a delivery of a message this instance already
// completed.
func duplicateEntry(d delivery) execlog.Entry {
	return execlog.Entry{
		Severity: execlog.Info,
		Message:  "duplicate message acknowledged without running it again",
		Trace:    d.trace,
		SpanID:   d.span,
		Fields:   map[string]any{fieldFunction: viaPubSub.function, fieldMessageID: d.messageID, fieldDuplicate: true},
	}
}

// publishFailedEntry logs an outcome the results topic did not take.
func publishFailedEntry(x execution, err error) execlog.Entry {
	return outcomeEntry(x, execlog.Error, "publishing the outcome failed; the message will be redelivered", err)
}

// outcomeTooLargeEntry logs an outcome too large to publish, which is
// published as an output_limit instead.
func outcomeTooLargeEntry(x execution, err error) execlog.Entry {
	return outcomeEntry(x, execlog.Warning, "the outcome is over Pub/Sub's message limit; published as output_limit", err)
}

// outcomeEntry logs what happened to a message's outcome on its way to the
// results topic.
func outcomeEntry(x execution, severity execlog.Severity, message string, err error) execlog.Entry {
	return execlog.Entry{
		Severity: severity,
		Message:  message,
		Trace:    x.trace,
		SpanID:   x.span,
		Fields: map[string]any{
			fieldFunction:    viaPubSub.function,
			fieldExecutionID: x.id,
			fieldMessageID:   x.messageID,
			fieldError:       err.Error(),
		},
	}
}

// panicEntry logs a handler that panicked, with its stack; the client got
// only the execution ID.
func panicEntry(executionID string, p any) execlog.Entry {
	return execlog.Entry{
		Severity: execlog.Error,
		Message:  errPanic.Error(),
		Fields:   map[string]any{fieldExecutionID: executionID, fieldPanic: fmt.Sprint(p), fieldStack: string(debug.Stack())},
	}
}

// selfTestPassedEntry logs the isolation the sandbox runs with.
func selfTestPassedEntry(h executor.Health) execlog.Entry {
	return execlog.Entry{
		Severity: execlog.Info,
		Message:  "sandbox self-test passed",
		Fields:   map[string]any{fieldMode: h.Mode, fieldIsolation: h.Isolation, fieldVersions: h.Versions},
	}
}

// selfTestFailedEntry logs a failed self-test and when it is tried again.
func selfTestFailedEntry(err error, retryIn time.Duration) execlog.Entry {
	return execlog.Entry{
		Severity: execlog.Error,
		Message:  "sandbox self-test failed; executions answer sandbox_unavailable",
		Fields:   map[string]any{fieldError: err.Error(), fieldRetryInMS: retryIn.Milliseconds()},
	}
}

// capText cuts s to maxLoggedBytes at a character boundary, since Cloud
// Logging refuses invalid UTF-8.
func capText(s string) (string, bool) {
	if len(s) <= maxLoggedBytes {
		return s, false
	}
	cut := maxLoggedBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut], true
}

// EventEntry logs what the executor did on its own: a server started or
// replaced.
func EventEntry(ev executor.Event) execlog.Entry {
	severity := execlog.Info
	if ev.Warning {
		severity = execlog.Warning
	}
	return execlog.Entry{Severity: severity, Message: ev.Message, Fields: map[string]any{"sandbox_event": true}}
}
