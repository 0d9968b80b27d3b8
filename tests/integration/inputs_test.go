//go:build integration

package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// The request extensions (docs/api.md, "Input, files and limits"): input, stdin,
// files, output files and limits, each over real HTTP with the real
// sandbox, in every mode, since each mode starts its jails differently and
// sets their limits its own way.

// extensionsEnv is the service the tests run against: a 10-second wall
// clock and 512 MiB of memory (the default) to tighten, and a 1 MiB cap on
// output files, so that going past it is cheap.
func extensionsEnv(mode string) map[string]string {
	return map[string]string{
		"PYEXEC_MODE":                   mode,
		"PYEXEC_TIMEOUT_SECONDS":        "10",
		"PYEXEC_QUEUE":                  "64",
		"PYEXEC_MAX_OUTPUT_FILES_BYTES": "1048576",
	}
}

// post sends body, the JSON of fields, to /execute.
func post(t *testing.T, ts *testsupport.Service, fields map[string]any) testsupport.Response {
	t.Helper()
	body, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return ts.Post(t, "/execute", "application/json", body)
}

// textFile and binaryFile are input files as a request carries them.
func textFile(path, content string) map[string]any {
	return map[string]any{"path": path, "content": content}
}

func binaryFile(path string, content []byte) map[string]any {
	return map[string]any{"path": path, "content": base64.StdEncoding.EncodeToString(content), "encoding": "base64"}
}

// checkFiles fails t unless r's output files are want (path to content),
// in path order, each with its size and encoding.
func checkFiles(t *testing.T, what string, r testsupport.Response, want [][2]string) {
	t.Helper()
	var got [][2]string
	for _, f := range r.Files {
		content, err := base64.StdEncoding.DecodeString(f.Content)
		if err != nil || f.Encoding != api.EncodingBase64 || f.Bytes != len(content) {
			t.Errorf("%s: output file %+v: encoding %q, %d bytes stated, content decodes to %d bytes (%v)", what, f, f.Encoding, f.Bytes, len(content), err)
		}
		got = append(got, [2]string{f.Path, string(content)})
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: output files = %q, want %q (answer %s)", what, got, want, testsupport.Clip(r.Raw))
	}
}

func TestRequestExtensionsInEveryMode(t *testing.T) {
	for _, mode := range []string{"cold", "pool", "fork"} {
		t.Run(mode, func(t *testing.T) {
			ts := testsupport.StartService(t, extensionsEnv(mode))
			// The group returns once its parallel subtests are done.
			t.Run("group", func(t *testing.T) {
				runExtensionChecks(t, ts)
				runRejectionChecks(t, ts)
			})
			checkRecovered(t, ts)
		})
	}
}

