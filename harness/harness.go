// Package harness holds harness.py, the Python program that runs inside
// every jail: it reads its job (the user's script and what comes with it),
// runs the script's main() and reports the outcome, with the files the
// script left under outputs/, on a channel of its own. harness.py's docstring is the protocol
// between it and the executor (executor/internal/jail/result.go reads the report).
package harness

import _ "embed"

// Source is harness.py, written into every jail read-only.
//
//go:embed harness.py
var Source []byte

// Preloaded is the byte harness.py writes on its report channel once, with
// --preload, it has imported numpy and pandas (its PRELOADED).
const Preloaded = 'P'

// Zygote is zygote.py, the fork server's program (executor/internal/jail/mode_fork.go).
//
//go:embed zygote.py
var Zygote []byte

// Session is session.py, the cell loop of a session's process, which the
// fork server runs in place of the harness for a session.
//
//go:embed session.py
var Session []byte
