// Package size states sizes the way the API's limit messages do.
package size

import "fmt"

// Text states a size the way the API's limit messages do: in MB or KB
// when the unit divides it ("10MB", "512KB"; "10 MB" with sep " "), else in
// bytes. The executor, the transport and the MCP tool all use it, so a limit
// reads the same wherever it is stated.
func Text(n int64, sep string) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d%sMB", n>>20, sep)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d%sKB", n>>10, sep)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}
