package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pyexec/pyexec/client"
)

// displayFiles names the rich outputs as the files --out writes them:
// display-N.png, .html or .txt beside the output files, numbered in the
// order produced.
func displayFiles(items []client.Display) []client.OutputFile {
	ext := map[string]string{"image/png": ".png", "text/html": ".html", "text/plain": ".txt"}
	var files []client.OutputFile
	for i, d := range items {
		e, ok := ext[d.Type]
		if !ok {
			e = ".bin"
		}
		files = append(files, client.OutputFile{Path: fmt.Sprintf("display-%d%s", i+1, e), Content: d.Data})
	}
	return files
}

// saveOutputs writes the files the script left in its outputs/ directory
// into dir, telling w what it wrote, and returns the exit status. Without a
// dir it only lists them.
//
// The paths come from the service, so none may lead out of dir: all are
// checked before any is written, and writing goes through an os.Root, which
// also refuses symbolic links out of dir.
func saveOutputs(dir string, files []client.OutputFile, w io.Writer) int {
	if len(files) == 0 {
		return exitOK
	}
	if dir == "" {
		fmt.Fprintf(w, "pyexec-cli: %d output files not saved (use --out DIR):\n", len(files))
		for _, f := range files {
			fmt.Fprintf(w, "  %s (%d bytes)\n", f.Path, len(f.Content))
		}
		return exitOK
	}
	rels := make([]string, len(files))
	for i, f := range files {
		rels[i] = filepath.FromSlash(strings.TrimPrefix(f.Path, "outputs/"))
		if !filepath.IsLocal(rels[i]) {
			fmt.Fprintf(w, "pyexec-cli: refusing output file %q: it would be written outside %s\n", f.Path, dir)
			return exitScriptError
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(w, "pyexec-cli: saving output files: %v\n", err)
		return exitScriptError
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		fmt.Fprintf(w, "pyexec-cli: saving output files: %v\n", err)
		return exitScriptError
	}
	defer root.Close()
	for i, f := range files {
		if err := root.MkdirAll(filepath.Dir(rels[i]), 0o755); err != nil {
			fmt.Fprintf(w, "pyexec-cli: saving %s: %v\n", f.Path, err)
			return exitScriptError
		}
		if err := root.WriteFile(rels[i], f.Content, 0o644); err != nil {
			fmt.Fprintf(w, "pyexec-cli: saving %s: %v\n", f.Path, err)
			return exitScriptError
		}
		fmt.Fprintf(w, "pyexec-cli: wrote %s (%d bytes)\n", filepath.Join(dir, rels[i]), len(f.Content))
	}
	return exitOK
}
