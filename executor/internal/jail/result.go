package jail

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/internal/size"
)

// report is the harness's account of the execution (harness/harness.py).
// It is written by a process the user's code controls, so every field is
// checked before use.
type report struct {
	OK        bool            `json:"ok"`
	Result    json.RawMessage `json:"result"`
	ErrorType api.ErrorType   `json:"error_type"`
	Error     string          `json:"error"`
	Traceback string          `json:"traceback"`
	// Files are the output files of a success.
	Files []reportFile `json:"files"`
	// Display are the rich outputs of a success.
	Display []reportDisplay `json:"display"`
	// ResultText, when JSON true, marks a session cell's result as the
	// text form of a value that has no JSON form (resultText). Anything
	// else marks nothing, and does not make the report invalid.
	ResultText json.RawMessage `json:"result_text"`
}

// resultText tells that the report marks its result as a text form.
func (rep report) resultText() bool { return string(rep.ResultText) == "true" }

// reportDisplay is a rich output as the harness reports it.
type reportDisplay struct {
	Type    string `json:"type"`
	Data    string `json:"data"` // base64 for a PNG, else the text
	Bytes   int    `json:"bytes"`
	decoded []byte // Data, decoded by parseReport
}

// reportFile is an output file as the harness reports it.
type reportFile struct {
	Path    string `json:"path"`
	Content string `json:"content"` // base64
	Bytes   int    `json:"bytes"`
	decoded []byte // Content, decoded by parseReport
}

// Caps on the harness's texts, whatever the harness claims.
const (
	maxErrorText     = 4 << 10
	maxTracebackText = 64 << 10
)

// harnessTypes are the failures the harness may report. Anything else the
// report claims (busy, internal…) is refused: only the executor decides those.
var harnessTypes = map[api.ErrorType]bool{
	api.ErrorTypeInvalidRequest: true, // main's signature does not fit the request's input
	api.ErrorTypeNoMain:         true, api.ErrorTypeSyntaxError: true, api.ErrorTypeException: true, api.ErrorTypeInvalidResult: true,
	api.ErrorTypeMemoryLimit: true, api.ErrorTypeOutputLimit: true, api.ErrorTypeExited: true,
}

// errReportInvalid marks a report that is present but not a valid one.
var errReportInvalid = errors.New("invalid report")

// judge turns what a jail produced into the execution's result or failure.
// lim is the limits the execution ran under, which its messages state.
func judge(run jailRun, cfg Config, lim limits) (Result, error) {
	res := Result{Stdout: cleanStdout(run.Stdout)}
	fail := func(t api.ErrorType, msg string) (Result, error) {
		return res, &Error{Type: t, Message: msg}
	}
	switch {
	case run.TimedOut:
		return fail(api.ErrorTypeTimeout, timeoutMessage(lim))
	case run.StdoutOverflow:
		return fail(api.ErrorTypeOutputLimit, outputLimitMessage(cfg.MaxOutputBytes))
	}
	if run.report != nil {
		return judgeReport(res, *run.report, cfg, lim)
	}
	switch {
	case run.MemoryLimitHit:
		return fail(api.ErrorTypeMemoryLimit, memoryLimitMessage(lim))
	case run.ReportOverflow:
		return fail(api.ErrorTypeOutputLimit, outputLimitMessage(cfg.MaxResultBytes))
	case run.SandboxLost:
		return res, fmt.Errorf("%w: the fork server ended during the execution", ErrSandboxUnavailable)
	case !run.Ended:
		return res, fmt.Errorf("nsjail did not run the interpreter: %s", lastLines(run.NsjailLog, 5))
	case run.Signal == syscall.SIGXCPU:
		return fail(api.ErrorTypeTimeout, timeoutMessage(lim))
	case run.Signal != 0:
		return fail(api.ErrorTypeExited, fmt.Sprintf("Script was killed by signal %s", signalName(run.Signal)))
	case len(run.Report) > 0:
		// The script wrote to the report channel itself, or cut the
		// harness's report short.
		return fail(api.ErrorTypeExited, "Script exited without a valid result: it interfered with the result channel")
	default:
		return fail(api.ErrorTypeExited, fmt.Sprintf("Script exited with code %d before main() returned", run.ExitCode))
	}
}

func judgeReport(res Result, rep report, cfg Config, lim limits) (Result, error) {
	if rep.OK {
		if len(rep.Result) > cfg.MaxResultBytes {
			return res, &Error{Type: api.ErrorTypeOutputLimit, Message: outputLimitMessage(cfg.MaxResultBytes)}
		}
		res.Value = rep.Result
		for _, f := range rep.Files {
			res.Files = append(res.Files, File{Path: f.Path, Content: f.decoded})
		}
		for _, d := range rep.Display {
			res.Display = append(res.Display, Display{Type: d.Type, Data: d.decoded})
		}
		return res, nil
	}
	e := &Error{Type: rep.ErrorType, Message: truncate(rep.Error, maxErrorText)}
	switch rep.ErrorType {
	case api.ErrorTypeNoMain:
		e.Message = "Script must contain a 'def main()' function"
	case api.ErrorTypeMemoryLimit:
		e.Message = memoryLimitMessage(lim)
	case api.ErrorTypeOutputLimit:
		// The harness reports only the output files over a cap; which cap
		// is its word, but the message is the executor's.
		e.Message = outputFilesBytesMessage(cfg.MaxOutputFilesBytes)
		for _, named := range []string{outputFilesCountMessage(), displayCountMessage(), displayBytesMessage(cfg.MaxOutputFilesBytes)} {
			if rep.Error == named {
				e.Message = named
			}
		}
	case api.ErrorTypeException:
		e.Traceback = truncate(rep.Traceback, maxTracebackText)
	}
	return res, e
}

