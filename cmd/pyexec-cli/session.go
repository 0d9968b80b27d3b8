package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/client"
)

// sessionArgs are the arguments of "pyexec-cli session new|show|end".
type sessionArgs struct {
	id      string        // the session of show and end
	url     string        // --url, else $PYEXEC_URL, else defaultURL
	files   []string      // --file of new, each PATH[=NAME]
	timeout time.Duration // --timeout of new: each cell's limit
	memory  int           // --memory of new: the session's limit
}

// parseSessionArgs parses the arguments after "session new", "session
// show" or "session end" (verb).
func parseSessionArgs(verb string, args []string, getenv func(string) string) (sessionArgs, error) {
	a := sessionArgs{url: serviceURL(getenv)}
	fs := newFlagSet("session " + verb)
	fs.StringVar(&a.url, "url", a.url, "")
	if verb == "new" {
		fs.Func("file", "", func(v string) error { a.files = append(a.files, v); return nil })
		fs.DurationVar(&a.timeout, "timeout", 0, "")
		fs.IntVar(&a.memory, "memory", 0, "")
	}
	ids, args := takeSessionIDs(args)
	positional, err := parseFlags(fs, args)
	if err != nil {
		return sessionArgs{}, err
	}
	positional = append(ids, positional...)
	switch {
	case verb == "new" && len(positional) > 0:
		return sessionArgs{}, fmt.Errorf("session new takes no arguments, got %q", positional)
	case verb != "new" && len(positional) != 1:
		return sessionArgs{}, fmt.Errorf("session %s takes one session ID, got %q", verb, positional)
	case a.timeout < 0:
		return sessionArgs{}, fmt.Errorf("--timeout must be positive, got %v", a.timeout)
	case a.memory < 0:
		return sessionArgs{}, fmt.Errorf("--memory must be positive, got %d", a.memory)
	}
	if verb != "new" {
		a.id = positional[0]
	}
	return a, nil
}

// takeSessionIDs separates from args those that have a session ID's shape
// and begin with "-" (one ID in 64 does), which the flag parser would take
// for an unknown flag. No flag of a session command, nor a URL, has that
// shape.
func takeSessionIDs(args []string) (ids, rest []string) {
	for _, arg := range args {
		if strings.HasPrefix(arg, "-") && api.ValidSessionID(arg) {
			ids = append(ids, arg)
		} else {
			rest = append(rest, arg)
		}
	}
	return ids, rest
}

// sessionCommand is "pyexec-cli session new|show|end".
func sessionCommand(ctx context.Context, args []string, con console) int {
	if len(args) == 0 {
		fmt.Fprintln(con.stderr, "pyexec-cli: session needs new, show or end; run 'pyexec-cli help'")
		return exitUsage
	}
	verb := args[0]
	switch verb {
	case "new", "show", "end":
	case "help", "-h", "-help", "--help":
		fmt.Fprint(con.stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(con.stderr, "pyexec-cli: unknown session command %q; run 'pyexec-cli help'\n", verb)
		return exitUsage
	}
	a, err := parseSessionArgs(verb, args[1:], con.getenv)
	if status, exit := argsExit(err, con); exit {
		return status
	}
	var opts []client.SessionOption
	for _, spec := range a.files {
		f, err := readFileFlag(spec)
		if err != nil {
			fmt.Fprintf(con.stderr, "pyexec-cli: --file %s: %v\n", spec, err)
			return exitUsage
		}
		opts = append(opts, client.WithSessionFiles(f))
	}
	opts = append(opts, client.WithSessionLimits(client.Limits{Timeout: a.timeout, MemoryMB: a.memory}))
	cookies := newSessionCookies(a.url, con)
	c, err := newClient(ctx, a.url, cookies.jar)
	if err != nil {
		fmt.Fprintf(con.stderr, "pyexec-cli: %v\n", err)
		return exitUsage
	}

	switch verb {
	case "new":
		s, err := c.NewSession(ctx, opts...)
		if err != nil {
			reportFailure(con.stderr, err)
			return exitStatus(err)
		}
		// The session is for later commands: it must outlive this one,
		// and so must the cookies that route them to it.
		s.Detach()
		cookies.save(s.ID)
		fmt.Fprintln(con.stdout, s.ID)
	case "show":
		cookies.load(a.id)
		st, err := c.AttachSession(a.id).State(ctx)
		cookies.after(a.id, err)
		if err != nil {
			reportFailure(con.stderr, err)
			return exitStatus(err)
		}
		printJSON(con.stdout, st.Body)
	case "end":
		cookies.load(a.id)
		err := c.AttachSession(a.id).Close(ctx)
		if err != nil {
			cookies.after(a.id, err)
			reportFailure(con.stderr, err)
			return exitStatus(err)
		}
		cookies.forget(a.id)
	}
	return exitOK
}

// sessionGone reports whether err says the session has ended: the
// service does not know it, or the cell ended it.
func sessionGone(err error) bool {
	var e *client.Error
	return errors.As(err, &e) && (e.Type == client.ErrorTypeSessionNotFound || e.SessionEnded)
}
