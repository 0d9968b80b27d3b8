package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pyexec/pyexec/client"
)

const defaultURL = "http://localhost:8080"

// runArgs are the arguments of "pyexec-cli run".
type runArgs struct {
	script  string        // local path of the script
	input   *string       // --input, nil when not given
	files   []string      // --file, each PATH[=NAME]
	stdin   *string       // --stdin, nil when not given
	timeout time.Duration // --timeout, 0 for the service's
	memory  int           // --memory, 0 for the service's
	url     string        // --url, else $PYEXEC_URL, else defaultURL
	out     string        // --out, "" to save no files
	json    bool          // --json
	session string        // --session, "" to run the script on its own
}

// parseRunArgs parses the arguments of run. Flags may come before and after
// the script's path; "--" ends them.
func parseRunArgs(args []string, getenv func(string) string) (runArgs, error) {
	a := runArgs{url: serviceURL(getenv)}
	fs := newFlagSet("run")
	fs.Func("input", "", func(v string) error { a.input = &v; return nil })
	fs.Func("file", "", func(v string) error { a.files = append(a.files, v); return nil })
	fs.Func("stdin", "", func(v string) error { a.stdin = &v; return nil })
	fs.DurationVar(&a.timeout, "timeout", 0, "")
	fs.IntVar(&a.memory, "memory", 0, "")
	fs.StringVar(&a.url, "url", a.url, "")
	fs.StringVar(&a.out, "out", "", "")
	fs.BoolVar(&a.json, "json", false, "")
	fs.StringVar(&a.session, "session", "", "")

	positional, err := parseFlags(fs, args)
	if err != nil {
		return runArgs{}, err
	}
	switch {
	case len(positional) == 0:
		return runArgs{}, errors.New("run needs the path of a script")
	case len(positional) > 1:
		return runArgs{}, fmt.Errorf("run takes one script, got %q", positional)
	case a.timeout < 0:
		return runArgs{}, fmt.Errorf("--timeout must be positive, got %v", a.timeout)
	case a.memory < 0:
		return runArgs{}, fmt.Errorf("--memory must be positive, got %d", a.memory)
	case a.session != "" && a.input != nil:
		return runArgs{}, errors.New("--input does not go with --session: a cell is not a main() to call")
	case a.session != "" && a.memory != 0:
		return runArgs{}, errors.New("--memory does not go with --session: a cell has its session's memory; give it to 'session new'")
	}
	a.script = positional[0]
	return a, nil
}

// request builds the execution the arguments describe, reading the script
// and every file they name.
func (a runArgs) request(stdin io.Reader) (client.Request, error) {
	script, err := os.ReadFile(a.script)
	if err != nil {
		return client.Request{}, fmt.Errorf("reading the script: %w", err)
	}
	req := client.Request{
		Script: string(script),
		Limits: client.Limits{Timeout: a.timeout, MemoryMB: a.memory},
	}
	if a.input != nil {
		input, err := textOrFile(*a.input, nil)
		if err != nil {
			return client.Request{}, fmt.Errorf("--input: %w", err)
		}
		if !json.Valid(input) {
			return client.Request{}, fmt.Errorf("--input is not JSON: %.100q", input)
		}
		req.Input = json.RawMessage(input)
	}
	if a.stdin != nil {
		text, err := textOrFile(*a.stdin, stdin)
		if err != nil {
			return client.Request{}, fmt.Errorf("--stdin: %w", err)
		}
		req.Stdin = string(text)
	}
	for _, spec := range a.files {
		f, err := readFileFlag(spec)
		if err != nil {
			return client.Request{}, fmt.Errorf("--file %s: %w", spec, err)
		}
		req.Files = append(req.Files, f)
	}
	return req, nil
}

// readFileFlag reads the local file that a --file PATH[=NAME] names. A
// PATH with "=" in it needs an explicit NAME.
func readFileFlag(spec string) (client.File, error) {
	path, name, _ := strings.Cut(spec, "=")
	return client.ReadFile(path, name)
}

// textOrFile is v itself, the content of the file @v names, or, for "-"
// when stdin is not nil, everything read from stdin.
func textOrFile(v string, stdin io.Reader) ([]byte, error) {
	switch {
	case strings.HasPrefix(v, "@"):
		return os.ReadFile(v[1:])
	case v == "-" && stdin != nil:
		return io.ReadAll(stdin)
	}
	return []byte(v), nil
}

// newClient is a client for the service at serviceURL, authenticated with
// Google ID tokens when it is a Cloud Run URL. A non-nil jar holds the
// cookies its calls send and those the answers set; its sessions use it
// rather than a jar of their own.
func newClient(ctx context.Context, serviceURL string, jar http.CookieJar) (*client.Client, error) {
	opts := []client.Option{client.WithUserAgent("pyexec-cli")}
	if jar != nil {
		opts = append(opts, client.WithHTTPClient(&http.Client{Jar: jar}))
	}
	if isCloudRun(serviceURL) {
		opts = append(opts, client.WithIDToken(ctx))
	}
	return client.New(serviceURL, opts...)
}

// isCloudRun reports whether serviceURL is a Cloud Run service's own URL,
// whose callers need an ID token unless it allows unauthenticated calls.
func isCloudRun(serviceURL string) bool {
	u, err := url.Parse(serviceURL)
	return err == nil && u.Scheme == "https" && strings.HasSuffix(u.Hostname(), ".run.app")
}

// runCommand is "pyexec-cli run".
func runCommand(ctx context.Context, args []string, con console) int {
	a, err := parseRunArgs(args, con.getenv)
	if status, exit := argsExit(err, con); exit {
		return status
	}
	req, err := a.request(con.stdin)
	if err != nil {
		fmt.Fprintf(con.stderr, "pyexec-cli: %v\n", err)
		return exitUsage
	}
	if a.session != "" {
		return runCell(ctx, req, a, con)
	}
	c, err := newClient(ctx, a.url, nil)
	if err != nil {
		fmt.Fprintf(con.stderr, "pyexec-cli: %v\n", err)
		return exitUsage
	}

	res, err := c.Execute(ctx, req)
	if err != nil {
		return reportRunFailure(con, err, a.json)
	}

	if a.json {
		con.stdout.Write(withNewline(res.Body))
	} else {
		if res.Stdout != "" {
			fmt.Fprintln(con.stdout, res.Stdout)
		}
		printJSON(con.stdout, res.Value)
	}
	return saveOutputs(a.out, append(res.Files, displayFiles(res.Display)...), con.stderr)
}

// reportRunFailure reports a script or cell that failed and returns the
// exit status: first on stdout, with --json (asJSON) pyexec's answer as it
// came, else what the code printed before it failed; then the error on
// stderr.
func reportRunFailure(con console, err error, asJSON bool) int {
	var e *client.Error
	switch {
	case asJSON && errors.As(err, &e) && e.Type != "":
		con.stdout.Write(withNewline(e.Body))
	case errors.As(err, &e) && e.Stdout != "":
		fmt.Fprintln(con.stdout, e.Stdout)
	}
	reportFailure(con.stderr, err)
	return exitStatus(err)
}

// printJSON prints the JSON value v indented. Indent keeps numbers as they
// came; v is JSON the client has decoded, so Indent does not fail.
func printJSON(w io.Writer, v []byte) {
	var pretty bytes.Buffer
	json.Indent(&pretty, v, "", "  ")
	fmt.Fprintln(w, pretty.String())
}

func withNewline(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\n")) {
		return b
	}
	return append(b, '\n')
}
