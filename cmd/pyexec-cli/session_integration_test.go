//go:build integration

package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// The built command's sessions against the real service: the repl fed by
// a pipe, and a session kept across commands.
func TestSessionsAgainstTheService(t *testing.T) {
	svc := testsupport.StartBinary(t, map[string]string{"PYEXEC_MODE": "fork", "PYEXEC_TIMEOUT_SECONDS": "10"})
	svc.Health(t, http.StatusOK)
	cli := buildCLI(t)
	// pyexecCLI runs cli with args, stdin and PYEXEC_URL set to the service.
	pyexecCLI := func(t *testing.T, stdin string, args ...string) ran {
		t.Helper()
		cmd := exec.Command(cli, args...)
		cmd.Env = append(os.Environ(), "PYEXEC_URL="+svc.URL)
		cmd.Stdin = strings.NewReader(stdin)
		return runBuiltCLI(t, cmd)
	}

	t.Run("the repl keeps a DataFrame from line to line", func(t *testing.T) {
		stdin := `import pandas as pd, io; df = pd.read_csv(io.StringIO("a,b\n1,2\n3,4\n"))
df.a.sum()
def f(x):
    return x * 2

f(df.b.sum())
`
		got := pyexecCLI(t, stdin, "repl")
		if got.code != exitOK || got.stdout != "4\n12\n" {
			t.Errorf("repl = %d, stdout %q, stderr %q; want 0, 4 and 12", got.code, got.stdout, got.stderr)
		}
		if !strings.Contains(got.stderr, ">>> ") || !strings.Contains(got.stderr, "... ") {
			t.Errorf("stderr = %q, want the prompts", got.stderr)
		}
	})

	t.Run("an exception in the repl keeps the session", func(t *testing.T) {
		got := pyexecCLI(t, "x = 21\n1 / 0\nx * 2\nquit\n", "repl")
		if got.code != exitOK || got.stdout != "42\n" ||
			!strings.Contains(got.stderr, "pyexec-cli: exception: ZeroDivisionError: division by zero\n") {
			t.Errorf("repl = %d, stdout %q, stderr %q; want 0, 42 and the ZeroDivisionError on stderr", got.code, got.stdout, got.stderr)
		}
	})

	t.Run("a session serves later commands until it ends", func(t *testing.T) {
		csv := filepath.Join(t.TempDir(), "in.csv")
		if err := os.WriteFile(csv, []byte("a,b\n1,2\n3,4\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		got := pyexecCLI(t, "", "session", "new", "--file", csv+"=data/in.csv")
		id := strings.TrimSpace(got.stdout)
		if got.code != exitOK || id == "" {
			t.Fatalf("session new = %d, stdout %q, stderr %q; want 0 and an ID", got.code, got.stdout, got.stderr)
		}
		load := filepath.Join(t.TempDir(), "load.py")
		sum := filepath.Join(t.TempDir(), "sum.py")
		os.WriteFile(load, []byte("import pandas as pd\ndf = pd.read_csv('data/in.csv')\n"), 0o644)
		os.WriteFile(sum, []byte("int(df.a.sum() + df.b.sum())\n"), 0o644)

		if got := pyexecCLI(t, "", "run", "--session", id, load); got.code != exitOK || got.stdout != "null\n" {
			t.Errorf("run --session load.py = %d, stdout %q, stderr %q; want 0, null", got.code, got.stdout, got.stderr)
		}
		if got := pyexecCLI(t, "", "run", "--session", id, sum); got.code != exitOK || got.stdout != "10\n" {
			t.Errorf("run --session sum.py = %d, stdout %q, stderr %q; want 0, 10", got.code, got.stdout, got.stderr)
		}
		if got := pyexecCLI(t, "", "session", "show", id); got.code != exitOK || !strings.Contains(got.stdout, `"state": "idle"`) {
			t.Errorf("session show = %d, stdout %q, stderr %q; want 0 and the idle state", got.code, got.stdout, got.stderr)
		}
		if got := pyexecCLI(t, "", "session", "end", id); got.code != exitOK {
			t.Errorf("session end = %d, stderr %q; want 0", got.code, got.stderr)
		}
		if got := pyexecCLI(t, "", "run", "--session", id, sum); got.code != exitScriptError || !strings.Contains(got.stderr, "session_not_found") {
			t.Errorf("run --session after the end = %d, stderr %q; want %d, session_not_found", got.code, got.stderr, exitScriptError)
		}
	})
}
