package executor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// report is the harness's account of the execution (harness/harness.py).
// It is written by a process the user's code controls, so every field is
// checked before use.
type report struct {
	OK        bool            `json:"ok"`
	Result    json.RawMessage `json:"result"`
	ErrorType ErrorType       `json:"error_type"`
	Error     string          `json:"error"`
	Traceback string          `json:"traceback"`
}

// Caps on the harness's texts, whatever the harness claims.
const (
	maxErrorText     = 4 << 10
	maxTracebackText = 64 << 10
)

// harnessTypes are the failures the harness may report. Anything else the
// report claims (busy, internal…) is refused: only the executor decides those.
var harnessTypes = map[ErrorType]bool{
	TypeNoMain: true, TypeSyntaxError: true, TypeException: true, TypeInvalidResult: true,
	TypeMemoryLimit: true, TypeOutputLimit: true, TypeExited: true,
}

// errReportInvalid marks a report that is present but not a valid one.
var errReportInvalid = errors.New("invalid report")

// judge turns what a jail produced into the execution's result or failure.
func judge(run jailRun, cfg Config) (Result, error) {
	res := Result{Stdout: cleanStdout(run.Stdout)}
	fail := func(t ErrorType, msg string) (Result, error) {
		return res, &Error{Type: t, Message: msg}
	}
	switch {
	case run.TimedOut:
		return fail(TypeTimeout, timeoutMessage(cfg))
	case run.StdoutOverflow:
		return fail(TypeOutputLimit, outputLimitMessage(cfg.MaxOutputBytes))
	}
	rep, repErr := parseReport(run.Report)
	if repErr == nil {
		return judgeReport(res, rep, cfg)
	}
	switch {
	case run.MemoryLimitHit:
		return fail(TypeMemoryLimit, memoryLimitMessage(cfg))
	case run.ReportOverflow:
		return fail(TypeOutputLimit, outputLimitMessage(cfg.MaxResultBytes))
	case !run.Ended:
		return res, fmt.Errorf("nsjail did not run the interpreter: %s", lastLines(run.NsjailLog, 5))
	case run.Signal == syscall.SIGXCPU:
		return fail(TypeTimeout, timeoutMessage(cfg))
	case run.Signal != 0:
		return fail(TypeExited, fmt.Sprintf("Script was killed by signal %s", signalName(run.Signal)))
	case len(run.Report) > 0:
		// The script wrote to the report channel itself, or cut the
		// harness's report short.
		return fail(TypeExited, "Script exited without a valid result: it interfered with the result channel")
	default:
		return fail(TypeExited, fmt.Sprintf("Script exited with code %d before main() returned", run.ExitCode))
	}
}

func judgeReport(res Result, rep report, cfg Config) (Result, error) {
	if rep.OK {
		if len(rep.Result) > cfg.MaxResultBytes {
			return res, &Error{Type: TypeOutputLimit, Message: outputLimitMessage(cfg.MaxResultBytes)}
		}
		res.Value = rep.Result
		return res, nil
	}
	e := &Error{Type: rep.ErrorType, Message: truncate(rep.Error, maxErrorText)}
	switch rep.ErrorType {
	case TypeNoMain:
		e.Message = "Script must contain a 'def main()' function"
	case TypeMemoryLimit:
		e.Message = memoryLimitMessage(cfg)
	case TypeOutputLimit:
		e.Message = outputLimitMessage(cfg.MaxResultBytes)
	case TypeException:
		e.Traceback = truncate(rep.Traceback, maxTracebackText)
	}
	return res, e
}

// parseReport checks that data is exactly one report object with a valid
// shape. Numbers stay as their JSON text (never through float64), so big
// integers come back exact.
func parseReport(data []byte) (report, error) {
	if len(data) == 0 {
		return report{}, errReportInvalid
	}
	if !utf8.Valid(data) {
		return report{}, fmt.Errorf("%w: not UTF-8", errReportInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var rep report
	if err := dec.Decode(&rep); err != nil {
		return report{}, fmt.Errorf("%w: %v", errReportInvalid, err)
	}
	if dec.More() {
		return report{}, fmt.Errorf("%w: trailing data", errReportInvalid)
	}
	if rep.OK {
		// Compact also re-validates the value as strict JSON (no NaN).
		var buf bytes.Buffer
		if len(rep.Result) == 0 || json.Compact(&buf, rep.Result) != nil {
			return report{}, fmt.Errorf("%w: result is not JSON", errReportInvalid)
		}
		rep.Result = buf.Bytes()
		return rep, nil
	}
	if !harnessTypes[rep.ErrorType] {
		return report{}, fmt.Errorf("%w: error type %q", errReportInvalid, rep.ErrorType)
	}
	return rep, nil
}

// cleanStdout decodes stdout as the API promises: UTF-8 with invalid bytes
// replaced, trailing newlines removed.
func cleanStdout(b []byte) string {
	return strings.TrimRight(strings.ToValidUTF8(string(b), "\uFFFD"), "\r\n")
}

func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func timeoutMessage(cfg Config) string {
	return fmt.Sprintf("Execution timed out after %d seconds", int(cfg.Timeout.Seconds()))
}

func memoryLimitMessage(cfg Config) string {
	return fmt.Sprintf("Memory limit exceeded (%d MB)", cfg.MemoryBytes>>20)
}

func outputLimitMessage(limit int) string {
	return fmt.Sprintf("Output limit exceeded (%s)", sizeText(limit, " "))
}

// sizeText names n bytes in the largest unit that divides it evenly, with
// sep between number and unit: "1 MB" in limit messages, "100KB" in the
// script-size one, as the API has always written them.
func sizeText(n int, sep string) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d%sMB", n>>20, sep)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d%sKB", n>>10, sep)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

func signalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
