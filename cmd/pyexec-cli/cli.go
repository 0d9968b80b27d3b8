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

const usage = `pyexec-cli runs Python on a pyexec service: a script, or cells
of code in a session that keeps its variables from one cell to the next.

Usage:
  pyexec-cli run SCRIPT.py [flags]   run SCRIPT.py's main() and print its result
  pyexec-cli run --session ID FILE.py [flags]
                                     run FILE.py as a cell of session ID and
                                     print its last expression's value
  pyexec-cli repl [--url URL] [--out DIR]
                                     an interactive prompt on a new session
  pyexec-cli session new [--file PATH[=NAME]]... [--timeout D] [--memory MB]
                                     start a session and print its ID
  pyexec-cli session show ID         print the session's state as JSON
  pyexec-cli session end ID          end the session (an ended one is no error)
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
  --session ID            run the file as a cell of session ID (from
                          'session new'); not with --input or --memory, as a
                          cell has no main() and its session's memory

It prints what the script printed, then its result as indented JSON. On a
failure, it prints the error type, message and traceback to standard error.

Sessions: the flags of 'session new' set the session's files, each cell's
timeout and the memory of the whole session; --url goes with every session
command. A session ends after its idle timeout (10 minutes by default),
at 'session end', or when a cell runs out of time or memory. A cell's value
without a JSON form (a DataFrame, say) is printed as its text form.

The repl reads cells from standard input, a terminal or a pipe alike, with
the prompts '>>> ' and '... ' on standard error. A line continues when it
ends with ':' or '\' or inside an open bracket or triple-quoted string; a
block begun by a line ending with ':' ends with a blank line. Each cell
prints what it printed, then its value (none for a statement); failures go
to standard error with their traceback, and an exception keeps the session.
End of input, exit or quit ends the repl and its session; --out DIR saves
each cell's output files, the later over the earlier.

On Cloud Run, a session lives on one instance and session affinity routes
its calls there by a cookie. The repl keeps that cookie, and so do the
session commands from one process to the next: 'session new' saves the
cookies the service set, and 'run --session', 'session show' and 'session
end' send them and save what each answer set. They are kept in
$XDG_STATE_HOME/pyexec-cli/sessions (else ~/.local/state/pyexec-cli/sessions),
a file (mode 0600) for each session, named by a hash of the URL and the ID;
it goes when the session ends or is not found. A cookie file that cannot
be read or written is a warning, and the command goes on without it.

Exit status:
  0  the script or cell ran; the repl ended at end of input, exit or quit
  1  the script or cell failed (any error_type answered with a 4xx status,
     session_not_found and session_busy included), or its output files could
     not be saved; the repl's session ended under it
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
	case "repl":
		return replCommand(ctx, args[1:], con)
	case "session":
		return sessionCommand(ctx, args[1:], con)
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
	if e.SessionEnded {
		fmt.Fprintln(w, "pyexec-cli: the cell ended its session: what the session held is gone")
	}
	if e.Type == "" && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden) {
		fmt.Fprintln(w, "pyexec-cli: a private Cloud Run service answers only callers with roles/run.invoker, authenticated with an ID token")
	}
	if e.ExecutionID != "" {
		fmt.Fprintf(w, "pyexec-cli: execution %s\n", e.ExecutionID)
	}
}
