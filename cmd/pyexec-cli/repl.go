package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pyexec/pyexec/client"
)

// Prompts of the REPL, on stderr so that stdout holds only what cells
// printed and their values.
const (
	promptFirst = ">>> "
	promptMore  = "... "
)

// closeTimeout bounds the DELETE of the REPL's session at its end, which
// may come after ctx is done (Ctrl-C).
const closeTimeout = 10 * time.Second

// replArgs are the arguments of "pyexec-cli repl".
type replArgs struct {
	url string // --url, else $PYEXEC_URL, else defaultURL
	out string // --out, "" to save no files
}

func parseReplArgs(args []string, getenv func(string) string) (replArgs, error) {
	a := replArgs{url: serviceURL(getenv)}
	fs := newFlagSet("repl")
	fs.StringVar(&a.url, "url", a.url, "")
	fs.StringVar(&a.out, "out", "", "")
	positional, err := parseFlags(fs, args)
	if err != nil {
		return replArgs{}, err
	}
	if len(positional) > 0 {
		return replArgs{}, fmt.Errorf("repl takes no arguments, got %q", positional)
	}
	return a, nil
}

// replCommand is "pyexec-cli repl": cells read from stdin run one after
// another in a new session, which ends with the command.
func replCommand(ctx context.Context, args []string, con console) int {
	a, err := parseReplArgs(args, con.getenv)
	if status, exit := argsExit(err, con); exit {
		return status
	}
	c, err := newClient(ctx, a.url, nil)
	if err != nil {
		fmt.Fprintf(con.stderr, "pyexec-cli: %v\n", err)
		return exitUsage
	}
	s, err := c.NewSession(ctx)
	if err != nil {
		reportFailure(con.stderr, err)
		return exitStatus(err)
	}
	defer func() {
		closing, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		if err := s.Close(closing); err != nil {
			reportFailure(con.stderr, err)
		}
	}()
	fmt.Fprintf(con.stderr, "pyexec-cli: session %s on %s; exit, quit or end of input ends it\n", s.ID, a.url)

	cells := newCellReader(ctx, con.stdin, con.stderr)
	for {
		code, ok := cells.next(ctx)
		if !ok {
			return exitOK
		}
		switch strings.TrimSpace(code) {
		case "exit", "quit", "exit()", "quit()":
			return exitOK
		}
		res, err := s.Run(ctx, code)
		if err != nil {
			reportRunFailure(con, err, false) // the repl has no --json, and its own exit status
			var e *client.Error
			if errors.As(err, &e) && (e.SessionEnded || e.Type == client.ErrorTypeSessionNotFound) {
				return exitScriptError // nothing is left to run cells in
			}
			if ctx.Err() != nil {
				return exitOK
			}
			continue
		}
		printCell(con.stdout, res, false)
		saveOutputs(a.out, append(res.Files, displayFiles(res.Display)...), con.stderr)
	}
}

// cellReader reads cells from the lines of a reader, prompting for each
// line.
type cellReader struct {
	lines   <-chan string
	prompts io.Writer
}

// newCellReader reads lines of r on a goroutine of their own, so that
// Ctrl-C (ctx done) ends the REPL while it waits for a line.
func newCellReader(ctx context.Context, r io.Reader, prompts io.Writer) *cellReader {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	return &cellReader{lines: lines, prompts: prompts}
}

// next is the next whole cell, and false once the input has ended or ctx
// is done. Blank lines between cells are skipped; a cell cut off by the
// end of the input is returned as it is.
func (r *cellReader) next(ctx context.Context) (string, bool) {
	var cell []string
	for {
		if len(cell) == 0 {
			fmt.Fprint(r.prompts, promptFirst)
		} else {
			fmt.Fprint(r.prompts, promptMore)
		}
		var line string
		var ok bool
		select {
		case line, ok = <-r.lines:
		case <-ctx.Done():
		}
		if !ok {
			fmt.Fprintln(r.prompts) // the prompt's line ends, as Python's does
			if len(cell) > 0 && ctx.Err() == nil {
				return strings.Join(cell, "\n"), true
			}
			return "", false
		}
		if len(cell) == 0 && strings.TrimSpace(line) == "" {
			continue
		}
		cell = append(cell, line)
		if cellComplete(cell) {
			return strings.TrimRight(strings.Join(cell, "\n"), " \t\n"), true
		}
	}
}
