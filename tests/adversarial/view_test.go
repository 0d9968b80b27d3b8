//go:build integration

package adversarial

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// What the jail shows: a script that walks every directory it can see finds
// the interpreter, its libraries and data, and nothing of how the service
// is built or run: no nsjail, no Go source, no Dockerfile or Cloud Build
// file, no service binary, no other program of the host. Every mode, since
// the fork server's jail is built apart from cold and pool mode's, and the
// chart server's too (a second fork server, for scripts that draw).
func TestAdversarialTheJailShowsOnlyWhatScriptsUse(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The service runs in this test binary here, and as cmd/pyexec in
	// production: neither name may show.
	binaries := []string{"pyexec", filepath.Base(self)}
	absent := []string{"/usr/local/go", "/usr/local/bin", "/usr/local", "/usr/bin/gcc", "/usr/bin/cc", "/usr/bin/go",
		"/usr/bin/sh", "/bin/sh", "/bin/bash", "/usr/bin/env", "/usr/bin/perl", "/usr/bin/apt", "/usr/sbin/ldconfig",
		"/usr/bin/su", "/usr/bin/mount", "/usr/include", "/usr/share/doc", "/usr/lib/gcc", "/usr/libexec",
		"/opt/pyexec/bin", "/root", "/home", "/var", "/srv", "/workspace"}
	modes := []string{"cold", "pool", "fork", "chart"}
	if asCells {
		// Sessions live in the fork mode's plain server only.
		modes = []string{"fork"}
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			serviceMode, prefix := mode, ""
			if mode == "chart" {
				serviceMode, prefix = "fork", inChartServer()
			}
			ts := testsupport.StartService(t, map[string]string{"PYEXEC_MODE": serviceMode, "PYEXEC_CONCURRENCY": "2", "PYEXEC_TIMEOUT_SECONDS": "60"})
			if mode == "chart" {
				awaitChartServer(t, ts)
			}
			var got struct {
				Found     []string        `json:"found"`
				Readable  []string        `json:"readable"`
				Present   []string        `json:"present"`
				Seen      int             `json:"seen"`
				Truncated bool            `json:"truncated"`
				Landmarks map[string]bool `json:"landmarks"`
				UsrBin    []string        `json:"usr_bin"`
			}
			runProbe(t, ts, prefix+`
import json, stat
BINARIES = set(`+pyLiteral(binaries)+`)
ABSENT = `+pyLiteral(absent)+`
LIMIT = 200000

def suspicious(path, is_file):
    name = os.path.basename(path)
    return ("nsjail" in name.lower() or name.endswith(".go") or name in ("Dockerfile", "cloudbuild.yaml", "cloudbuild.yml")
            or (is_file and name in BINARIES))

def main():
    found, seen, truncated = [], 0, False
    for top, dirs, files in os.walk("/", onerror=lambda e: None):
        if top == "/":
            dirs[:] = [d for d in dirs if d not in ("proc", "sys")]
        for name in dirs + files:
            path = os.path.join(top, name)
            seen += 1
            if suspicious(path, name in files):
                found.append(path)
        if seen > LIMIT:
            truncated = True
            break
    readable = [p for p in found if os.access(p, os.R_OK)]
    landmarks = {p: os.path.exists(p) for p in (
        sys.executable, os.path.join(os.path.dirname(os.__file__), "os.py"), json.__file__,
        __import__("numpy").__file__, __import__("pandas").__file__)}
    try:
        usr_bin = sorted(os.listdir("/usr/bin"))
    except OSError:
        usr_bin = []
    return {"found": found[:200], "readable": readable[:200], "seen": seen, "truncated": truncated,
            "present": [p for p in ABSENT if os.path.lexists(p)], "landmarks": landmarks, "usr_bin": usr_bin}
`, &got)
			// The walk must have covered the interpreter's tree, or finding
			// nothing would prove nothing.
			if got.Seen < 1000 || len(got.Landmarks) == 0 {
				t.Fatalf("the walk saw %d entries and landmarks %v: it did not cover the jail", got.Seen, got.Landmarks)
			}
			for p, ok := range got.Landmarks {
				if !ok {
					t.Errorf("the walk's landmark %s does not exist in the jail", p)
				}
			}
			if got.Truncated {
				t.Errorf("the jail shows more than %d entries outside /proc and /sys", got.Seen)
			}
			for _, p := range got.Found {
				t.Errorf("the jail shows %s (readable: %v)", p, slices.Contains(got.Readable, p))
			}
			for _, p := range got.Present {
				t.Errorf("the jail has %s", p)
			}
			// The one program of the host's /usr/bin a script may run is the
			// interpreter.
			for _, name := range got.UsrBin {
				if !strings.HasPrefix(name, "python3") {
					t.Errorf("the jail's /usr/bin has %s", name)
				}
			}
			t.Logf("%s mode: the walk saw %d entries; /usr/bin holds %v", mode, got.Seen, got.UsrBin)
		})
	}
}

// inChartServer is what makes a script run in the chart server: naming
// matplotlib. The script checks that pyplot was imported before it ran.
func inChartServer() string {
	return "import sys\nassert \"matplotlib.pyplot\" in sys.modules, \"not run in the chart server\"\n"
}

// awaitChartServer has a script that draws start the chart server and waits
// until scripts run there.
func awaitChartServer(t *testing.T, ts *testsupport.Service) {
	t.Helper()
	probe := "import sys\ndef main():\n    return 'matplotlib.pyplot' in sys.modules\n"
	testsupport.PollUntil(t, 2*time.Minute, "the chart server to serve", func() bool {
		return string(execute(t, ts, probe).Result) == "true"
	})
}
