//go:build integration

package adversarial

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// adversarialCase is one hostile script and what the service must answer.
type adversarialCase struct {
	name   string
	script string
	status int
	// errorType is the wanted error_type, empty for a success; "a|b"
	// accepts either where the contract leaves the choice open.
	errorType string
	// check, if set, inspects the answer further.
	check func(t *testing.T, r testsupport.Response)
	// oneShotProtocol: the case attacks what only POST /execute has
	// (oneShotProtocol in spoofing_test.go).
	oneShotProtocol bool
}

// runCases runs every case as a parallel subtest and checks, besides each
// case's own expectations, what holds for every answer: strict JSON, valid
// UTF-8, and never a status that claims a fault of the service.
func runCases(t *testing.T, ts *testsupport.Service, cases []adversarialCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := execute(t, ts, tc.script)
			if r.Status >= 500 {
				t.Fatalf("a script made the service answer %d %s", r.Status, testsupport.Clip(r.Raw))
			}
			if !utf8.Valid(r.Raw) || !json.Valid(r.Raw) {
				t.Errorf("the body is not strict UTF-8 JSON: %q", testsupport.Clip(r.Raw))
			}
			if r.Stdout == nil {
				t.Errorf("the body has no stdout field: %s", testsupport.Clip(r.Raw))
			}
			if asCells && tc.oneShotProtocol {
				return
			}
			if asCells && tc.errorType == "invalid_result" {
				// A cell answers a value without a JSON form as its text.
				if r.Status != 200 || !strings.Contains(string(r.Raw), `"result_format":"text"`) {
					t.Fatalf("as a cell: answered %d %s; want 200 with the value's text form", r.Status, testsupport.Clip(r.Raw))
				}
				return
			}
			if r.Status != tc.status || !slices.Contains(strings.Split(tc.errorType, "|"), r.ErrorType) {
				t.Fatalf("answered %d %q: %s; want %d %q", r.Status, r.ErrorType, testsupport.Clip(r.Raw), tc.status, tc.errorType)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

// Output: floods, invalid UTF-8 and huge or deeply nested results are capped
// and answered as strict JSON, never crash the service or block it.
func TestAdversarialOutput(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_CONCURRENCY": "4", "PYEXEC_TIMEOUT_SECONDS": "20"})
	const stdoutCap = 1 << 20
	runCases(t, ts, []adversarialCase{
		{
			name:   "a stdout flood is an output_limit with the first MiB kept",
			script: "import sys\ndef main():\n    while True:\n        sys.stdout.write('y' * 65536)\n",
			status: 400, errorType: "output_limit",
			check: func(t *testing.T, r testsupport.Response) {
				if n := len(*r.Stdout); n == 0 || n > stdoutCap || strings.Trim(*r.Stdout, "y") != "" {
					t.Errorf("stdout holds %d bytes, want up to %d of the script's own", n, stdoutCap)
				}
				if len(r.Raw) > stdoutCap+64<<10 {
					t.Errorf("the body is %d bytes, want it bounded by the stdout cap", len(r.Raw))
				}
			},
		},
		{
			name:   "a stdout flood through os.write and a child is capped too",
			script: "import subprocess, sys\ndef main():\n    subprocess.run([sys.executable, '-c', 'import os\\nwhile True:\\n    os.write(1, b\"y\\\\n\" * 4096)'])\n",
			status: 400, errorType: "output_limit",
		},
		{
			name:   "a stderr flood is discarded and does not block the script",
			script: "import sys\ndef main():\n    for _ in range(2000):\n        sys.stderr.write('e' * 65536)\n    print('done')\n    return 'ok'\n",
			status: 200,
			check: func(t *testing.T, r testsupport.Response) {
				if *r.Stdout != "done" || string(r.Result) != `"ok"` {
					t.Errorf("answered %s, want result ok and stdout done", testsupport.Clip(r.Raw))
				}
			},
		},
		{
			name:   "invalid UTF-8 on stdout is replaced",
			script: "import os\ndef main():\n    os.write(1, b'a\\xff\\xfeb\\xc3(\\n')\n    return 1\n",
			status: 200,
			check: func(t *testing.T, r testsupport.Response) {
				got := strings.ReplaceAll(*r.Stdout, "\uFFFD\uFFFD", "\uFFFD")
				if got != "a\uFFFDb\uFFFD(" {
					t.Errorf("stdout = %q, want invalid bytes replaced by U+FFFD", *r.Stdout)
				}
			},
		},
		{
			name:   "NUL and control bytes on stdout come back escaped",
			script: "import os\ndef main():\n    os.write(1, b'a\\x00b\\x1b[31mc')\n    return 1\n",
			status: 200,
			check: func(t *testing.T, r testsupport.Response) {
				if *r.Stdout != "a\x00b\x1b[31mc" {
					t.Errorf("stdout = %q", *r.Stdout)
				}
			},
		},
		{
			name:   "a result over the cap is an output_limit",
			script: "def main():\n    return 'x' * (5 << 20)\n",
			status: 400, errorType: "output_limit",
		},
		{
			name:   "a large result under the cap comes back whole",
			script: "def main():\n    return 'x' * (3 << 20)\n",
			status: 200,
			check: func(t *testing.T, r testsupport.Response) {
				if len(r.Result) != 3<<20+2 {
					t.Errorf("result is %d bytes, want %d", len(r.Result), 3<<20+2)
				}
			},
		},
		{
			name:   "a deeply nested result is an invalid_result, not a crash",
			script: "def main():\n    v = []\n    for _ in range(200000):\n        v = [v]\n    return v\n",
			status: 400, errorType: "invalid_result",
		},
		{
			name:   "a self-referencing result is an invalid_result",
			script: "def main():\n    d = {}\n    d['self'] = d\n    return d\n",
			status: 400, errorType: "invalid_result",
		},
		{
			name:   "a huge integer comes back exact",
			script: "def main():\n    return 7 ** 2000\n",
			status: 200,
			check: func(t *testing.T, r testsupport.Response) {
				if len(r.Result) < 1000 || bytes.ContainsAny(r.Result, ".eE") {
					t.Errorf("result %s is not the exact integer", testsupport.Clip(r.Result))
				}
			},
		},
		{
			// Python refuses str() of an int past 4300 digits by default; the
			// contract promises integers of any size back exact.
			name:   "an integer past Python's digit limit comes back exact",
			script: "def main():\n    return [10 ** 5000, -(10 ** 5000)]\n",
			status: 200,
			check: func(t *testing.T, r testsupport.Response) {
				want := "[1" + strings.Repeat("0", 5000) + ",-1" + strings.Repeat("0", 5000) + "]"
				if string(r.Result) != want {
					t.Errorf("result %s, want 10**5000 and its negative exact", testsupport.Clip(r.Raw))
				}
			},
		},
		{
			name:   "a lone surrogate in the result is an invalid_result",
			script: "def main():\n    return {'k': ['\\ud800']}\n",
			status: 400, errorType: "invalid_result",
			check: func(t *testing.T, r testsupport.Response) {
				if !strings.Contains(r.Error, "at result['k'][0]") {
					t.Errorf("error %q does not name the path", r.Error)
				}
			},
		},
		{
			name:   "a huge exception message is truncated",
			script: "def main():\n    raise ValueError('m' * (10 << 20))\n",
			status: 400, errorType: "exception",
			check: func(t *testing.T, r testsupport.Response) {
				if len(r.Error) > 8<<10 || len(r.Traceback) > 128<<10 {
					t.Errorf("error %d bytes and traceback %d bytes, want both capped", len(r.Error), len(r.Traceback))
				}
			},
		},
	})
}
