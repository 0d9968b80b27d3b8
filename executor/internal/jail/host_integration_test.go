//go:build integration

package jail

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pyexec/pyexec/executor/internal/cgroups"
	"github.com/pyexec/pyexec/executor/internal/hosttree"
	"github.com/pyexec/pyexec/executor/internal/uids"
)

// loadEverythingScript imports numpy, pandas and every extension module of
// the standard library the interpreter has, loads what the C library loads
// by itself, and prints every file mapped into the process.
const loadEverythingScript = `
import ctypes, glob, importlib, os, sys, sysconfig, threading
import numpy, pandas
numpy.linalg.inv(numpy.eye(3) + 1)
pandas.DataFrame({"t": pandas.date_range("2024-01-01", periods=3, tz="Europe/Berlin")}).describe()
dynload = os.path.join(sysconfig.get_paths()["platstdlib"], "lib-dynload")
for path in glob.glob(os.path.join(dynload, "*.so")):
    name = os.path.basename(path).split(".")[0]
    try:
        importlib.import_module(name)
    except Exception:
        pass  # a module whose library the host lacks cannot load outside a jail either
ctypes.CDLL("libgcc_s.so.1")
with open("/proc/self/maps") as f:
    for line in f:
        fields = line.split(None, 5)
        if len(fields) == 6 and fields[5].startswith("/"):
            print(fields[5].strip())
`

// The jail's tree holds every file the interpreter maps when it has loaded
// all it can: found the way the loader finds them, checked against what
// the loader did.
func TestTheJailTreeHoldsEveryFileTheInterpreterLoads(t *testing.T) {
	cfg := realConfig(t)
	interp, err := hosttree.Probe(context.Background(), cfg.PythonPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cfg.PythonPath, "-I", "-B", "-c", loadEverythingScript)
	cmd.Env = jailEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("loading everything: %v", err)
	}
	mapped := slices.Compact(slices.Sorted(slices.Values(strings.Fields(string(out)))))
	if len(mapped) < 20 {
		t.Fatalf("the interpreter mapped only %v: the probe is broken", mapped)
	}
	for _, p := range mapped {
		if !slices.ContainsFunc(interp.Binds, func(bind string) bool { return hosttree.Under(p, bind) }) {
			t.Errorf("the interpreter maps %s, which no bind of the jail holds", p)
		}
	}
	t.Logf("binds: %s", strings.Join(interp.Binds, " "))
	t.Logf("%d symlinks", len(interp.Links))
}

// Nothing else of the host: no directory of programs, no compiler, no Go
// toolchain, no shell. What a bind of a whole directory would expose is
// refused here, before any jail exists.
func TestTheJailTreeHoldsNoOtherProgram(t *testing.T) {
	cfg := realConfig(t)
	interp, err := hosttree.Probe(context.Background(), cfg.PythonPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/usr/bin/gcc", "/usr/bin/env", "/usr/bin/sh", "/bin/sh", "/usr/local/go", "/usr/local/bin",
		"/usr/sbin/ldconfig", "/usr/bin/su", "/usr/share/doc", "/usr/include"} {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			real = p // absent here; still never to be bound
		}
		for _, bind := range interp.Binds {
			if hosttree.Under(real, bind) || hosttree.Under(p, bind) {
				t.Errorf("the bind %s brings %s into every jail", bind, p)
			}
		}
	}
	for _, bind := range interp.Binds {
		if dir := filepath.Dir(bind); (dir == "/usr/bin" || dir == "/usr/sbin") && bind != mustResolve(t, cfg.PythonPath) {
			t.Errorf("the bind %s is a program other than the interpreter", bind)
		}
	}
}

func mustResolve(t *testing.T, p string) string {
	t.Helper()
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return real
}

// Every jail's configuration, with this host's tree in it, still fits the
// pipe nsjail reads it from: a host with more libraries makes it longer.
func TestTheJailConfigurationsWithThisHostsTreeFitTheirPipe(t *testing.T) {
	cfg := realConfig(t)
	interp, err := hosttree.Probe(context.Background(), cfg.PythonPath)
	if err != nil {
		t.Fatal(err)
	}
	ids := uids.Preferred(cfg.Concurrency)
	base := baseSpec(interp, ids, cfg, cgroups.V2)
	placed := func(s *jailSpec) {
		s.OutsideUID = ids.Cold(0)
		s.CgroupMemMount, s.CgroupPidsMount, s.CgroupParent = "/sys/fs/cgroup", "/sys/fs/cgroup", "pyexec/1-1/exec-id"
	}
	cold, err := base.derive(placed)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := base.derive(func(s *jailSpec) { placed(s); preloaded(s) })
	if err != nil {
		t.Fatal(err)
	}
	server, err := forkServerSpec(base, cfg, plainServer)
	if err != nil {
		t.Fatal(err)
	}
	for name, spec := range map[string]jailSpec{"cold": cold, "pool": pool, "fork server": server} {
		n := len(jailConfig(spec))
		if n > maxJailConfig {
			t.Errorf("the %s jail's configuration is %d bytes, past the %d its pipe takes", name, n, maxJailConfig)
		}
		t.Logf("%s jail: %d bytes of configuration, %d binds, %d symlinks", name, n, len(spec.Interp.Binds), len(spec.Interp.Links))
	}
}
