//go:build integration

package main

import (
	"bytes"
	"errors"
	"os/exec"
	"testing"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// The integration tests run the service as the built binary
// (testsupport.StartBinary); Main removes the binary once they are done.
func TestMain(m *testing.M) { testsupport.Main(m) }

// runBuiltCLI runs cmd, the built pyexec-cli with its arguments and environment,
// and returns its exit status and what it printed, failing t if it could
// not be run at all.
func runBuiltCLI(t *testing.T, cmd *exec.Cmd) ran {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("running pyexec-cli: %v", err)
	}
	return ran{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
}
