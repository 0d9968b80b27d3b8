//go:build integration

package main

import (
	"image/png"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// The built command against the real service, run from the repository's
// root as the README shows it.
func TestCommandAgainstTheService(t *testing.T) {
	svc := testsupport.StartBinary(t, map[string]string{"PYEXEC_TIMEOUT_SECONDS": "2"})
	svc.Health(t, http.StatusOK)
	url := svc.URL
	cli := buildCLI(t)
	scripts := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(scripts, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// pyexec-cli runs cli with args and PYEXEC_URL=serviceURL.
	pyexecCLI := func(t *testing.T, serviceURL string, args ...string) ran {
		t.Helper()
		cmd := exec.Command(cli, args...)
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "PYEXEC_URL="+serviceURL)
		return runBuiltCLI(t, cmd)
	}

	t.Run("a chart the script drew is saved as a PNG in --out", func(t *testing.T) {
		plot := write("plot.py", "import pandas as pd\n\ndef main():\n"+
			"    df = pd.DataFrame({'x': range(10), 'y': [v * v for v in range(10)]})\n"+
			"    df.plot(x='x', y='y', figsize=(3, 2))\n    return len(df)\n")
		charts := filepath.Join(t.TempDir(), "charts")
		got := pyexecCLI(t, url, "run", plot, "--out", charts)
		if got.code != exitOK || got.stdout != "10\n" || !strings.Contains(got.stderr, "display-1.png") {
			t.Fatalf("run plot.py --out = %d, stdout %q, stderr %q; want 0, 10 and display-1.png written", got.code, got.stdout, got.stderr)
		}
		f, err := os.Open(filepath.Join(charts, "display-1.png"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cfg, err := png.DecodeConfig(f)
		if err != nil || cfg.Width != 300 || cfg.Height != 200 {
			t.Errorf("display-1.png = %dx%d, %v; want a 300x200 PNG (3x2 inches at 100 DPI)", cfg.Width, cfg.Height, err)
		}
	})

	t.Run("the pandas example prints its documented result", func(t *testing.T) {
		got := pyexecCLI(t, url, "run", "examples/pandas_sum.py")
		want := "{\n  \"sum_a\": 6,\n  \"sum_b\": 15\n}\n"
		if got.code != exitOK || got.stdout != want || got.stderr != "" {
			t.Errorf("run examples/pandas_sum.py = %d, stdout %q, stderr %q; want 0, %q", got.code, got.stdout, got.stderr, want)
		}
	})

	t.Run("--json prints the service's answer", func(t *testing.T) {
		got := pyexecCLI(t, url, "run", "examples/pandas_sum.py", "--json")
		want := `{"result":{"sum_a":6,"sum_b":15},"stdout":""}` + "\n"
		if got.code != exitOK || got.stdout != want {
			t.Errorf("run --json = %d, stdout %q; want 0, %q", got.code, got.stdout, want)
		}
	})

	t.Run("stdout comes before the result", func(t *testing.T) {
		got := pyexecCLI(t, url, "run", "examples/hello.py")
		want := "Calculating...\n{\n  \"answer\": 4\n}\n"
		if got.code != exitOK || got.stdout != want {
			t.Errorf("run examples/hello.py = %d, stdout %q; want 0, %q", got.code, got.stdout, want)
		}
	})

	scriptErrors := []struct {
		name       string
		script     string
		wantStderr []string
	}{
		{"no main", "examples/no_main.py", []string{"pyexec-cli: no_main: Script must contain a 'def main()' function\n"}},
		{"a timeout", write("slow.py", "import time\ndef main():\n    time.sleep(30)\n"), []string{"pyexec-cli: timeout: Execution timed out after 2 seconds\n"}},
		{"an exception", write("raises.py", "def main():\n    return 1 / 0\n"), []string{"pyexec-cli: exception: ZeroDivisionError: division by zero\n", "Traceback", "in main"}},
	}
	for _, tt := range scriptErrors {
		t.Run(tt.name+" exits 1", func(t *testing.T) {
			got := pyexecCLI(t, url, "run", tt.script)
			if got.code != exitScriptError {
				t.Errorf("run %s = %d, stderr %q; want %d", tt.script, got.code, got.stderr, exitScriptError)
			}
			for _, want := range append(tt.wantStderr, "pyexec-cli: execution ") {
				if !strings.Contains(got.stderr, want) {
					t.Errorf("stderr = %q, want it to contain %q", got.stderr, want)
				}
			}
		})
	}

	t.Run("a bad flag exits 2", func(t *testing.T) {
		if got := pyexecCLI(t, url, "run", "examples/hello.py", "--memory", "lots"); got.code != exitUsage {
			t.Errorf("run --memory lots = %d, stderr %q; want %d", got.code, got.stderr, exitUsage)
		}
	})

	t.Run("connection refused exits 3", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := "http://" + l.Addr().String()
		l.Close()
		got := pyexecCLI(t, closed, "run", "examples/hello.py")
		if got.code != exitUnavailable || !strings.Contains(got.stderr, "connection refused") {
			t.Errorf("run against %s = %d, stderr %q; want %d, connection refused", closed, got.code, got.stderr, exitUnavailable)
		}
	})
}