// runExtensionChecks runs what each field does, in parallel subtests.
func runExtensionChecks(t *testing.T, ts *testsupport.Service) {
	parallel := func(name string, check func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			check(t)
		})
	}

	// Not in parallel with the rest, so that no execution of this test's
	// own waits in the queue and the time taken is the limit's.
	t.Run("timeout_seconds tightens the wall clock and the message states it", func(t *testing.T) {
		script := "import time\n\ndef main():\n    print('started')\n    time.sleep(30)\n"
		for _, tt := range []struct {
			limit float64
			want  string
		}{{3, "Execution timed out after 3 seconds"}, {2.5, "Execution timed out after 2.5 seconds"}} {
			start := time.Now()
			r := post(t, ts, map[string]any{"script": script, "limits": map[string]any{"timeout_seconds": tt.limit}})
			took := time.Since(start)
			checkFailure(t, fmt.Sprintf("timeout_seconds %v", tt.limit), r, failure{400, "timeout", tt.want})
			// The service's own limit is 10 s; the request's ends it before.
			if deref(r.Stdout) != "started" || took > 9*time.Second {
				t.Errorf("timeout_seconds %v: stdout %q after %v, want started, before the service's 10 s", tt.limit, deref(r.Stdout), took)
			}
		}
	})

	parallel("pandas reads an uploaded CSV with input parameters and writes outputs/summary.csv", func(t *testing.T) {
		script := `import pandas as pd

def main(params):
    df = pd.read_csv("data/sales.csv")
    kept = df[df.amount >= params["min_amount"]]
    summary = kept.groupby("region", as_index=False)["amount"].sum().sort_values("region")
    summary.to_csv("outputs/summary.csv", index=False)
    print(f"kept {len(kept)} of {len(df)} rows")
    return {"rows": int(len(kept)), "total": int(kept.amount.sum())}
`
		r := post(t, ts, map[string]any{
			"script": script,
			"input":  map[string]any{"min_amount": 3},
			"files":  []any{textFile("data/sales.csv", "region,amount\nnorth,5\nsouth,1\nnorth,7\nsouth,3\neast,2\n")},
		})
		checkOK(t, "the pandas CSV flow", r, `{"rows":3,"total":15}`, "kept 3 of 5 rows")
		checkFiles(t, "the pandas CSV flow", r, [][2]string{{"outputs/summary.csv", "region,amount\nnorth,12\nsouth,3\n"}})
	})

	parallel("a base64 file comes in and goes back out byte for byte", func(t *testing.T) {
		var blob []byte
		for i := 0; i < 4; i++ {
			for b := 0; b < 256; b++ {
				blob = append(blob, byte(b))
			}
		}
		sum := sha256.Sum256(blob)
		script := `import hashlib, shutil

def main():
    with open("in/blob.bin", "rb") as f:
        data = f.read()
    shutil.copyfile("in/blob.bin", "outputs/copy.bin")
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
`
		r := post(t, ts, map[string]any{"script": script, "files": []any{binaryFile("in/blob.bin", blob)}})
		checkOK(t, "a binary round trip", r, fmt.Sprintf(`{"bytes":1024,"sha256":%q}`, hex.EncodeToString(sum[:])), "")
		checkFiles(t, "a binary round trip", r, [][2]string{{"outputs/copy.bin", string(blob)}})
	})

	parallel("stdin reaches input() and sys.stdin", func(t *testing.T) {
		script := "import sys\n\ndef main():\n    first = input()\n    return [first, sys.stdin.read()]\n"
		r := post(t, ts, map[string]any{"script": script, "stdin": "héllo\nsecond line\n"})
		checkOK(t, "stdin", r, `["héllo","second line\n"]`, "")
	})

	parallel("input arrives exactly, big integers and nesting included", func(t *testing.T) {
		input := `{"big":123456789012345678901234567890,"neg":-1,"nested":{"list":[1,2.5,null,true,"s"]}}`
		r := ts.Post(t, "/execute", "application/json", []byte(`{"script": "def main(data):\n    return data\n", "input": `+input+`}`))
		checkOK(t, "exact input", r, input, "")
	})

	parallel("a null input is an input", func(t *testing.T) {
		r := post(t, ts, map[string]any{"script": "def main(data):\n    return data is None\n", "input": nil})
		checkOK(t, "a null input", r, "true", "")
	})

	parallel("main that takes no argument given input is an invalid request naming main", func(t *testing.T) {
		r := post(t, ts, map[string]any{"script": "def main():\n    return 1\n", "input": 1})
		checkFailure(t, "input to main()", r, failure{400, "invalid_request", "main() cannot take the request's 'input' as its one argument"})
	})

	parallel("main that needs an argument given no input is an invalid request naming main", func(t *testing.T) {
		r := post(t, ts, map[string]any{"script": "def main(data, *, scale=1):\n    return 1\n", "files": []any{textFile("a.txt", "x")}})
		checkFailure(t, "no input to main(data)", r, failure{400, "invalid_request", "main(data, *, scale=1) needs an argument, but the request has no 'input'"})
	})

	parallel("main = 5 says main is not callable", func(t *testing.T) {
		r := ts.Execute(t, "main = 5\n")
		checkFailure(t, "main = 5", r, failure{400, "exception", "main is not callable: int"})
	})

	parallel("an internet socket says the sandbox has no network", func(t *testing.T) {
		r := ts.Execute(t, "import socket\n\ndef main():\n    socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n")
		checkFailure(t, "socket(AF_INET)", r, failure{400, "exception", "PermissionError: [Errno 1] Operation not permitted: the sandbox has no network access"})
	})

	parallel("symlinks, fifos and directory links in outputs/ are never followed or returned", func(t *testing.T) {
		script := `import os

def main(_):
    with open("secret.txt", "w") as f:
        f.write("not an output")
    os.symlink("/etc/passwd", "outputs/passwd")
    os.symlink(os.path.abspath("secret.txt"), "outputs/secret")
    os.symlink("../secret.txt", "outputs/relative")
    os.symlink("/etc", "outputs/etc")
    os.mkfifo("outputs/fifo")
    os.link("secret.txt", "outputs/hardlink")
    with open("outputs/real.txt", "w") as f:
        f.write("real")
    return sorted(os.listdir("outputs"))
`
		r := post(t, ts, map[string]any{"script": script, "input": nil})
		checkOK(t, "links in outputs/", r, `["etc","fifo","hardlink","passwd","real.txt","relative","secret"]`, "")
		// A hard link is a regular file of the execution's own: it is its
		// content, not a way out.
		checkFiles(t, "links in outputs/", r, [][2]string{{"outputs/hardlink", "not an output"}, {"outputs/real.txt", "real"}})
	})

	parallel("an outputs/ that is a symlink is not followed", func(t *testing.T) {
		script := "import os\n\ndef main():\n    os.symlink('/etc', 'outputs')\n    return os.path.islink('outputs')\n"
		r := ts.Execute(t, script)
		checkOK(t, "outputs/ as a symlink", r, "true", "")
		if r.Files != nil || bytes.Contains(r.Raw, []byte(`"files"`)) {
			t.Errorf("outputs/ as a symlink to /etc answered %s, want no files", testsupport.Clip(r.Raw))
		}
	})

	parallel("a request whose script writes no outputs has no files key", func(t *testing.T) {
		r := post(t, ts, map[string]any{"script": "import os\n\ndef main(d):\n    return os.listdir('outputs')\n", "input": 0, "files": []any{textFile("in.txt", "x")}})
		checkOK(t, "no outputs", r, `[]`, "")
		if bytes.Contains(r.Raw, []byte(`"files"`)) {
			t.Errorf("answer %s has a files key, want none", r.Raw)
		}
	})

	parallel("a script alone is answered byte for byte as before", func(t *testing.T) {
		r := ts.Execute(t, "import os\n\ndef main():\n    print('Calculating...')\n    return {'answer': 2 + 2, 'cwd': os.listdir('.')}\n")
		if want := `{"result":{"answer":4,"cwd":[]},"stdout":"Calculating..."}` + "\n"; r.Status != 200 || string(r.Raw) != want {
			t.Errorf("a script alone = %d %q, want 200 %q: no outputs/ made, no files key", r.Status, r.Raw, want)
		}
	})

	parallel("the request's files are in the working directory and nowhere later", func(t *testing.T) {
		script := "import os\n\ndef main(d):\n    return sorted(os.path.join(p, n) for p, _, ns in os.walk('.') for n in ns)\n"
		r := post(t, ts, map[string]any{"script": script, "input": 1, "files": []any{textFile("a/b/c.txt", "x"), textFile("top.txt", "")}})
		checkOK(t, "files in the working directory", r, `["./a/b/c.txt","./top.txt"]`, "")
		checkOK(t, "the next execution", ts.Execute(t, "import os\n\ndef main():\n    return os.listdir('.')\n"), "[]", "")
	})

	parallel("a 64 MiB memory_mb stops a 100 MiB allocation that the service's limit allows", func(t *testing.T) {
		script := "def main():\n    print('allocating')\n    return len(bytearray(100 << 20))\n"
		checkOK(t, "100 MiB under the service's 512 MiB", ts.Execute(t, script), "104857600", "allocating")
		r := post(t, ts, map[string]any{"script": script, "limits": map[string]any{"memory_mb": 64}})
		checkFailure(t, "100 MiB under memory_mb 64", r, failure{400, "memory_limit", "Memory limit exceeded (64 MB)"})
		if deref(r.Stdout) != "allocating" {
			t.Errorf("stdout = %q, want what was printed before the limit", deref(r.Stdout))
		}
	})

	parallel("limits within the caps change nothing else", func(t *testing.T) {
		r := post(t, ts, map[string]any{"script": "def main():\n    return len(bytearray(10 << 20))\n", "limits": map[string]any{"timeout_seconds": 10, "memory_mb": 512}})
		checkOK(t, "limits at the caps", r, "10485760", "")
	})

	parallel("more than 100 output files is an output_limit", func(t *testing.T) {
		script := "def main(_):\n    for i in range(101):\n        open(f'outputs/{i:03}.txt', 'w').close()\n"
		r := post(t, ts, map[string]any{"script": script, "input": nil})
		checkFailure(t, "101 output files", r, failure{400, "output_limit", "Output limit exceeded (more than 100 output files)"})
	})

	parallel("output files over their cap together are an output_limit naming it", func(t *testing.T) {
		script := "def main(_):\n    for name in ('a', 'b'):\n        with open(f'outputs/{name}', 'wb') as f:\n            f.write(b'x' * (600 << 10))\n"
		r := post(t, ts, map[string]any{"script": script, "input": nil})
		checkFailure(t, "1.2 MiB of output files", r, failure{400, "output_limit", "Output limit exceeded (output files over 1 MB)"})
	})

	parallel("files at the request's size limit are written whole", func(t *testing.T) {
		big := strings.Repeat("y", 8<<20)
		r := post(t, ts, map[string]any{"script": "import os\n\ndef main():\n    return os.path.getsize('big.txt')\n", "files": []any{textFile("big.txt", big)}})
		checkOK(t, "8 MiB of input files", r, "8388608", "")
	})
}

