// Package mcpcheck runs tests/mcp/client_check.py, the independent MCP
// client, against an MCP endpoint: the Python SDK (PyPI's mcp, pinned and
// hashed), installed apart from the runtime by scripts/install-mcp-client.sh
// into $PYEXEC_MCP_CLIENT. Only tests import it. It depends on nothing of
// pyexec, so that the MCP package's own tests can use it too.
package mcpcheck

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// defaultDir is where scripts/install-mcp-client.sh installs the client
// when PYEXEC_MCP_CLIENT is unset.
const defaultDir = "/opt/pyexec-tools/mcp-client"

// Python is the interpreter of the independent client. It fails t, never
// skips, when the client is missing: the test command installs it, so its
// absence is a broken setup, not a reason to pass.
func Python(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("PYEXEC_MCP_CLIENT")
	if dir == "" {
		dir = defaultDir
	}
	python := filepath.Join(dir, "venv", "bin", "python3")
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("MCP client missing (%v): run scripts/install-mcp-client.sh or set PYEXEC_MCP_CLIENT", err)
	}
	return python
}

// Run runs the check script (tests/mcp/client_check.py, as a path from the
// test's working directory) against the MCP endpoint url, speaking protocol
// ("auto" or "legacy"), and returns its output and whether every check
// passed. It fails t if the script did not run to its end.
func Run(t testing.TB, script, url, protocol string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Python(t), script, "--url", url, "--protocol", protocol, "--timeout", "60")
	// The endpoint is on loopback: a proxy set in the environment (for
	// package registries) must not carry the requests.
	cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	out, err := cmd.CombinedOutput()
	var exited *exec.ExitError
	if err != nil && (!errors.As(err, &exited) || ctx.Err() != nil) {
		t.Fatalf("%s did not run to its end: %v\n%s", script, err, out)
	}
	return string(out), err == nil
}
