//go:build integration

package client_test

import (
	"testing"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// The integration tests run the service as the built binary
// (testsupport.StartBinary); Main removes the binary once they are done.
func TestMain(m *testing.M) { testsupport.Main(m) }
