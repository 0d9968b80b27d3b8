//go:build integration

package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// outputPaths is the paths of an answer's output files.
func outputPaths(t *testing.T, r testsupport.Response) []string {
	t.Helper()
	var body struct {
		Files []struct {
			Path string `json:"path"`
		} `json:"files"`
	}
	if err := json.Unmarshal(r.Raw, &body); err != nil {
		t.Fatalf("answer %s: %v", testsupport.Clip(r.Raw), err)
	}
	var paths []string
	for _, f := range body.Files {
		paths = append(paths, f.Path)
	}
	return paths
}

// Output files come back from outputs/ of the working directory the
// execution started in, wherever the script went since, and every file that
// does not come back is refused by a rule the answer names, in every mode.
func TestOutputFilesComeFromTheWorkingDirectoryInEveryMode(t *testing.T) {
	for _, mode := range []string{"cold", "pool", "fork"} {
		t.Run(mode, func(t *testing.T) {
			ts := testsupport.StartService(t, map[string]string{"PYEXEC_MODE": mode, "PYEXEC_TIMEOUT_SECONDS": "30"})
			for _, tt := range []struct {
				name   string
				script string
				paths  string // the output files, joined by spaces; "" for a failure
				want   failure
			}{
				{
					name: "a script that changes to / still returns its outputs",
					script: "import os\n\ndef main():\n    os.makedirs('outputs', exist_ok=True)\n" +
						"    open('outputs/a.txt', 'w').write('a')\n    os.chdir('/')\n    return 1\n",
					paths: "outputs/a.txt",
				},
				{
					name: "another directory's outputs/ is not the execution's",
					script: "import os\n\ndef main():\n    os.makedirs('outputs', exist_ok=True)\n    open('outputs/mine.txt', 'w').write('m')\n" +
						"    os.makedirs('/tmp/x/outputs')\n    os.chdir('/tmp/x')\n    open('outputs/elsewhere.txt', 'w').write('e')\n    return 1\n",
					paths: "outputs/mine.txt",
				},
				{
					name: "a file 1,100 directories deep comes back",
					script: "import os\n\ndef main():\n    os.makedirs('outputs', exist_ok=True)\n    os.chdir('outputs')\n" +
						"    for _ in range(1100):\n        os.mkdir('d')\n        os.chdir('d')\n    open('f', 'w').write('deep')\n    return 1\n",
					paths: "outputs/" + strings.Repeat("d/", 1100) + "f",
				},
				{
					name: "a path over 4,095 bytes is refused by name",
					script: "import os\n\ndef main():\n    os.makedirs('outputs', exist_ok=True)\n    os.chdir('outputs')\n" +
						"    for _ in range(20):\n        os.mkdir('d' * 250)\n        os.chdir('d' * 250)\n    open('f', 'w').write('far')\n    return 1\n",
					want: failure{400, "invalid_result", "Output file path is longer than 4095 bytes: outputs/ddd"},
				},
				{
					name: "an unreadable file is refused by name",
					script: "import os\n\ndef main():\n    os.makedirs('outputs', exist_ok=True)\n    open('outputs/secret.txt', 'w').write('s')\n" +
						"    os.chmod('outputs/secret.txt', 0)\n    return 1\n",
					want: failure{400, "invalid_result", "Output file outputs/secret.txt cannot be read: Permission denied"},
				},
				{
					name: "an unreadable directory is refused by name",
					script: "import os\n\ndef main():\n    os.makedirs('outputs/locked', exist_ok=True)\n    open('outputs/locked/x.txt', 'w').write('x')\n" +
						"    os.chmod('outputs/locked', 0)\n    return 1\n",
					want: failure{400, "invalid_result", "Output file outputs/locked cannot be read: Permission denied"},
				},
				{
					name: "descriptors the script left open do not cost a file",
					script: "import os\n\nkept = []\n\ndef main():\n    os.makedirs('outputs/a/b', exist_ok=True)\n    open('outputs/a/b/c.txt', 'w').write('c')\n" +
						"    try:\n        while True:\n            kept.append(os.open('/dev/null', os.O_RDONLY))\n    except OSError:\n        pass\n" +
						"    for fd in kept[-2:]:\n        os.close(fd)\n    return 1\n",
					paths: "outputs/a/b/c.txt",
				},
			} {
				t.Run(tt.name, func(t *testing.T) {
					r := ts.Execute(t, tt.script)
					if tt.want.status != 0 {
						checkFailure(t, tt.name, r, tt.want)
						return
					}
					if got := strings.Join(outputPaths(t, r), " "); r.Status != http.StatusOK || got != tt.paths {
						t.Errorf("%s mode: %s = %d %s, want 200 with output files %q", mode, tt.name, r.Status, testsupport.Clip(r.Raw), tt.paths)
					}
				})
			}
		})
	}
}
