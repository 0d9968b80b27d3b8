//go:build integration

// Package integration runs the service with the real sandbox over real
// HTTP on loopback: in the test's process (testsupport.StartService), or as
// the built binary (testsupport.StartBinary) where a test needs a process
// of its own, as Cloud Run runs it.
package integration

import (
	"testing"

	"github.com/pyexec/pyexec/internal/testsupport"
)

func TestMain(m *testing.M) { testsupport.Main(m) }
