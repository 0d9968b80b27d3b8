package executor

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/internal/size"
)

// The rules a request keeps, whichever transport brought it. Run applies
// them before anything runs; every violation is an invalid_request whose
// message names the field, the file and the rule, in the API's own terms.

// maxInputFiles caps how many files a request may bring; maxOutputFiles how
// many may come back from outputs/.
const (
	maxInputFiles  = 100
	maxOutputFiles = 100
	// maxDisplayItems is how many rich outputs (display) may come back;
	// their bytes count against the output files' cap.
	maxDisplayItems = 50
)

// Linux's limits on a path: a name of at most 255 bytes, a path of at most
// 4095. A longer one could never be written.
const (
	maxNameBytes = 255
	maxPathBytes = 4095
)

// outputsDir is the directory of the working directory whose files come
// back with the result.
const outputsDir = "outputs"

// Limits returns the caps a request must keep.
func (e *Executor) Limits() Limits {
	return Limits{
		Timeout:            e.cfg.Timeout,
		MemoryBytes:        e.cfg.MemoryBytes,
		MaxInputFiles:      maxInputFiles,
		MaxInputFilesBytes: e.cfg.MaxInputFilesBytes,
	}
}

// TimeoutRule states the rule of a request's limits.timeout_seconds, as an
// invalid_request message says it.
func (l Limits) TimeoutRule() string {
	return fmt.Sprintf("'limits.timeout_seconds' must be a number above 0 and at most %s (seconds, the service's limit)", secondsText(l.Timeout))
}

// MemoryRule states the rule of a request's limits.memory_mb, as an
// invalid_request message says it.
func (l Limits) MemoryRule() string {
	return fmt.Sprintf("'limits.memory_mb' must be a whole number above 0 and at most %d (MiB, the service's limit)", l.MemoryBytes>>20)
}

// invalid is an invalid_request with msg.
func invalid(msg string) error { return &Error{Type: api.ErrorTypeInvalidRequest, Message: msg} }

// validate applies every rule of a request.
func (e *Executor) validate(req Request) error {
	if err := e.validateScript(req.Script); err != nil {
		return err
	}
	lim := e.Limits()
	switch {
	case req.Input != nil && !json.Valid(req.Input):
		return invalid("'input' must be a JSON value")
	case !utf8.ValidString(req.Stdin):
		return invalid("'stdin' must be valid UTF-8")
	case req.Timeout < 0 || req.Timeout > lim.Timeout:
		return invalid(fmt.Sprintf("%s, got %s", lim.TimeoutRule(), secondsText(req.Timeout)))
	case req.MemoryBytes < 0 || (req.MemoryBytes > 0 && req.MemoryBytes < 1<<20) || req.MemoryBytes > lim.MemoryBytes:
		return invalid(fmt.Sprintf("%s, got %s", lim.MemoryRule(), mebibytesText(req.MemoryBytes)))
	}
	return checkFiles(req.Files, lim)
}

// validateScript applies the rules of the script.
func (e *Executor) validateScript(script string) error {
	switch {
	case strings.TrimSpace(script) == "":
		return invalid("Script must be a non-empty string")
	case len(script) > e.cfg.MaxScriptBytes:
		return invalid(fmt.Sprintf("Script too large (max %s)", size.Text(int64(e.cfg.MaxScriptBytes), "")))
	case !utf8.ValidString(script):
		return invalid("Script must be valid UTF-8")
	case strings.ContainsRune(script, 0):
		return invalid("Script must not contain NUL bytes")
	}
	return nil
}

