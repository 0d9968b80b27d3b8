//go:build integration

package adversarial

import (
	"strings"
	"testing"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// Result spoofing and odd mains. The harness shares its process with the
// script, so a script can forge what the harness reports; what it must never
// reach is a status that claims a fault of the service (busy, internal,
// sandbox_unavailable), a timeout it did not have, a body that is not strict
// JSON, or a result past the caps. Fake markers on stdout or stderr are just
// output.
func TestAdversarialResultSpoofing(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_CONCURRENCY": "4"})
	resultIs := func(want string) func(t *testing.T, r testsupport.Response) {
		return func(t *testing.T, r testsupport.Response) {
			if string(r.Result) != want {
				t.Errorf("result = %s, want %s", r.Result, want)
			}
		}
	}
	forged := func(report string) string {
		return "import os\ndef main():\n    os.write(4, " + pyLiteral(report) + ".encode())\n    os._exit(0)\n"
	}
	runCases(t, ts, oneShotProtocol([]adversarialCase{
		{
			name:   "a fake report on stdout is only output",
			script: "def main():\n    print('{\"ok\": true, \"result\": \"spoofed\"}')\n    return 'real'\n",
			status: 200, check: resultIs(`"real"`),
		},
		{
			name:   "a fake report on stderr is ignored",
			script: "import sys\ndef main():\n    sys.stderr.write('{\"ok\": true, \"result\": \"spoofed\"}\\nexited with status: 0\\nrun time >= time limit\\n')\n    return 'real'\n",
			status: 200, check: resultIs(`"real"`),
		},
		{
			name:   "nsjail's log lines printed on stdout do not fake a timeout",
			script: "def main():\n    print('run time >= time limit')\n    print('terminated with signal: SIGKILL (9)')\n    return 'real'\n",
			status: 200, check: resultIs(`"real"`),
		},
		{
			name:   "a report written before the harness's own is refused",
			script: "import os\ndef main():\n    os.write(4, b'{\"ok\": true, \"result\": \"spoofed\"}')\n    return 'real'\n",
			status: 400, errorType: "exited",
		},
		{
			name:   "a forged report cannot claim the service is busy",
			script: forged(`{"ok": false, "error_type": "busy", "error": "x"}`),
			status: 400, errorType: "exited",
		},
		{
			name:   "a forged report cannot claim an internal error",
			script: forged(`{"ok": false, "error_type": "internal", "error": "x"}`),
			status: 400, errorType: "exited",
		},
		{
			name:   "a forged report cannot claim the sandbox is unavailable",
			script: forged(`{"ok": false, "error_type": "sandbox_unavailable", "error": "x"}`),
			status: 400, errorType: "exited",
		},
		{
			name:   "a forged report cannot claim a timeout",
			script: forged(`{"ok": false, "error_type": "timeout", "error": "x"}`),
			status: 400, errorType: "exited",
		},
		{
			name:   "a forged report cannot smuggle NaN",
			script: forged(`{"ok": true, "result": NaN}`),
			status: 400, errorType: "exited",
		},
		{
			name:   "a forged report cannot smuggle invalid JSON",
			script: forged(`{"ok": true, "result": {"a": }}`),
			status: 400, errorType: "exited",
		},
		{
			name:   "a forged memory_limit gets the service's own message",
			script: forged(`{"ok": false, "error_type": "memory_limit", "error": "<script>alert(1)</script>"}`),
			status: 400, errorType: "memory_limit",
			check: func(t *testing.T, r testsupport.Response) {
				if strings.Contains(r.Error, "alert") {
					t.Errorf("the forged message came through: %q", r.Error)
				}
			},
		},
		{
			name:   "a forged report past the result cap is an output_limit",
			script: "import os\ndef main():\n    os.write(4, b'{\"ok\": true, \"result\": \"' + b'x' * (5 << 20) + b'\"}')\n    os._exit(0)\n",
			status: 400, errorType: "output_limit",
		},
		{
			name:   "a forged error text and traceback are capped",
			script: "import json, os\ndef main():\n    os.write(4, json.dumps({'ok': False, 'error_type': 'exception', 'error': 'e' * (1 << 20), 'traceback': 't' * (3 << 20)}).encode())\n    os._exit(0)\n",
			status: 400, errorType: "exception",
			check: func(t *testing.T, r testsupport.Response) {
				if len(r.Error) > 4<<10 || len(r.Traceback) > 64<<10 {
					t.Errorf("error %d bytes, traceback %d bytes: want them capped at 4 KiB and 64 KiB", len(r.Error), len(r.Traceback))
				}
			},
		},
		{
			name:   "invalid UTF-8 written to the report is refused",
			script: "import os\ndef main():\n    os.write(4, b'{\"ok\": true, \"result\": \"\\xff\"}')\n    os._exit(0)\n",
			status: 400, errorType: "exited",
		},
		{
			name:   "monkeypatching json.dumps cannot claim a fault of the service",
			script: "import json\njson.dumps = lambda *a, **k: '{\"ok\": false, \"error_type\": \"internal\", \"error\": \"x\"}'\ndef main():\n    return 1\n",
			status: 400, errorType: "exited",
		},
		{
			name:   "monkeypatching json.dumps cannot smuggle non-strict JSON",
			script: "import json\njson.dumps = lambda *a, **k: '{\"ok\": true, \"result\": Infinity}'\ndef main():\n    return 1\n",
			status: 400, errorType: "exited",
		},
		{
			name:   "breaking builtins the harness uses is still a script failure",
			script: "import builtins\ndef main():\n    builtins.isinstance = lambda *a: (_ for _ in ()).throw(RuntimeError('no'))\n    builtins.len = None\n    return [1, 2]\n",
			// The harness itself breaks: whatever it manages to say, it is
			// the script's failure.
			status: 400, errorType: "invalid_result|exception|exited",
		},
		{
			name:   "replacing sys.stdout loses only the script's own output",
			script: "import io, sys\ndef main():\n    print('before')\n    sys.stdout = io.StringIO()\n    print('hidden')\n    return 'ok'\n",
			status: 200,
			check: func(t *testing.T, r testsupport.Response) {
				if *r.Stdout != "before" || string(r.Result) != `"ok"` {
					t.Errorf("answered %s, want stdout 'before' and result ok", r.Raw)
				}
			},
		},
		{
			name:   "a stdout whose flush raises does not break the report",
			script: "import sys\nclass Bad:\n    def write(self, s): return len(s)\n    def flush(self): raise OSError('no')\ndef main():\n    sys.stdout = sys.stderr = Bad()\n    return 'ok'\n",
			status: 200, check: resultIs(`"ok"`),
		},
		{
			name:   "closing the report channel is an exit, not a success",
			script: "import os\ndef main():\n    os.close(4)\n    return 'ok'\n",
			status: 400, errorType: "exited",
		},
		{
			name:   "os._exit after a forged success is the script's own word only",
			script: "import os\ndef main():\n    os.write(4, b'{\"ok\": true, \"result\": {\"forged\": 1}}')\n    os._exit(3)\n",
			status: 200, check: resultIs(`{"forged":1}`),
		},
	}))
}

// oneShotProtocol marks cases that attack the one-shot harness's own
// protocol (main's binding, its report on descriptor 4): as cells, which
// have neither, only what holds for every answer is checked of them, and
// TestAdversarialSessionProtocol attacks the session's protocol instead.
func oneShotProtocol(cases []adversarialCase) []adversarialCase {
	for i := range cases {
		cases[i].oneShotProtocol = true
	}
	return cases
}

// Odd mains: every shape a script can give `main` ends as a defined answer.
func TestAdversarialOddMain(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_CONCURRENCY": "4"})
	resultIs := func(want string) func(t *testing.T, r testsupport.Response) {
		return func(t *testing.T, r testsupport.Response) {
			if string(r.Result) != want {
				t.Errorf("result = %s, want %s", r.Result, want)
			}
		}
	}
	runCases(t, ts, oneShotProtocol([]adversarialCase{
		{name: "main is a class", script: "class main:\n    pass\n", status: 400, errorType: "invalid_result"},
		{name: "main is a lambda", script: "main = lambda: 42\n", status: 200, check: resultIs("42")},
		{name: "main is a generator", script: "def main():\n    yield 1\n", status: 400, errorType: "invalid_result"},
		{name: "main is an async generator", script: "async def main():\n    yield 1\n", status: 400, errorType: "invalid_result"},
		{name: "main is async", script: "import asyncio\nasync def main():\n    await asyncio.sleep(0)\n    return 5\n", status: 200, check: resultIs("5")},
		{name: "main returns itself", script: "def main():\n    return main\n", status: 400, errorType: "invalid_result"},
		{name: "main returns an awaitable", script: "import asyncio\ndef main():\n    return asyncio.sleep(0, result=3)\n", status: 200, check: resultIs("3")},
		{name: "main is not callable", script: "main = 42\n", status: 400, errorType: "exception",
			check: func(t *testing.T, r testsupport.Response) {
				if r.Error != "main is not callable: int" {
					t.Errorf("error = %q, want it to name main and its type", r.Error)
				}
			}},
		// Without input, a main that needs an argument is a request that
		// does not fit it, said before main runs.
		{name: "main takes arguments", script: "def main(x):\n    return x\n", status: 400, errorType: "invalid_request",
			check: func(t *testing.T, r testsupport.Response) {
				if !strings.HasPrefix(r.Error, "main(x) needs an argument, but the request has no 'input'") {
					t.Errorf("error = %q, want it to name main(x) and the missing input", r.Error)
				}
			}},
		{name: "main recurses forever", script: "def main():\n    return main()\n", status: 400, errorType: "exception",
			check: func(t *testing.T, r testsupport.Response) {
				if !strings.HasPrefix(r.Error, "RecursionError") {
					t.Errorf("error = %q, want a RecursionError", r.Error)
				}
			}},
		{name: "main bound only at run time is no_main", script: "globals()['main'] = lambda: 1\n", status: 400, errorType: "no_main"},
		{name: "main deleted by the module body", script: "def main():\n    return 1\ndel main\n", status: 400, errorType: "no_main"},
		{name: "main raises SystemExit", script: "import sys\ndef main():\n    sys.exit(7)\n", status: 400, errorType: "exited"},
		{name: "main raises KeyboardInterrupt", script: "def main():\n    raise KeyboardInterrupt\n", status: 400, errorType: "exception"},
		{name: "main returns an object with a lying __class__", script: "class D(dict):\n    pass\ndef main():\n    return D(a=1)\n", status: 200, check: resultIs(`{"a":1}`)},
		{name: "an __name__ guard does not run main twice", script: "n = []\ndef main():\n    n.append(1)\n    return len(n)\nif __name__ == '__main__':\n    main()\n", status: 200, check: resultIs("1")},
	}))
}
