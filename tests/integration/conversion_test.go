//go:build integration

package integration

import (
	"math/big"
	"strings"
	"testing"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// How a script is run and how its return value and output come back
// (docs/api.md, "POST /execute").

func TestScriptsRunAsSpecified(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_QUEUE": "64"})
	tests := []struct {
		name       string
		script     string
		wantResult string
		wantStdout string
	}{
		{
			name:       "a __main__ guard does not fire and main runs exactly once",
			script:     "print('module')\n\ndef main():\n    print('main')\n    return __name__\n\nif __name__ == '__main__':\n    main()\n",
			wantResult: `"__script__"`,
			wantStdout: "module\nmain",
		},
		{
			name:       "async def main is awaited",
			script:     "import asyncio\n\nasync def main():\n    await asyncio.sleep(0.01)\n    print('awaited')\n    return {'async': True}\n",
			wantResult: `{"async":true}`,
			wantStdout: "awaited",
		},
		{
			name:       "main bound by assignment to a lambda",
			script:     "main = lambda: [1, 2, 3]\n",
			wantResult: `[1,2,3]`,
		},
		{
			name:       "main bound by assignment to another function",
			script:     "def compute():\n    return 'computed'\n\nmain = compute\n",
			wantResult: `"computed"`,
		},
		{
			name:       "main bound by import",
			script:     "from os import getcwd as main\n",
			wantResult: `"/tmp"`,
		},
		{
			name:       "main bound inside if and try at the top level",
			script:     "try:\n    import numpy\nexcept ImportError:\n    pass\nelse:\n    def main():\n        return 'numpy'\n",
			wantResult: `"numpy"`,
		},
		{
			name:       "main may return null",
			script:     "def main():\n    print('side effect only')\n",
			wantResult: `null`,
			wantStdout: "side effect only",
		},
		{
			name:       "os works as on Linux",
			script:     "import os\n\ndef main():\n    return [os.name, os.cpu_count() > 0, os.getcwd(), os.environ['HOME']]\n",
			wantResult: `["posix",true,"/tmp","/tmp"]`,
		},
		{
			name:       "threads and subprocess work",
			script:     "import subprocess, sys, threading\n\ndef main():\n    out = []\n    t = threading.Thread(target=lambda: out.append('thread'))\n    t.start(); t.join()\n    p = subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True, text=True)\n    return out + [p.stdout.strip()]\n",
			wantResult: `["thread","42"]`,
		},
		{
			name:       "a forked child that leaves by sys.exit ends alone",
			script:     "import os, sys\n\ndef main():\n    pid = os.fork()\n    if pid == 0:\n        print('child')\n        sys.exit(3)\n    _, status = os.waitpid(pid, 0)\n    return ['parent', os.waitstatus_to_exitcode(status)]\n",
			wantResult: `["parent",3]`,
			wantStdout: "child",
		},
		{
			name:       "a forked child that raises or returns ends alone",
			script:     "import os\n\ndef main():\n    if os.fork() == 0:\n        raise ValueError('in child')\n    raised = os.waitstatus_to_exitcode(os.wait()[1])\n    if os.fork() == 0:\n        return 'child result'\n    returned = os.waitstatus_to_exitcode(os.wait()[1])\n    return [raised, returned]\n",
			wantResult: `[1,0]`,
		},
		{
			name:       "multiprocessing works",
			script:     "import multiprocessing as mp\n\ndef square(x):\n    return x * x\n\ndef main():\n    with mp.get_context('fork').Pool(2) as pool:\n        return pool.map(square, [1, 2, 3])\n",
			wantResult: `[1,4,9]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkOK(t, tt.name, ts.Execute(t, tt.script), tt.wantResult, tt.wantStdout)
		})
	}
	t.Run("input() raises EOFError at once", func(t *testing.T) {
		t.Parallel()
		r := ts.Execute(t, "def main():\n    print('asking')\n    return input('name? ')\n")
		checkFailure(t, "input()", r, failure{400, "exception", "EOFError"})
		if !strings.HasPrefix(deref(r.Stdout), "asking") {
			t.Errorf("stdout = %q, want it to start with what was printed before input()", deref(r.Stdout))
		}
	})
}

func TestReturnValuesConvertToExactJSON(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_QUEUE": "64"})
	tests := []struct {
		name, expr, want, import_ string // main() returns expr; want is the result's exact text
	}{
		{name: "an object", expr: "{'a': 1, 'b': [True, False, None], 'c': 'text'}", want: `{"a":1,"b":[true,false,null],"c":"text"}`},
		{name: "a bare string", expr: "'just a string'", want: `"just a string"`},
		{name: "a bare number", expr: "42", want: `42`},
		{name: "a bare float", expr: "0.1", want: `0.1`},
		{name: "a bool", expr: "True", want: `true`},
		{name: "an empty list", expr: "[]", want: `[]`},
		{name: "2**100 exactly", expr: "2**100", want: `1267650600228229401496703205376`},
		{name: "2**64+1 not rounded through a float", expr: "2**64 + 1", want: `18446744073709551617`},
		{name: "a negative big int in a list", expr: "[-(2**70) - 3]", want: `[-1180591620717411303427]`},
		{name: "a large float", expr: "1e300", want: `1e+300`},
		{name: "tuples become arrays", expr: "(1, (2, 3), [(4,)])", want: `[1,[2,3],[[4]]]`},
		{name: "int, float, bool and None dict keys become strings", expr: "{1: 'a', 2.5: 'b', False: 'c', None: 'd'}", want: `{"1":"a","2.5":"b","false":"c","null":"d"}`},
		{name: "unicode and HTML characters come back verbatim", expr: "'héllo ✓ <b>&</b>'", want: `"héllo ✓ <b>&</b>"`},
		{name: "a bool subclass stays a bool", expr: "[True, 1]", want: `[true,1]`},
		{name: "numpy integer scalars become numbers", import_: "import numpy as np", expr: "[np.int64(7), np.uint8(255), np.int32(-3)]", want: `[7,255,-3]`},
		{name: "numpy float scalars become numbers", import_: "import numpy as np", expr: "[np.float64(1.5), np.float32(0.25)]", want: `[1.5,0.25]`},
		{name: "numpy bools become bools", import_: "import numpy as np", expr: "np.bool_(True)", want: `true`},
		{name: "numpy arrays become nested lists", import_: "import numpy as np", expr: "np.arange(6).reshape(2, 3)", want: `[[0,1,2],[3,4,5]]`},
		{name: "numpy values inside containers", import_: "import numpy as np", expr: "{'mean': np.mean([1, 2]), 'v': np.array([0.5])}", want: `{"mean":1.5,"v":[0.5]}`},
		{name: "a big numpy uint64 exactly", import_: "import numpy as np", expr: "np.uint64(2**64 - 1)", want: `18446744073709551615`},
		{name: "pandas converted by the user", import_: "import pandas as pd", expr: "pd.DataFrame({'a': [1, 2]}).to_dict(orient='records')", want: `[{"a":1},{"a":2}]`},
	}
	// 2000! has 5736 digits, over Python's default limit of 4300 for
	// turning an integer into text.
	factorial := big.NewInt(1).MulRange(1, 2000).String()
	tests = append(tests,
		struct{ name, expr, want, import_ string }{name: "2000! exactly, beyond Python's 4300-digit text limit", import_: "import math", expr: "math.factorial(2000)", want: factorial},
		struct{ name, expr, want, import_ string }{name: "a 5000-digit dict key exactly", expr: "{10**5000: 1}", want: `{"1` + strings.Repeat("0", 5000) + `":1}`},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			script := tt.import_ + "\n\ndef main():\n    return " + tt.expr + "\n"
			r := ts.Execute(t, script)
			checkOK(t, tt.name, r, tt.want, "")
			// The raw response text, not a decoded value: a big integer
			// rounded through a float would decode to the same float64.
			if !strings.Contains(string(r.Raw), `"result":`+tt.want) {
				t.Errorf("response text %s does not hold the result %s verbatim", testsupport.Clip(r.Raw), tt.want)
			}
		})
	}
}

func TestReturnValuesThatAreNotJSONAreInvalidResult(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_QUEUE": "64"})
	const prefix = "main() must return a JSON-serializable object: "
	tests := []struct {
		name      string
		body      string // main's body
		wantError string // the whole error text
	}{
		{"NaN at the top", "return float('nan')", prefix + "NaN is not allowed at result"},
		{"Infinity in a list", "return [1, float('inf')]", prefix + "Infinity is not allowed at result[1]"},
		{"-Infinity deep in objects", "return {'a': {'b': [0, {'c': -float('inf')}]}}", prefix + "Infinity is not allowed at result['a']['b'][1]['c']"},
		{"NaN in a numpy array", "import numpy as np\n    return {'v': np.array([1.0, np.nan])}", prefix + "NaN is not allowed at result['v'][1]"},
		{"a numpy NaN scalar", "import numpy as np\n    return [np.float64('nan')]", prefix + "NaN is not allowed at result[0]"},
		{"a NaN dict key", "return {float('nan'): 1}", prefix + "NaN is not allowed at result"},
		{"a set", "return {'tags': {1, 2}}", prefix + "set is not JSON serializable at result['tags']"},
		{"bytes", "return [b'raw']", prefix + "bytes is not JSON serializable at result[0]"},
		{"an arbitrary object", "class Point:\n        pass\n    return {'p': Point()}", prefix + "Point is not JSON serializable at result['p']"},
		{"a function", "return main", prefix + "function is not JSON serializable at result"},
		{"a pandas DataFrame, with a hint", "import pandas as pd\n    return {'df': pd.DataFrame({'a': [1]})}", prefix + `pandas DataFrame is not JSON serializable (use df.to_dict(orient="records")) at result['df']`},
		{"a pandas Series, with a hint", "import pandas as pd\n    return pd.Series([1, 2])", prefix + "pandas Series is not JSON serializable (use series.tolist() or series.to_dict()) at result"},
		{"a tuple dict key", "return {(1, 2): 'pair'}", prefix + "dict key of type tuple is not allowed at result"},
		{"a circular list", "x = []\n    x.append(x)\n    return x", prefix + "circular reference at result[0]"},
		{"a complex number", "return 1j", prefix + "complex is not JSON serializable at result"},
		{"an integer of over 100,000 digits", "return [1, 10**100000]", prefix + "integer of more than 100000 digits at result[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := ts.Execute(t, "def main():\n    "+tt.body+"\n")
			checkFailure(t, tt.name, r, failure{400, "invalid_result", tt.wantError})
			if r.Error != tt.wantError {
				t.Errorf("POST /execute %s: error = %q, want %q", tt.name, r.Error, tt.wantError)
			}
		})
	}
}

func TestStdoutComesBackAsPrinted(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_QUEUE": "64"})
	tests := []struct {
		name       string
		script     string
		wantStdout string
	}{
		{"trailing newlines are removed", "def main():\n    print('x')\n    print()\n    print()\n", "x"},
		{"inner newlines and spaces are kept", "def main():\n    print('  a\\n\\nb  ')\n", "  a\n\nb  "},
		{"module level and main output in order", "print('one')\n\ndef main():\n    print('two')\n", "one\ntwo"},
		{"an invalid UTF-8 byte is replaced", "import sys\n\ndef main():\n    sys.stdout.flush()\n    sys.stdout.buffer.write(b'ok \\xff end\\n')\n", "ok \uFFFD end"},
		{"a cut-off UTF-8 sequence at the end is replaced", "import sys\n\ndef main():\n    sys.stdout.flush()\n    sys.stdout.buffer.write(b'cut \\xe2\\x82')\n", "cut \uFFFD"},
		{"unicode is kept", "def main():\n    print('héllo ✓ 🐍')\n", "héllo ✓ 🐍"},
		{"output of a subprocess is included", "import subprocess, sys\n\ndef main():\n    subprocess.run([sys.executable, '-c', 'print(\"from child\")'])\n", "from child"},
		{"stderr is not part of stdout", "import sys\n\ndef main():\n    print('out')\n    print('err', file=sys.stderr)\n", "out"},
		{"a replaced sys.stdout does not break the answer", "import io, sys\n\ndef main():\n    print('kept')\n    sys.stdout = io.StringIO()\n    print('swallowed')\n", "kept"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkOK(t, tt.name, ts.Execute(t, tt.script), "null", tt.wantStdout)
		})
	}
	t.Run("stdout printed before an exception is kept", func(t *testing.T) {
		t.Parallel()
		r := ts.Execute(t, "def main():\n    print('step 1')\n    print('step 2')\n    raise RuntimeError('failed at step 3')\n")
		checkFailure(t, "an exception after output", r, failure{400, "exception", "RuntimeError: failed at step 3"})
		if got := deref(r.Stdout); got != "step 1\nstep 2" {
			t.Errorf("stdout = %q, want %q", got, "step 1\nstep 2")
		}
	})
}
