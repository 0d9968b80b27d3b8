package main

import (
	"context"
	"fmt"
	"io"

	"github.com/pyexec/pyexec/client"
)

// runCell is "pyexec-cli run --session ID": the script runs as a cell of
// the session, with the cookies earlier commands kept for it, and what it
// printed and its last expression's value are printed as run prints a
// script's.
func runCell(ctx context.Context, req client.Request, a runArgs, con console) int {
	cookies := newSessionCookies(a.url, con)
	c, err := newClient(ctx, a.url, cookies.jar)
	if err != nil {
		fmt.Fprintf(con.stderr, "pyexec-cli: %v\n", err)
		return exitUsage
	}
	cookies.load(a.session)
	res, err := c.AttachSession(a.session).Run(ctx, req.Script, client.WithStdin(req.Stdin),
		client.WithFiles(req.Files...), client.WithCellTimeout(req.Limits.Timeout))
	cookies.after(a.session, err)
	if err != nil {
		return reportRunFailure(con, err, a.json)
	}
	if a.json {
		con.stdout.Write(withNewline(res.Body))
	} else {
		printCell(con.stdout, res, true)
	}
	return saveOutputs(a.out, append(res.Files, displayFiles(res.Display)...), con.stderr)
}

// printCell prints what the cell printed, then its value: the text form of
// a value without a JSON form as it is, any other as indented JSON. A null
// value (a cell that ends with a statement) is printed only when
// printNull holds; the REPL leaves it out, as Python's does with None.
func printCell(w io.Writer, res *client.CellResult, printNull bool) {
	if res.Stdout != "" {
		fmt.Fprintln(w, res.Stdout)
	}
	switch {
	case res.IsText():
		fmt.Fprintln(w, res.Text())
	case string(res.Value) == "null" && !printNull:
	default:
		printJSON(w, res.Value)
	}
}
