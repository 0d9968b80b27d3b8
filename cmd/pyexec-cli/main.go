// Command pyexec-cli runs a Python script on a pyexec service and prints
// what it printed and what its main() returned, or runs cells of code in a
// session, interactively (repl) or one file at a time.
//
//	pyexec-cli run script.py [--input JSON|@file] [--file PATH[=NAME]]...
//	    [--stdin TEXT|@file|-] [--timeout 5s] [--memory 256] [--url URL]
//	    [--out DIR] [--json]
//	pyexec-cli repl [--url URL] [--out DIR]
//	pyexec-cli session new [--file PATH[=NAME]]... [--timeout 5s] [--memory 256]
//	pyexec-cli run --session ID cell.py
//	pyexec-cli session show ID
//	pyexec-cli session end ID
//
// The service is --url, else $PYEXEC_URL, else http://localhost:8080. For
// https://*.run.app it authenticates with a Google ID token from
// Application Default Credentials. The session commands keep the cookies
// the service set (Cloud Run's session affinity) from one to the next, in
// $XDG_STATE_HOME/pyexec-cli/sessions, else ~/.local/state/pyexec-cli/sessions.
// Run "pyexec-cli help" for every flag and the exit statuses.
package main

import (
	"context"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := cli(ctx, os.Args[1:], console{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}