// readReport parses a report that is final: nil when it is not a valid
// one.
func readReport(data []byte, cfg Config) *report {
	rep, err := parseReport(data, cfg)
	if err != nil {
		return nil
	}
	return &rep
}

// parseReport checks that data is exactly one report object with a valid
// shape, its output files within cfg's caps. Numbers stay as their JSON text
// (never through float64), so big integers come back exact.
func parseReport(data []byte, cfg Config) (report, error) {
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
		if err := checkOutputFiles(rep.Files, cfg); err != nil {
			return report{}, fmt.Errorf("%w: %v", errReportInvalid, err)
		}
		if err := checkDisplay(rep.Display, rep.Files, cfg); err != nil {
			return report{}, fmt.Errorf("%w: %v", errReportInvalid, err)
		}
		return rep, nil
	}
	if len(rep.Files) > 0 || len(rep.Display) > 0 {
		return report{}, fmt.Errorf("%w: output files or display with a failure", errReportInvalid)
	}
	if !harnessTypes[rep.ErrorType] {
		return report{}, fmt.Errorf("%w: error type %q", errReportInvalid, rep.ErrorType)
	}
	return rep, nil
}

// checkOutputFiles checks the output files a report claims: plain paths
// under outputs/, strictly sorted (so each once), at most maxOutputFiles,
// valid base64 of the size they state, and all together within the cap.
func checkOutputFiles(files []reportFile, cfg Config) error {
	if len(files) > maxOutputFiles {
		return fmt.Errorf("%d output files", len(files))
	}
	total := 0
	for i, f := range files {
		if !strings.HasPrefix(f.Path, outputsDir+"/") || PathProblem(f.Path) != "" {
			return fmt.Errorf("output file path %q", f.Path)
		}
		if i > 0 && f.Path <= files[i-1].Path {
			return fmt.Errorf("output file %q out of order", f.Path)
		}
		if len(f.Content) > base64.StdEncoding.EncodedLen(cfg.MaxOutputFilesBytes) {
			return fmt.Errorf("output file %q over the cap", f.Path)
		}
		content, err := base64.StdEncoding.DecodeString(f.Content)
		files[i].decoded = content
		if err != nil || len(content) != f.Bytes {
			return fmt.Errorf("output file %q does not hold the %d bytes it states", f.Path, f.Bytes)
		}
		if total += f.Bytes; total > cfg.MaxOutputFilesBytes {
			return fmt.Errorf("output files over %d bytes", cfg.MaxOutputFilesBytes)
		}
	}
	return nil
}

// checkDisplay checks the rich outputs a report claims: at most
// maxDisplayItems, each of a known type, a PNG valid base64 and a text
// valid UTF-8 (the report is), each of the size it states, and within the
// output cap together with the output files.
func checkDisplay(items []reportDisplay, files []reportFile, cfg Config) error {
	if len(items) > maxDisplayItems {
		return fmt.Errorf("%d display items", len(items))
	}
	total := 0
	for _, f := range files {
		total += f.Bytes
	}
	for i, d := range items {
		n := len(d.Data)
		items[i].decoded = []byte(d.Data)
		switch d.Type {
		case DisplayPNG:
			if len(d.Data) > base64.StdEncoding.EncodedLen(cfg.MaxOutputFilesBytes) {
				return fmt.Errorf("display item %d over the cap", i)
			}
			png, err := base64.StdEncoding.DecodeString(d.Data)
			if err != nil {
				return fmt.Errorf("display item %d is not base64", i)
			}
			items[i].decoded = png
			n = len(png)
		case DisplayHTML, DisplayText:
		default:
			return fmt.Errorf("display item %d of type %q", i, d.Type)
		}
		if n != d.Bytes {
			return fmt.Errorf("display item %d does not hold the %d bytes it states", i, d.Bytes)
		}
		if total += n; total > cfg.MaxOutputFilesBytes {
			return fmt.Errorf("display and output files over %d bytes", cfg.MaxOutputFilesBytes)
		}
	}
	return nil
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

func timeoutMessage(lim limits) string {
	return fmt.Sprintf("Execution timed out after %s seconds", SecondsText(lim.timeout))
}

func memoryLimitMessage(lim limits) string {
	return fmt.Sprintf("Memory limit exceeded (%s)", size.Text(lim.memoryBytes, " "))
}

// The output_limit messages of output files; the harness writes the same.
func outputFilesCountMessage() string {
	return fmt.Sprintf("Output limit exceeded (more than %d output files)", maxOutputFiles)
}

func outputFilesBytesMessage(limit int) string {
	return fmt.Sprintf("Output limit exceeded (output files over %s)", size.Text(int64(limit), " "))
}

// The output_limit messages of rich outputs; the harness writes the same.
func displayCountMessage() string {
	return fmt.Sprintf("Output limit exceeded (more than %d display items)", maxDisplayItems)
}

func displayBytesMessage(limit int) string {
	return fmt.Sprintf("Output limit exceeded (display and output files over %s)", size.Text(int64(limit), " "))
}

func outputLimitMessage(limit int) string {
	return fmt.Sprintf("Output limit exceeded (%s)", size.Text(int64(limit), " "))
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
