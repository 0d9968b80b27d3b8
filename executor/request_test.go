package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/api"
)

// requestExecutor is an executor with the default configuration that has
// not started: Run checks a request before it asks whether the sandbox is
// ready, so a valid request answers ErrSandboxUnavailable and an invalid
// one its invalid_request.
func requestExecutor(t *testing.T) *Executor {
	t.Helper()
	cfg, err := ConfigFromEnv(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

const okScript = "def main(data=None):\n    return 1\n"

func TestRequestsKeepEveryRuleOrSayWhichTheyBreak(t *testing.T) {
	e := requestExecutor(t)
	file := func(path string, size int) File { return File{Path: path, Content: make([]byte, size)} }
	many := func(n int) []File {
		files := make([]File, n)
		for i := range files {
			files[i] = file(fmt.Sprintf("in/%03d.csv", i), 1)
		}
		return files
	}
	tests := []struct {
		name    string
		req     Request
		wantErr string // "" for valid
	}{
		{"a script alone", Request{Script: okScript}, ""},
		{"every field at its limit", Request{
			Script: okScript, Input: json.RawMessage(`{"n": 123456789012345678901234567890}`), Stdin: "line\n",
			Files:   append(many(99), file("big.bin", 8<<20-99)),
			Timeout: 30 * time.Second, MemoryBytes: 512 << 20,
		}, ""},
		{"null input", Request{Script: okScript, Input: json.RawMessage(`null`)}, ""},
		{"input that is not JSON", Request{Script: okScript, Input: json.RawMessage(`{"a":`)}, "'input' must be a JSON value"},
		{"stdin that is not UTF-8", Request{Script: okScript, Stdin: "\xff"}, "'stdin' must be valid UTF-8"},
		{"a timeout over the service's", Request{Script: okScript, Timeout: 31 * time.Second},
			"'limits.timeout_seconds' must be a number above 0 and at most 30 (seconds, the service's limit), got 31"},
		{"a negative timeout", Request{Script: okScript, Timeout: -time.Second}, "'limits.timeout_seconds' must be a number above 0 and at most 30"},
		{"a fraction of a second", Request{Script: okScript, Timeout: 500 * time.Millisecond}, ""},
		{"memory over the service's", Request{Script: okScript, MemoryBytes: 513 << 20},
			"'limits.memory_mb' must be a whole number above 0 and at most 512 (MiB, the service's limit), got 513"},
		{"negative memory", Request{Script: okScript, MemoryBytes: -1 << 20}, "'limits.memory_mb' must be a whole number above 0"},
		{"memory under a MiB", Request{Script: okScript, MemoryBytes: 1000}, "got 1000 bytes"},
		{"101 files", Request{Script: okScript, Files: many(101)}, "'files' has 101 files, over the limit of 100"},
		{"files over 8 MiB together", Request{Script: okScript, Files: []File{file("a", 4<<20), file("b", 4<<20+1)}},
			"'files' hold more than 8 MB together (decoded)"},
		{"an empty path", Request{Script: okScript, Files: []File{file("", 1)}}, "files[0].path \"\" is empty"},
		{"an absolute path", Request{Script: okScript, Files: []File{file("/etc/passwd", 1)}}, `files[0].path "/etc/passwd" is absolute`},
		{"a path that climbs out", Request{Script: okScript, Files: []File{file("ok", 1), file("../x", 1)}}, `files[1].path "../x" has a '..' component`},
		{"a path that climbs out later", Request{Script: okScript, Files: []File{file("a/b/../../../x", 1)}}, `has a '..' component`},
		{"a NUL in a path", Request{Script: okScript, Files: []File{file("a\x00b", 1)}}, "files[0].path \"a\\x00b\" contains a NUL byte"},
		{"a path that is not UTF-8", Request{Script: okScript, Files: []File{file("a\xffb", 1)}}, "files[0].path \"a\\xffb\" is not valid UTF-8"},
		{"an empty component", Request{Script: okScript, Files: []File{file("a//b", 1)}}, "has an empty component"},
		{"a trailing slash", Request{Script: okScript, Files: []File{file("dir/", 1)}}, "has an empty component"},
		{"a dot component", Request{Script: okScript, Files: []File{file("./a", 1)}}, "has a '.' component"},
		{"a name over 255 bytes", Request{Script: okScript, Files: []File{file(strings.Repeat("n", 256), 1)}}, "component longer than 255 bytes"},
		{"a path over 4095 bytes", Request{Script: okScript, Files: []File{file(strings.Repeat("d/", 2048), 1)}}, "longer than 4095 bytes"},
		{"a file named outputs", Request{Script: okScript, Files: []File{file("outputs", 1)}}, `files[0].path "outputs" is the directory output files are collected from`},
		{"a file inside outputs/", Request{Script: okScript, Files: []File{file("outputs/seed.csv", 1)}}, ""},
		{"a path twice", Request{Script: okScript, Files: []File{file("a.csv", 1), file("b", 1), file("a.csv", 2)}}, `files[2].path "a.csv" is also files[0].path`},
		{"a file where a directory must be", Request{Script: okScript, Files: []File{file("data", 1), file("data/in.csv", 1)}},
			`files[1].path "data/in.csv" lies inside files[0].path "data", which is a file`},
		{"a file where a deeper directory must be", Request{Script: okScript, Files: []File{file("a/b/c/d", 1), file("a/b", 1)}},
			`files[0].path "a/b/c/d" lies inside files[1].path "a/b"`},
		{"files side by side in a directory", Request{Script: okScript, Files: []File{file("data/a", 1), file("data/b", 1), file("data2", 1)}}, ""},
		{"the script's own rules come first", Request{Script: " ", Files: []File{file("/x", 1)}}, "Script must be a non-empty string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Run(context.Background(), tt.req)
			if tt.wantErr == "" {
				if !errors.Is(err, ErrSandboxUnavailable) {
					t.Errorf("Run(%s) = %v, want the request accepted (and then sandbox_unavailable)", tt.name, err)
				}
				return
			}
			var got *Error
			if !errors.As(err, &got) || got.Type != api.ErrorTypeInvalidRequest || !strings.Contains(got.Message, tt.wantErr) {
				t.Errorf("Run(%s) = %v, want invalid_request containing %q", tt.name, err, tt.wantErr)
			}
		})
	}
}

func TestLimitsStateTheServiceCaps(t *testing.T) {
	e := requestExecutor(t)
	want := Limits{Timeout: 30 * time.Second, MemoryBytes: 512 << 20, MaxInputFiles: 100, MaxInputFilesBytes: 8 << 20}
	if got := e.Limits(); got != want {
		t.Errorf("Limits() = %+v, want %+v", got, want)
	}
	if got := (Limits{Timeout: 2500 * time.Millisecond}).TimeoutRule(); !strings.Contains(got, "at most 2.5 (seconds") {
		t.Errorf("TimeoutRule() = %q, want the cap 2.5", got)
	}
}
