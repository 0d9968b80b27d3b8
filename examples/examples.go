// Package examples holds the example scripts docs/api.md documents, embedded so
// that the playground offers exactly these files in its menu.
package examples

import "embed"

// FS holds every examples/*.py file, at its base name (e.g. "hello.py").
//
//go:embed *.py
var FS embed.FS
