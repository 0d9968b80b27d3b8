package jail

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pyexec/pyexec/api"

	"github.com/pyexec/pyexec/internal/size"
)

// judgeConfig is the configuration judge reads: limits for the messages.
func judgeConfig() Config {
	return Config{
		Timeout:             30 * time.Second,
		MemoryBytes:         512 << 20,
		MaxOutputBytes:      1 << 20,
		MaxResultBytes:      64 << 10,
		MaxOutputFilesBytes: 8 << 10,
	}
}

func TestParseReportTreatsTheReportAsUntrusted(t *testing.T) {
	tests := []struct {
		name       string
		report     string
		wantErr    bool
		wantResult string // for valid ok reports: the result's text
	}{
		{name: "a success", report: `{"ok":true,"result":{"a":[1,2]}}`, wantResult: `{"a":[1,2]}`},
		{name: "a success with whitespace is compacted", report: "{\"ok\": true, \"result\": { \"a\" : [1, 2] } }\n", wantResult: `{"a":[1,2]}`},
		{name: "big integers are kept as text", report: `{"ok":true,"result":[18446744073709551617,1267650600228229401496703205376]}`, wantResult: `[18446744073709551617,1267650600228229401496703205376]`},
		{name: "exact decimals are kept as text", report: `{"ok":true,"result":0.1000000000000000055511151231257827}`, wantResult: `0.1000000000000000055511151231257827`},
		{name: "a null result", report: `{"ok":true,"result":null}`, wantResult: `null`},
		{name: "a known failure", report: `{"ok":false,"error_type":"exception","error":"ValueError: x","traceback":"t"}`},
		{name: "an empty report", report: ``, wantErr: true},
		{name: "trailing data after the object", report: `{"ok":true,"result":1} {"ok":true,"result":2}`, wantErr: true},
		{name: "trailing garbage", report: `{"ok":true,"result":1}garbage`, wantErr: true},
		{name: "a cut-off report", report: `{"ok":true,"result":[1,2`, wantErr: true},
		{name: "invalid UTF-8", report: "{\"ok\":true,\"result\":\"\xff\"}", wantErr: true},
		{name: "not an object", report: `[{"ok":true,"result":1}]`, wantErr: true},
		{name: "a success without a result", report: `{"ok":true}`, wantErr: true},
		{name: "a NaN result", report: `{"ok":true,"result":NaN}`, wantErr: true},
		{name: "an Infinity result", report: `{"ok":true,"result":[Infinity]}`, wantErr: true},
		{name: "the error type busy, which only the executor decides", report: `{"ok":false,"error_type":"busy","error":"x"}`, wantErr: true},
		{name: "the error type internal", report: `{"ok":false,"error_type":"internal","error":"x"}`, wantErr: true},
		{name: "the error type sandbox_unavailable", report: `{"ok":false,"error_type":"sandbox_unavailable","error":"x"}`, wantErr: true},
		{name: "the error type timeout, which only the executor measures", report: `{"ok":false,"error_type":"timeout","error":"x"}`, wantErr: true},
		{name: "an unknown error type", report: `{"ok":false,"error_type":"made_up","error":"x"}`, wantErr: true},
		{name: "a failure without a type", report: `{"ok":false,"error":"x"}`, wantErr: true},
		{name: "a field of the wrong type", report: `{"ok":"yes","result":1}`, wantErr: true},
		{name: "main's signature not fitting the input", report: `{"ok":false,"error_type":"invalid_request","error":"main() cannot take the request's 'input'"}`},
		{name: "output files", report: `{"ok":true,"result":1,"files":[{"path":"outputs/a.csv","content":"eAox","bytes":3},{"path":"outputs/b/c","content":"","bytes":0}]}`, wantResult: `1`},
		{name: "an output file outside outputs/", report: `{"ok":true,"result":1,"files":[{"path":"data/a.csv","content":"","bytes":0}]}`, wantErr: true},
		{name: "an output file path that climbs out", report: `{"ok":true,"result":1,"files":[{"path":"outputs/../../etc/passwd","content":"","bytes":0}]}`, wantErr: true},
		{name: "an absolute output file path", report: `{"ok":true,"result":1,"files":[{"path":"/tmp/outputs/a","content":"","bytes":0}]}`, wantErr: true},
		{name: "an output file path with a NUL", report: `{"ok":true,"result":1,"files":[{"path":"outputs/a\u0000b","content":"","bytes":0}]}`, wantErr: true},
		{name: "output files out of order", report: `{"ok":true,"result":1,"files":[{"path":"outputs/b","content":"","bytes":0},{"path":"outputs/a","content":"","bytes":0}]}`, wantErr: true},
		{name: "an output file twice", report: `{"ok":true,"result":1,"files":[{"path":"outputs/a","content":"","bytes":0},{"path":"outputs/a","content":"","bytes":0}]}`, wantErr: true},
		{name: "an output file that is not base64", report: `{"ok":true,"result":1,"files":[{"path":"outputs/a","content":"e*o=","bytes":2}]}`, wantErr: true},
		{name: "an output file of another size than it states", report: `{"ok":true,"result":1,"files":[{"path":"outputs/a","content":"eAox","bytes":4}]}`, wantErr: true},
		{name: "output files over the cap together", report: `{"ok":true,"result":1,"files":[{"path":"outputs/a","content":"` + strings.Repeat("AAAA", 1500) + `","bytes":4500},{"path":"outputs/b","content":"` + strings.Repeat("AAAA", 1500) + `","bytes":4500}]}`, wantErr: true},
		{name: "more than 100 output files", report: `{"ok":true,"result":1,"files":[` + manyOutputFiles(101) + `]}`, wantErr: true},
		{name: "output files with a failure", report: `{"ok":false,"error_type":"exception","error":"E","files":[{"path":"outputs/a","content":"","bytes":0}]}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := parseReport([]byte(tt.report), judgeConfig())
			if tt.wantErr {
				if err == nil || !errors.Is(err, errReportInvalid) {
					t.Errorf("parseReport(%q) = %+v, %v; want errReportInvalid", tt.report, rep, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseReport(%q) = %v, want it accepted", tt.report, err)
			}
			if tt.wantResult != "" && string(rep.Result) != tt.wantResult {
				t.Errorf("parseReport(%q).Result = %s, want %s", tt.report, rep.Result, tt.wantResult)
			}
		})
	}
}

func TestJudgeTurnsAJailRunIntoTheAPIOutcome(t *testing.T) {
	cfg := judgeConfig()
	ok := []byte(`{"ok":true,"result":{"answer":4}}`)
	tests := []struct {
		name       string
		run        jailRun
		wantType   api.ErrorType // "" for success
		wantErr    string        // the message's start
		wantResult string
		tighter    *limits // the request's limits; nil: the service's
	}{
		{
			name:       "a valid success report",
			run:        jailRun{Report: ok, Ended: true},
			wantResult: `{"answer":4}`,
		},
		{
			name:     "a timeout wins over a report",
			run:      jailRun{Report: ok, Ended: true, TimedOut: true},
			wantType: api.ErrorTypeTimeout, wantErr: "Execution timed out after 30 seconds",
		},
		{
			name:     "a timeout states a request's tighter limit",
			run:      jailRun{Ended: true, TimedOut: true},
			tighter:  &limits{timeout: 2500 * time.Millisecond, memoryBytes: 512 << 20},
			wantType: api.ErrorTypeTimeout, wantErr: "Execution timed out after 2.5 seconds",
		},
		{
			name:     "the memory limit states a request's tighter limit",
			run:      jailRun{MemoryLimitHit: true, Ended: true, Signal: syscall.SIGKILL},
			tighter:  &limits{timeout: 30 * time.Second, memoryBytes: 64 << 20},
			wantType: api.ErrorTypeMemoryLimit, wantErr: "Memory limit exceeded (64 MB)",
		},
		{
			name:     "too many output files get the executor's message",
			run:      jailRun{Report: []byte(`{"ok":false,"error_type":"output_limit","error":"Output limit exceeded (more than 100 output files)"}`), Ended: true},
			wantType: api.ErrorTypeOutputLimit, wantErr: "Output limit exceeded (more than 100 output files)",
		},
		{
			name:     "any other output_limit report is the output files' size cap",
			run:      jailRun{Report: []byte(`{"ok":false,"error_type":"output_limit","error":"forged"}`), Ended: true},
			wantType: api.ErrorTypeOutputLimit, wantErr: "Output limit exceeded (output files over 8 KB)",
		},
		{
			name:     "main's signature not fitting the input is an invalid request",
			run:      jailRun{Report: []byte(`{"ok":false,"error_type":"invalid_request","error":"main() cannot take the request's 'input' as its one argument"}`), Ended: true},
			wantType: api.ErrorTypeInvalidRequest, wantErr: "main() cannot take the request's 'input'",
		},
		{
			name:     "a stdout overflow wins over a report",
			run:      jailRun{Report: ok, Ended: true, StdoutOverflow: true},
			wantType: api.ErrorTypeOutputLimit, wantErr: "Output limit exceeded (1 MB)",
		},
		{
			name:     "a result over the cap",
			run:      jailRun{Report: []byte(`{"ok":true,"result":"` + strings.Repeat("x", 64<<10) + `"}`), Ended: true},
			wantType: api.ErrorTypeOutputLimit, wantErr: "Output limit exceeded (64 KB)",
		},
		{
			name:     "a report cut off at its cap",
			run:      jailRun{Report: []byte(`{"ok":true,"result":"xxxx`), ReportOverflow: true, Ended: true, Signal: syscall.SIGKILL},
			wantType: api.ErrorTypeOutputLimit, wantErr: "Output limit exceeded (64 KB)",
		},
		{
			name:     "no report and the memory limit reached",
			run:      jailRun{MemoryLimitHit: true, Ended: true, Signal: syscall.SIGKILL},
			wantType: api.ErrorTypeMemoryLimit, wantErr: "Memory limit exceeded (512 MB)",
		},
		{
			name:     "a memory_limit report gets the configured message",
			run:      jailRun{Report: []byte(`{"ok":false,"error_type":"memory_limit","error":"anything"}`), Ended: true},
			wantType: api.ErrorTypeMemoryLimit, wantErr: "Memory limit exceeded (512 MB)",
		},
		{
			name:     "a no_main report gets the fixed message",
			run:      jailRun{Report: []byte(`{"ok":false,"error_type":"no_main","error":"forged text"}`), Ended: true},
			wantType: api.ErrorTypeNoMain, wantErr: "Script must contain a 'def main()' function",
		},
		{
			name:     "a segfault",
			run:      jailRun{Ended: true, Signal: syscall.SIGSEGV},
			wantType: api.ErrorTypeExited, wantErr: "Script was killed by signal SIGSEGV",
		},
		{
			name:     "the CPU limit is a timeout",
			run:      jailRun{Ended: true, Signal: syscall.SIGXCPU},
			wantType: api.ErrorTypeTimeout, wantErr: "Execution timed out after 30 seconds",
		},
		{
			name:     "an exit before a report",
			run:      jailRun{Ended: true, ExitCode: 3},
			wantType: api.ErrorTypeExited, wantErr: "Script exited with code 3 before main() returned",
		},
		{
			name:     "a forged busy report is the script's failure, not the service's",
			run:      jailRun{Report: []byte(`{"ok":false,"error_type":"busy","error":"Service busy"}`), Ended: true},
			wantType: api.ErrorTypeExited, wantErr: "Script exited without a valid result",
		},
		{
			name:     "two reports are no report",
			run:      jailRun{Report: append(append([]byte{}, ok...), ok...), Ended: true},
			wantType: api.ErrorTypeExited, wantErr: "Script exited without a valid result",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := serviceLimits(cfg)
			if tt.tighter != nil {
				lim = *tt.tighter
			}
			res, err := judge(reportRead(tt.run, cfg), cfg, lim)
			if tt.wantType == "" {
				if err != nil || string(res.Value) != tt.wantResult {
					t.Errorf("judge(%s) = %s, %v; want %s", tt.name, res.Value, err, tt.wantResult)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Type != tt.wantType || !strings.HasPrefix(e.Message, tt.wantErr) {
				t.Errorf("judge(%s) = %v, want %s %q", tt.name, err, tt.wantType, tt.wantErr)
			}
			if res.Value != nil {
				t.Errorf("judge(%s) gave a value %s with a failure", tt.name, res.Value)
			}
		})
	}
	t.Run("nsjail failing before the interpreter is an internal error", func(t *testing.T) {
		_, err := judge(jailRun{NsjailLog: "[E] could not mount /proc"}, cfg, serviceLimits(cfg))
		var e *Error
		if err == nil || errors.As(err, &e) || TypeOf(err) != api.ErrorTypeInternal {
			t.Errorf("judge(nsjail failed) = %v, want an internal error the client does not see", err)
		}
	})
}

// reportRead is run as collect returns it: with its report parsed.
func reportRead(run jailRun, cfg Config) jailRun {
	run.report = readReport(run.Report, cfg)
	return run
}

func TestJudgeReturnsTheOutputFilesDecoded(t *testing.T) {
	report := `{"ok":true,"result":null,"files":[{"path":"outputs/a.bin","content":"AP8K","bytes":3},{"path":"outputs/sub/b.csv","content":"eAox","bytes":3}]}`
	res, err := judge(reportRead(jailRun{Report: []byte(report), Ended: true}, judgeConfig()), judgeConfig(), serviceLimits(judgeConfig()))
	if err != nil {
		t.Fatalf("judge(output files) = %v, want success", err)
	}
	want := []File{{Path: "outputs/a.bin", Content: []byte{0, 0xff, '\n'}}, {Path: "outputs/sub/b.csv", Content: []byte("x\n1")}}
	if !reflect.DeepEqual(res.Files, want) {
		t.Errorf("judge(output files).Files = %q, want %q", res.Files, want)
	}
	res, err = judge(reportRead(jailRun{Report: []byte(`{"ok":true,"result":1}`), Ended: true}, judgeConfig()), judgeConfig(), serviceLimits(judgeConfig()))
	if err != nil || res.Files != nil {
		t.Errorf("judge(no output files) = %v, %v; want no files", res.Files, err)
	}
}

// manyOutputFiles is n empty output files, sorted, as report JSON.
func manyOutputFiles(n int) string {
	files := make([]string, n)
	for i := range files {
		files[i] = fmt.Sprintf(`{"path":"outputs/%03d","content":"","bytes":0}`, i)
	}
	return strings.Join(files, ",")
}

func TestJudgeCapsTheHarnessTexts(t *testing.T) {
	report := `{"ok":false,"error_type":"exception","error":"` + strings.Repeat("é", 10000) + `","traceback":"` + strings.Repeat("t", 200<<10) + `"}`
	_, err := judge(reportRead(jailRun{Report: []byte(report), Ended: true}, judgeConfig()), judgeConfig(), serviceLimits(judgeConfig()))
	var e *Error
	if !errors.As(err, &e) || e.Type != api.ErrorTypeException {
		t.Fatalf("judge(a long exception) = %v, want an exception", err)
	}
	if len(e.Message) > maxErrorText || !utf8.ValidString(e.Message) {
		t.Errorf("error text of %d bytes (valid UTF-8: %v), want at most %d, cut at a character", len(e.Message), utf8.ValidString(e.Message), maxErrorText)
	}
	if len(e.Traceback) > maxTracebackText {
		t.Errorf("traceback of %d bytes, want at most %d", len(e.Traceback), maxTracebackText)
	}
}

func TestJudgeKeepsStdoutOnEveryOutcome(t *testing.T) {
	stdout := []byte("line 1\nline \xff2\n\n")
	for _, run := range []jailRun{
		{Stdout: stdout, Report: []byte(`{"ok":true,"result":1}`), Ended: true},
		{Stdout: stdout, TimedOut: true},
		{Stdout: stdout, Ended: true, ExitCode: 1},
		{Stdout: stdout, Ended: true, Report: []byte(`{"ok":false,"error_type":"exception","error":"E"}`)},
	} {
		res, err := judge(reportRead(run, judgeConfig()), judgeConfig(), serviceLimits(judgeConfig()))
		if res.Stdout != "line 1\nline \uFFFD2" {
			t.Errorf("judge(%+v) stdout = %q (err %v), want %q", run, res.Stdout, err, "line 1\nline \uFFFD2")
		}
	}
}

func TestCleanStdout(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"x\n":               "x",
		"x\n\n\n":           "x",
		"x\r\n":             "x",
		"  x  \n":           "  x  ",
		"a\n\nb":            "a\n\nb",
		"\n\nlead":          "\n\nlead",
		"bad \xff byte":     "bad \uFFFD byte",
		"cut \xe2\x82":      "cut \uFFFD",
		"snake 🐍\n":         "snake 🐍",
		"tab\t\n":           "tab\t",
		"nul \x00 kept\n":   "nul \x00 kept",
		"only newlines\n\n": "only newlines",
	} {
		if got := cleanStdout([]byte(in)); got != want {
			t.Errorf("cleanStdout(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseNsjailLogTellsHowTheInterpreterEnded(t *testing.T) {
	tests := []struct {
		log  string
		want jailRun
	}{
		{"[I][2026-01-01T00:00:00+0000] pid=42 ([STANDALONE MODE]) exited with status: 3, (PIDs left: 0)", jailRun{Ended: true, ExitCode: 3}},
		{"[I][2026-01-01T00:00:00+0000] pid=42 ([STANDALONE MODE]) terminated with signal: SIGSEGV (11), (PIDs left: 0)", jailRun{Ended: true, Signal: syscall.SIGSEGV}},
		{"[W][2026-01-01T00:00:00+0000] pid=42 run time >= time limit (35 >= 35) ([STANDALONE MODE]). Killing it\n[I] pid=42 terminated with signal: SIGKILL (9)", jailRun{Ended: true, Signal: syscall.SIGKILL, TimedOut: true}},
		{"[E] Couldn't launch the child process", jailRun{}},
	}
	for _, tt := range tests {
		run := jailRun{NsjailLog: tt.log}
		parseNsjailLog(&run)
		type ending struct {
			ended, timedOut bool
			code            int
			sig             syscall.Signal
		}
		got, want := ending{run.Ended, run.TimedOut, run.ExitCode, run.Signal}, ending{tt.want.Ended, tt.want.TimedOut, tt.want.ExitCode, tt.want.Signal}
		if got != want {
			t.Errorf("parseNsjailLog(%q) = %+v, want %+v", tt.log, got, want)
		}
	}
}

func TestTruncateCutsAtACharacter(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc"},
		{"ééé", 3, "é"},
		{"ééé", 4, "éé"},
		{"bad \xff", 10, "bad \uFFFD"},
	} {
		if got := truncate(tt.in, tt.n); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestTypeOfNamesEveryFailure(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want api.ErrorType
	}{
		{&Error{Type: api.ErrorTypeNoMain}, api.ErrorTypeNoMain},
		{ErrBusy, api.ErrorTypeBusy},
		{ErrSandboxUnavailable, api.ErrorTypeSandboxUnavailable},
		{errors.New("disk full"), api.ErrorTypeInternal},
	} {
		if got := TypeOf(tt.err); got != tt.want {
			t.Errorf("TypeOf(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}

func TestSizeTextNamesTheUnitThatDividesEvenly(t *testing.T) {
	for n, want := range map[int]string{100 * 1024: "100KB", 1 << 20: "1MB", 1000: "1000 bytes", 1536: "1536 bytes"} {
		if got := size.Text(int64(n), ""); got != want {
			t.Errorf("size.Text(%d) = %q, want %q", n, got, want)
		}
	}
	for n, want := range map[int]string{1 << 20: "Output limit exceeded (1 MB)", 64 << 10: "Output limit exceeded (64 KB)", 1000: "Output limit exceeded (1000 bytes)"} {
		if got := outputLimitMessage(n); got != want {
			t.Errorf("outputLimitMessage(%d) = %q, want %q", n, got, want)
		}
	}
}
