package executor

import (
	"time"

	"github.com/pyexec/pyexec/executor/internal/jail"
)

// The types of a request and its answer are the engine's (package jail),
// which runs and judges them; their documentation is there.

// Request is one script to run, with what it is given. A Request with
// only ID and Script runs exactly as scripts always have: main() is called
// with no argument, standard input is empty and the service's limits apply.
type Request = jail.Request

// File is a file a request brings, or one the script left under outputs/:
// Path is relative to the execution's working directory.
type File = jail.File

// Result is what an execution produced.
type Result = jail.Result

// Display is one rich output: a PNG image, an HTML table or a text.
type Display = jail.Display

// The MIME types of rich outputs.
const (
	DisplayPNG  = jail.DisplayPNG
	DisplayHTML = jail.DisplayHTML
	DisplayText = jail.DisplayText
)

// Limits are the service's caps on what one request may ask for: the
// limits a request may tighten (never loosen), and how much it may bring.
type Limits struct {
	Timeout            time.Duration
	MemoryBytes        int64
	MaxInputFiles      int
	MaxInputFilesBytes int
}

// Health says whether the executor runs scripts and with what isolation.
type Health = jail.Health

// Isolation names the layers each execution runs under.
type Isolation = jail.Isolation

// Versions of the parts a script runs on.
type Versions = jail.Versions
