package jail

import (
	"encoding/json"
	"time"
)

// Request is one script to run, with what it is given. A Request with
// only ID and Script runs exactly as scripts always have: main() is called
// with no argument, standard input is empty and the service's limits apply.
type Request struct {
	// ID names the execution in logs and temporary names. Run generates one
	// when it is empty.
	ID     string
	Script string
	// Input, when not nil, is passed to main as its one argument: JSON text,
	// kept exactly as the caller wrote it so that numbers arrive exact.
	// JSON null is an input like any other; nil is none.
	Input json.RawMessage
	// Stdin is the script's standard input; empty means none.
	Stdin string
	// Files are written into the execution's working directory before any
	// user code runs.
	Files []File
	// Timeout and MemoryBytes tighten the service's limits for this
	// execution; zero keeps the service's. They never loosen them: a value
	// above the service's is refused (Limits).
	Timeout     time.Duration
	MemoryBytes int64
	// Extended says the request named input, stdin, files or limits, even
	// as empty values ("files": [], "limits": {}, "stdin": ""), which the
	// fields above cannot tell from none: outputs/ is made for it as for
	// any request that uses them.
	Extended bool
}

// File is a file a request brings: Path is relative to the execution's
// working directory.
type File struct {
	Path    string
	Content []byte
}

// Result is what an execution produced.
type Result struct {
	// Value is main()'s return value as strict JSON. It is set only when Run
	// returns a nil error.
	Value json.RawMessage
	// Stdout is what the script printed, decoded as UTF-8 with invalid bytes
	// replaced, trailing newlines removed, capped at Config.MaxOutputBytes. It
	// is set on failures too: everything printed before the failure.
	Stdout string
	// Files are the regular files the script left under outputs/ of its
	// working directory, sorted by path; set only when Run returns a nil
	// error. Each Path starts with "outputs/".
	Files []File
	// Display are the rich outputs (figures, tables, texts) the script
	// displayed, in the order produced; set only when Run returns a nil
	// error.
	Display []Display
	// Duration is the wall time of the execution, queueing excluded.
	Duration time.Duration
}

// Display is one rich output: a PNG image, an HTML table or a text.
type Display struct {
	Type string // a MIME type: DisplayPNG, DisplayHTML or DisplayText
	Data []byte // the PNG's bytes, or the text as UTF-8
}

// The MIME types of rich outputs.
const (
	DisplayPNG  = "image/png"
	DisplayHTML = "text/html"
	DisplayText = "text/plain"
)

// Health says whether the executor runs scripts and with what isolation.
type Health struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"` // why it is not ready
	Mode   string `json:"mode"`
	// Fallback says why faster modes than Mode are not in use (their
	// self-test failed), when Mode was chosen automatically.
	Fallback string `json:"fallback,omitempty"`
	// TeardownFailures counts sandboxes whose teardown (after their
	// execution was answered) failed; what they left is swept at the next
	// start. Non-zero deserves an operator's look.
	TeardownFailures int64     `json:"teardown_failures"`
	Isolation        Isolation `json:"isolation"`
	Versions         Versions  `json:"versions"`
}

// Isolation names the layers each execution runs under.
type Isolation struct {
	Namespaces []string `json:"namespaces"`
	Seccomp    bool     `json:"seccomp"`
	UID        int      `json:"uid"`
	// OutsideUIDs is the range of unprivileged host uids jails run as, one
	// per execution slot, e.g. "200000-200001".
	OutsideUIDs string `json:"outside_uids"`
	// Limits is how memory and process counts are enforced: "cgroup v1",
	// "cgroup v2" or "rlimit" (the fallback where no cgroup is usable).
	Limits string `json:"limits"`
}

// Versions of the parts a script runs on.
type Versions struct {
	Python string `json:"python"`
	Pandas string `json:"pandas"`
	Numpy  string `json:"numpy"`
	// The libraries beside them, by their distributions' names.
	Matplotlib  string `json:"matplotlib"`
	Scipy       string `json:"scipy"`
	ScikitLearn string `json:"scikit-learn"`
	Pyarrow     string `json:"pyarrow"`
	Openpyxl    string `json:"openpyxl"`
	Nsjail      string `json:"nsjail"`
}
