package jail

import (
	"encoding/json"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pyexec/pyexec/api"
)

// FuzzJudgeReport feeds arbitrary reports, as a hostile script could write
// them to the report channel, to the parser and the judge. They never
// panic; a success always carries strict JSON within the result cap and
// output files that keep their rules; a failure is never one only the
// executor may decide (busy, internal,
// sandbox_unavailable, timeout when there was none); texts stay capped and
// valid UTF-8.
func FuzzJudgeReport(f *testing.F) {
	for _, seed := range []string{
		`{"ok":true,"result":{"answer":4}}`,
		`{"ok":true,"result":123456789012345678901234567890}`,
		`{"ok":false,"error_type":"exception","error":"ValueError: x","traceback":"Traceback"}`,
		`{"ok":false,"error_type":"busy","error":"x"}`,
		`{"ok":false,"error_type":"internal","error":"x"}`,
		`{"ok":false,"error_type":"sandbox_unavailable"}`,
		`{"ok":false,"error_type":"timeout"}`,
		`{"ok":true,"result":NaN}`, `{"ok":true,"result":Infinity}`, `{"ok":true}`, `{"ok":true,"result":null}`,
		`{"ok":true,"result":1}{"ok":true,"result":2}`, "{\"ok\":true,\"result\":\"\xff\"}",
		`{"ok":false,"error_type":"no_main"}`, `{"ok":false,"error_type":"memory_limit","error":"<b>"}`,
		`{"ok":true,"result":"\ud800"}`, `[]`, `null`, ``, `{"ok":"yes"}`,
		`{"ok":true,"result":1,"files":[{"path":"outputs/a.csv","content":"eAo=","bytes":2}]}`,
		`{"ok":true,"result":1,"files":[{"path":"outputs/b","content":"","bytes":0},{"path":"outputs/a","content":"","bytes":0}]}`,
		`{"ok":true,"result":1,"files":[{"path":"outputs/../etc/passwd","content":"","bytes":0}]}`,
		`{"ok":true,"result":1,"files":[{"path":"/etc/passwd","content":"eAo=","bytes":2}]}`,
		`{"ok":true,"result":1,"files":[{"path":"outputs/a","content":"eAo","bytes":2}]}`,
		`{"ok":true,"result":1,"files":[{"path":"outputs/a","content":"eAo=","bytes":5}]}`,
		`{"ok":false,"error_type":"output_limit","error":"Output limit exceeded (more than 100 output files)"}`,
		`{"ok":false,"error_type":"invalid_request","error":"main() cannot take the request's 'input'"}`,
	} {
		f.Add([]byte(seed), false, 0, int8(0))
	}
	cfg := Config{Timeout: 30 * time.Second, MemoryBytes: 512 << 20, MaxOutputBytes: 1 << 20, MaxResultBytes: 64 << 10, MaxOutputFilesBytes: 64 << 10}
	f.Fuzz(func(t *testing.T, data []byte, memoryHit bool, exitCode int, signal int8) {
		if _, err := parseReport(data, cfg); err != nil && !errors.Is(err, errReportInvalid) {
			t.Fatalf("parseReport(%q) error %v, not errReportInvalid", data, err)
		}
		run := jailRun{Report: data, Ended: true, ExitCode: exitCode, MemoryLimitHit: memoryHit, Signal: sigOf(signal)}
		res, err := judge(reportRead(run, cfg), cfg, serviceLimits(cfg))
		if err == nil {
			checkJudgedFiles(t, data, res.Files, cfg)
			if !json.Valid(res.Value) {
				t.Fatalf("judge(%q) succeeded with a value that is not strict JSON: %q", data, res.Value)
			}
			if len(res.Value) > cfg.MaxResultBytes {
				t.Fatalf("judge(%q) succeeded with a %d-byte value past the %d cap", data, len(res.Value), cfg.MaxResultBytes)
			}
			if _, err := json.Marshal(json.RawMessage(res.Value)); err != nil {
				t.Fatalf("judge(%q) value does not marshal: %v", data, err)
			}
			return
		}
		typ := TypeOf(err)
		if typ == api.ErrorTypeTimeout && run.Signal == syscall.SIGXCPU {
			return // the CPU rlimit's signal: the executor's own decision
		}
		switch typ {
		case api.ErrorTypeBusy, api.ErrorTypeInternal, api.ErrorTypeSandboxUnavailable, api.ErrorTypeTimeout:
			t.Fatalf("judge(%q) of an ended jail = %v: a report must never decide %s", data, err, typ)
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("judge(%q) = %v, not an *Error", data, err)
		}
		if len(e.Message) > maxErrorText || len(e.Traceback) > maxTracebackText {
			t.Fatalf("judge(%q): error %d bytes, traceback %d bytes past the caps", data, len(e.Message), len(e.Traceback))
		}
		if !utf8.ValidString(e.Message) || !utf8.ValidString(e.Traceback) {
			t.Fatalf("judge(%q): texts are not UTF-8", data)
		}
	})
}

// checkJudgedFiles fails t unless files are what a success may carry:
// plain paths under outputs/, strictly sorted, within the caps.
func checkJudgedFiles(t *testing.T, data []byte, files []File, cfg Config) {
	t.Helper()
	if len(files) > maxOutputFiles {
		t.Fatalf("judge(%q) returned %d output files, over the cap", data, len(files))
	}
	total := 0
	for i, f := range files {
		if !strings.HasPrefix(f.Path, "outputs/") || PathProblem(f.Path) != "" || (i > 0 && f.Path <= files[i-1].Path) {
			t.Fatalf("judge(%q) returned output file path %q (after %d others)", data, f.Path, i)
		}
		total += len(f.Content)
	}
	if total > cfg.MaxOutputFilesBytes {
		t.Fatalf("judge(%q) returned %d bytes of output files, over the %d cap", data, total, cfg.MaxOutputFilesBytes)
	}
}

// sigOf maps the fuzzer's byte to no signal or a real one.
func sigOf(b int8) syscall.Signal {
	if b <= 0 || b > 31 {
		return 0
	}
	return syscall.Signal(b)
}
