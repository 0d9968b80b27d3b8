//go:build integration

package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// The integration tests run the service as the built binary
// (testsupport.StartBinary); Main removes the binary once they are done.
func TestMain(m *testing.M) { testsupport.Main(m) }

// buildCLI builds the command into a directory of t's and returns its path.
func buildCLI(t *testing.T) string {
	t.Helper()
	cli := filepath.Join(t.TempDir(), "pyexec-cli")
	if out, err := exec.Command("go", "build", "-o", cli, ".").CombinedOutput(); err != nil {
		t.Fatalf("building pyexec-cli: %v\n%s", err, out)
	}
	return cli
}

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
