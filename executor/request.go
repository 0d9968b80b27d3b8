package executor

import (
	"encoding/json"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor/internal/jail"
	"github.com/pyexec/pyexec/internal/size"
)

// The rules a request keeps, whichever transport brought it. Run applies
// them before anything runs; every violation is an invalid_request whose
// message names the field, the file and the rule, in the API's own terms.
// The rules of the limits (TimeoutSeconds, MemoryMiB) also turn the numbers
// a request sends into its limits: the server's decoder applies them as it
// decodes, so that a number no duration can hold is refused in the
// caller's terms.

// maxInputFiles caps how many files a request may bring.
const maxInputFiles = 100

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
	return fmt.Sprintf("'limits.timeout_seconds' must be a number above 0 and at most %s (seconds, the service's limit)", jail.SecondsText(l.Timeout))
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
	}
	if err := checkLimits(req.Timeout, req.MemoryBytes, lim); err != nil {
		return err
	}
	return checkFiles(req.Files, lim)
}

// validateScript applies the rules of the script.
func (e *Executor) validateScript(script string) error {
	return checkSource(script, "Script", e.cfg.MaxScriptBytes)
}

// checkSource applies the rules of Python source, a script's or a cell's
// code, which messages call name.
func checkSource(src, name string, maxBytes int) error {
	switch {
	case strings.TrimSpace(src) == "":
		return invalid(name + " must be a non-empty string")
	case len(src) > maxBytes:
		return invalid(fmt.Sprintf("%s too large (max %s)", name, size.Text(int64(maxBytes), "")))
	case !utf8.ValidString(src):
		return invalid(name + " must be valid UTF-8")
	case strings.ContainsRune(src, 0):
		return invalid(name + " must not contain NUL bytes")
	}
	return nil
}

// checkLimits applies the rules of the limits a request, a session or a
// cell asks for, as Go values: zero keeps the service's cap; any other
// value is held to the rule of TimeoutSeconds or MemoryMiB, whose message
// quotes it in seconds, or in MiB (in bytes when not a whole number of
// them).
func checkLimits(timeout time.Duration, memoryBytes int64, caps Limits) error {
	if timeout != 0 {
		if _, err := caps.TimeoutSeconds(timeout.Seconds(), jail.SecondsText(timeout)); err != nil {
			return err
		}
	}
	if memoryBytes != 0 {
		if _, err := caps.MemoryMiB(float64(memoryBytes)/(1<<20), mebibytesText(memoryBytes)); err != nil {
			return err
		}
	}
	return nil
}

// TimeoutSeconds applies the rule of limits.timeout_seconds (TimeoutRule)
// to a number of seconds as a request sends it, and returns the timeout it
// asks for. sent is the number as written, which the message quotes: a
// number past any duration (1e400, which is +Inf here) is refused by the
// same rule, in the caller's own terms. NaN stands for a value that is no
// number at all, which no rule takes.
//
// It is the one rule of a timeout: the server's decoder applies it to the
// JSON number, Run to a Request's Timeout.
func (l Limits) TimeoutSeconds(seconds float64, sent string) (time.Duration, error) {
	if !(seconds > 0 && seconds <= l.Timeout.Seconds()) {
		return 0, invalid(fmt.Sprintf("%s, got %s", l.TimeoutRule(), sent))
	}
	// Rounded up, so that no positive number becomes no limit.
	return time.Duration(math.Ceil(seconds * float64(time.Second))), nil
}

// MemoryMiB applies the rule of limits.memory_mb (MemoryRule) to a number
// of MiB as a request sends it, and returns the memory limit it asks for,
// in bytes. sent and NaN are as for TimeoutSeconds.
func (l Limits) MemoryMiB(mib float64, sent string) (int64, error) {
	if !(mib >= 1 && mib == math.Trunc(mib) && mib <= float64(l.MemoryBytes>>20)) {
		return 0, invalid(fmt.Sprintf("%s, got %s", l.MemoryRule(), sent))
	}
	return int64(mib) << 20, nil
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
		if why := jail.PathProblem(f.Path); why != "" {
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

// mebibytesText writes a memory size in MiB, or in bytes when it is not a
// whole number of them.
func mebibytesText(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10)
	}
	return fmt.Sprintf("%d bytes", n)
}
