package jail

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// What the engine holds a request and a report to: how many files may come
// back, the paths they may have, and the limits an execution runs under.
// The rules of a request itself are package executor's (its Run applies
// them before anything reaches the engine).

// maxOutputFiles caps how many files may come back from outputs/.
const (
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

// PathProblem says what is wrong with a file's path ("" when nothing is),
// a request's input file's or an output file's a report claims: it must
// name a file inside the working directory, plainly, so that it is written
// where the script will look for it.
func PathProblem(p string) string {
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
// for. Package executor's Run has checked that a request's only tighten
// the service's; the self-test's own scripts may have a longer timeout.
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

// SecondsText writes a duration in seconds as limit messages do: "30", or
// "2.5" for a fraction.
func SecondsText(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10)
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}
