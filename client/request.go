package client

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
	"unicode/utf8"

	"github.com/pyexec/pyexec/api"
)

// Request is one execution: a script and, optionally, what it is given.
// Only Script is required; a Request with only Script is answered as the
// original service answered {"script": ...}.
type Request struct {
	// Script is the Python source. It must bind main at the top level;
	// main's return value is the result.
	Script string
	// Input, when not nil, is marshalled with encoding/json and passed to
	// main as its one argument. Numbers reach the script exactly as they are
	// marshalled: use json.Number or json.RawMessage (or integer types) for
	// values a float64 cannot hold exactly, such as 2^53+1. A nil Input
	// sends no input and main is called with no argument; to pass Python's
	// None, use json.RawMessage("null").
	Input any
	// Files are written into the script's working directory before it runs.
	Files []File
	// Limits may tighten the service's limits for this execution.
	Limits Limits
	// Stdin is the script's standard input; empty means none (input()
	// raises EOFError).
	Stdin string
}

// File is an input file for the script.
type File struct {
	// Path is where the script finds the file, relative to its working
	// directory, e.g. "data/in.csv". It must not be absolute or contain "..".
	Path string
	// Content is the file's content. Valid UTF-8 is sent as text, anything
	// else as base64; the script sees these exact bytes either way.
	Content []byte
}

// ReadFile reads the local file at name into a File at path in the
// script's working directory; an empty path means the base name of name.
func ReadFile(name, path string) (File, error) {
	content, err := os.ReadFile(name)
	if err != nil {
		return File{}, fmt.Errorf("pyexec: reading input file: %w", err)
	}
	if path == "" {
		path = filepath.Base(name)
	}
	return File{Path: path, Content: content}, nil
}

// Limits tighten the service's limits for one execution; they cannot loosen
// them. The zero value of each field means the service's own limit.
type Limits struct {
	// Timeout is the wall-clock limit; it is sent in seconds.
	Timeout time.Duration
	// MemoryMB is the memory limit in MiB.
	MemoryMB int
}

// wire is r as the JSON body of POST /execute.
func (r Request) wire() ([]byte, error) {
	body := api.Request{Script: r.Script, Stdin: r.Stdin}
	if r.Input != nil {
		input, err := json.Marshal(r.Input)
		if err != nil {
			return nil, fmt.Errorf("pyexec: encoding input: %w", err)
		}
		body.Input = input
	}
	for _, f := range r.Files {
		body.Files = append(body.Files, f.wire())
	}
	if r.Limits != (Limits{}) {
		body.Limits = &api.Limits{TimeoutSeconds: r.Limits.Timeout.Seconds(), MemoryMB: r.Limits.MemoryMB}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("pyexec: encoding request: %w", err)
	}
	return b, nil
}

// wire is f as the request carries it: text where it is valid UTF-8, so the
// request stays readable, and base64 for anything else.
func (f File) wire() api.File {
	if utf8.Valid(f.Content) {
		return api.File{Path: f.Path, Content: string(f.Content), Encoding: api.EncodingUTF8}
	}
	return api.File{Path: f.Path, Content: base64.StdEncoding.EncodeToString(f.Content), Encoding: api.EncodingBase64}
}
