package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/pyexec/pyexec/client"
)

// Exit statuses.
const (
	exitOK          = 0
	exitScriptError = 1 // the script failed, or its output files could not be saved
	exitUsage       = 2
	exitUnavailable = 3 // busy or sandbox_unavailable after retries, a service fault, no answer
)

const usage = `pyexec-cli runs a Python script on a pyexec service.

Usage:
  pyexec-cli run SCRIPT.py [flags]   run SCRIPT.py's main() and print its result
  pyexec-cli help                    show this help

Flags of run (before or after SCRIPT.py):
  --input JSON|@FILE      pass a JSON value (or FILE's) to main as its argument
  --file PATH[=NAME]      send the local file PATH, as NAME in the script's
                          working directory (default: PATH's base name);
                          repeat for more files
  --stdin TEXT|@FILE|-    the script's standard input: TEXT, FILE's content,
                          or (-) this command's standard input
  --timeout DURATION      a tighter wall-clock limit, e.g. 5s
  --memory MB             a tighter memory limit, in MiB
  --url URL               the service (default: $PYEXEC_URL, else
                          http://localhost:8080); https://*.run.app is called
                          with a Google ID token from Application Default
                          Credentials
  --out DIR               write the files the script left in outputs/ into DIR
  --json                  print the service's answer as it came

It prints what the script printed, then its result as indented JSON. On a
failure, it prints the error type, message and traceback to standard error.

Exit status:
  0  the script ran and main() returned
  1  the script failed (any error_type answered with a 4xx status), or its
     output files could not be saved
  2  usage: a bad flag, an unreadable SCRIPT.py or --file, --input not JSON
  3  the service is unavailable: busy or sandbox_unavailable after retries,
     a service fault (5xx), or no answer at all (e.g. connection refused)
`

// console is the command's view of the process: its standard streams and
// environment.
type console struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// cli runs the command args name and returns the exit status.
func cli(ctx context.Context, args []string, con console) int {
	if len(args) == 0 {
		fmt.Fprint(con.stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runCommand(ctx, args[1:], con)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(con.stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(con.stderr, "pyexec-cli: unknown command %q; run 'pyexec-cli help'\n", args[0])
		return exitUsage
	}
}

// exitStatus is the status for an error of Execute: a failure of the
// script is the caller's to fix, anything else the service's.
func exitStatus(err error) int {
	var e *client.Error
	if errors.As(err, &e) && e.Type != "" && e.StatusCode >= 400 && e.StatusCode < 500 {
		return exitScriptError
	}
	return exitUnavailable
}

// reportFailure prints err to stderr: the error type and message, the
// traceback and the execution ID where there are some.
func reportFailure(w io.Writer, err error) {
	// The client's messages start with "pyexec: "; one prefix is enough.
	fmt.Fprintf(w, "pyexec-cli: %s\n", strings.TrimPrefix(err.Error(), "pyexec: "))
	var e *client.Error
	if !errors.As(err, &e) {
		return
	}
	if e.Traceback != "" {
		fmt.Fprintf(w, "%s\n", e.Traceback)
	}
	if e.Type == "" && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden) {
		fmt.Fprintln(w, "pyexec-cli: a private Cloud Run service answers only callers with roles/run.invoker, authenticated with an ID token")
	}
	if e.ExecutionID != "" {
		fmt.Fprintf(w, "pyexec-cli: execution %s\n", e.ExecutionID)
	}
}