// runRejectionChecks sends every kind of invalid request: each is a 400
// invalid_request (or a 413) that names the field, the file and the rule,
// and runs nothing.
func runRejectionChecks(t *testing.T, ts *testsupport.Service) {
	const script = "def main(data=None):\n    print('ran')\n    return 1\n"
	file := func(path string) map[string]any { return textFile(path, "x") }
	many := make([]any, 101)
	for i := range many {
		many[i] = file(fmt.Sprintf("f%03d", i))
	}
	const timeoutRule = "'limits.timeout_seconds' must be a number above 0 and at most 10 (seconds, the service's limit), got "
	const memoryRule = "'limits.memory_mb' must be a whole number above 0 and at most 512 (MiB, the service's limit), got "
	tests := []struct {
		name   string
		fields map[string]any
		prefix string
	}{
		{"stdin that is not a string", map[string]any{"stdin": 5}, "'stdin' must be a string"},
		{"files that are not an array", map[string]any{"files": file("a")}, `'files' must be an array of {"path", "content", "encoding"} objects`},
		{"a file that is not an object", map[string]any{"files": []any{"a.csv"}}, `files[0] must be an object`},
		{"a file without a path", map[string]any{"files": []any{map[string]any{"content": "x"}}}, "files[0].path must be a string"},
		{"a file without content", map[string]any{"files": []any{map[string]any{"path": "a"}}}, "files[0].content must be a string"},
		{"an unknown encoding", map[string]any{"files": []any{map[string]any{"path": "a", "content": "x", "encoding": "hex"}}}, `files[0].encoding of "a" must be "utf-8" (the default) or "base64"`},
		{"content that is not base64", map[string]any{"files": []any{map[string]any{"path": "a", "content": "not base64!", "encoding": "base64"}}}, "files[0].content of \"a\" is not valid base64"},
		{"a path that climbs out with ..", map[string]any{"files": []any{file("../escape.txt")}}, `files[0].path "../escape.txt" has a '..' component`},
		{"a path that climbs out further in", map[string]any{"files": []any{file("ok.txt"), file("data/../../escape.txt")}}, `files[1].path "data/../../escape.txt" has a '..' component`},
		{"an absolute path", map[string]any{"files": []any{file("/etc/passwd")}}, `files[0].path "/etc/passwd" is absolute`},
		{"a path with a NUL", map[string]any{"files": []any{file("a\x00b")}}, "files[0].path \"a\\x00b\" contains a NUL byte"},
		{"an empty path", map[string]any{"files": []any{file("")}}, "files[0].path \"\" is empty"},
		{"an empty path component", map[string]any{"files": []any{file("data//in.csv")}}, `files[0].path "data//in.csv" has an empty component`},
		{"a path twice", map[string]any{"files": []any{file("in.csv"), file("in.csv")}}, `files[1].path "in.csv" is also files[0].path`},
		{"a file where a directory must be", map[string]any{"files": []any{file("data"), file("data/in.csv")}}, `files[1].path "data/in.csv" lies inside files[0].path "data", which is a file`},
		{"a file named outputs", map[string]any{"files": []any{file("outputs")}}, `files[0].path "outputs" is the directory output files are collected from`},
		{"101 files", map[string]any{"files": many}, "'files' has 101 files, over the limit of 100"},
		{"files over 8 MiB together", map[string]any{"files": []any{textFile("a", strings.Repeat("x", 4<<20)), textFile("b", strings.Repeat("x", 4<<20+1))}}, "'files' hold more than 8 MB together (decoded)"},
		{"limits that are not an object", map[string]any{"limits": 5}, `'limits' must be an object`},
		{"a timeout over the service's", map[string]any{"limits": map[string]any{"timeout_seconds": 11}}, timeoutRule + "11"},
		{"a timeout of zero", map[string]any{"limits": map[string]any{"timeout_seconds": 0}}, timeoutRule + "0"},
		{"a negative timeout", map[string]any{"limits": map[string]any{"timeout_seconds": -1}}, timeoutRule + "-1"},
		{"a timeout that is a string", map[string]any{"limits": map[string]any{"timeout_seconds": "5"}}, timeoutRule + `"5"`},
		{"memory over the service's", map[string]any{"limits": map[string]any{"memory_mb": 1024}}, memoryRule + "1024"},
		{"memory of zero", map[string]any{"limits": map[string]any{"memory_mb": 0}}, memoryRule + "0"},
		{"negative memory", map[string]any{"limits": map[string]any{"memory_mb": -64}}, memoryRule + "-64"},
		{"memory that is not whole", map[string]any{"limits": map[string]any{"memory_mb": 64.5}}, memoryRule + "64.5"},
		{"memory that is a bool", map[string]any{"limits": map[string]any{"memory_mb": true}}, memoryRule + "true"},
	}
	for _, tt := range tests {
		t.Run("refused: "+tt.name, func(t *testing.T) {
			t.Parallel()
			fields := map[string]any{"script": script}
			for k, v := range tt.fields {
				fields[k] = v
			}
			r := post(t, ts, fields)
			checkFailure(t, tt.name, r, failure{400, "invalid_request", tt.prefix})
			if deref(r.Stdout) != "" {
				t.Errorf("%s: stdout %q, want nothing run", tt.name, deref(r.Stdout))
			}
		})
	}
	t.Run("refused: a body over the request cap is a 413 stating it", func(t *testing.T) {
		t.Parallel()
		r := post(t, ts, map[string]any{"script": script, "files": []any{textFile("big", strings.Repeat("x", 10<<20))}})
		checkFailure(t, "a body over 10 MiB", r, failure{http.StatusRequestEntityTooLarge, "invalid_request", "Request body too large (max 10MB)"})
	})
}
