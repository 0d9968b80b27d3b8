package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// errHelp asks for the usage text.
var errHelp = errors.New("help requested")

// newFlagSet is a flag set for the command name whose errors the caller
// reports and whose usage is the help text.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses args with fs and returns the positional arguments.
// Flags may come before and after them; "--" ends the flags.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// serviceURL is the service's URL when no --url is given: $PYEXEC_URL,
// else defaultURL.
func serviceURL(getenv func(string) string) string {
	if u := getenv("PYEXEC_URL"); u != "" {
		return u
	}
	return defaultURL
}

// argsExit ends a command whose arguments did not parse or asked for
// help: it prints the usage text for -h, else err and where help is, and
// returns the exit status and true. For a nil err it returns false, and
// the command goes on.
func argsExit(err error, con console) (int, bool) {
	switch {
	case err == nil:
		return exitOK, false
	case errors.Is(err, errHelp):
		fmt.Fprint(con.stdout, usage)
		return exitOK, true
	default:
		fmt.Fprintf(con.stderr, "pyexec-cli: %v; run 'pyexec-cli help'\n", err)
		return exitUsage, true
	}
}