// checkFiles applies the rules of a request's files: at most
// lim.MaxInputFiles, at most lim.MaxInputFilesBytes together, each at a
// path of its own that stays inside the working directory, and none where
// another needs a directory.
func checkFiles(files []File, lim Limits) error {
	if len(files) > lim.MaxInputFiles {
		return invalid(fmt.Sprintf("'files' has %d files, over the limit of %d", len(files), lim.MaxInputFiles))
	}
	index := make(map[string]int, len(files))
	total := 0
	for i, f := range files {
		if why := pathProblem(f.Path); why != "" {
			if !strings.Contains(why, strconv.Quote(f.Path)) {
				why = QuotePath(f.Path) + " " + why
			}
			return invalid(fmt.Sprintf("files[%d].path %s", i, why))
		}
		if j, dup := index[f.Path]; dup {
			return invalid(fmt.Sprintf("files[%d].path %q is also files[%d].path: each file needs a path of its own", i, f.Path, j))
		}
		index[f.Path] = i
		total += len(f.Content)
		if total > lim.MaxInputFilesBytes {
			return invalid(fmt.Sprintf("'files' hold more than %s together (decoded), the service's limit", size.Text(int64(lim.MaxInputFilesBytes), " ")))
		}
	}
	for i, f := range files {
		for dir := path.Dir(f.Path); dir != "."; dir = path.Dir(dir) {
			if j, isFile := index[dir]; isFile {
				return invalid(fmt.Sprintf("files[%d].path %q lies inside files[%d].path %q, which is a file, not a directory", i, f.Path, j, dir))
			}
		}
	}
	return nil
}

// pathProblem says what is wrong with an input file's path ("" when
// nothing is): it must name a file inside the working directory, plainly,
// so that it is written where the script will look for it.
func pathProblem(p string) string {
	quoted := strconv.Quote(p)
	switch {
	case p == "":
		return "is empty"
	case !utf8.ValidString(p):
		return "is not valid UTF-8"
	case strings.ContainsRune(p, 0):
		return "contains a NUL byte"
	case strings.HasPrefix(p, "/"):
		return quoted + " is absolute: paths are relative to the working directory"
	case len(p) > maxPathBytes:
		return fmt.Sprintf("is longer than %d bytes", maxPathBytes)
	case p == outputsDir:
		return quoted + " is the directory output files are collected from, not a file"
	}
	for _, name := range strings.Split(p, "/") {
		switch {
		case name == "..":
			return quoted + " has a '..' component: paths must stay inside the working directory"
		case name == ".":
			return quoted + " has a '.' component: write the path without it"
		case name == "":
			return quoted + " has an empty component ('//' or a trailing '/')"
		case len(name) > maxNameBytes:
			return fmt.Sprintf("%s has a component longer than %d bytes", quoted, maxNameBytes)
		}
	}
	return ""
}

// QuotePath quotes a request file's path for a message that names the
// file: Go-quoted, so that any byte reads plainly, and cut to its first 64
// bytes when it is longer.
func QuotePath(p string) string {
	if len(p) > 64 {
		cut := 64
		for cut > 0 && !utf8.RuneStart(p[cut]) {
			cut--
		}
		return strconv.Quote(p[:cut]) + "…"
	}
	return strconv.Quote(p)
}

// limits are the limits one execution runs under.
type limits struct {
	timeout     time.Duration
	memoryBytes int64
}

// serviceLimits is the limits of an execution that asks for none.
func serviceLimits(cfg Config) limits {
	return limits{timeout: cfg.Timeout, memoryBytes: cfg.MemoryBytes}
}

// limitsOf is the limits req runs under: the service's, or those req asks
// for. Run has checked that a request's only tighten the service's; the
// self-test's own scripts may have a longer timeout.
func limitsOf(cfg Config, req Request) limits {
	l := serviceLimits(cfg)
	if req.Timeout > 0 {
		l.timeout = req.Timeout
	}
	if req.MemoryBytes > 0 {
		l.memoryBytes = req.MemoryBytes
	}
	return l
}

// extended tells whether req asks for more than a script: input, stdin,
// files or limits, empty ones included.
func (req Request) extended() bool {
	return req.Extended || req.Input != nil || req.Stdin != "" || len(req.Files) > 0 || req.Timeout != 0 || req.MemoryBytes != 0
}

// secondsText writes a duration in seconds as limit messages do: "30", or
// "2.5" for a fraction.
func secondsText(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10)
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// mebibytesText writes a memory size in MiB, or in bytes when it is not a
// whole number of them.
func mebibytesText(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10)
	}
	return fmt.Sprintf("%d bytes", n)
}
