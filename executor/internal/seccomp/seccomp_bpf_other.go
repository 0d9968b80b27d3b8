//go:build !amd64

package seccomp

// syscallTable has no table off x86_64: there the fork mode's self-test
// fails and the executor uses a slower mode whose filter nsjail compiles.
func syscallTable() (map[string]int, uint32) { return nil, 0 }
