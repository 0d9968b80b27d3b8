//go:build integration

package adversarial

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// Host files and plantedSecrets: nothing of the host's files, environment or
// credentials is visible from a jail, whatever path or /proc entry is tried.
func TestAdversarialHostFilesAndSecrets(t *testing.T) {
	sec := plantSecrets(t)
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_CONCURRENCY": "4"})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	source := filepath.Join(testsupport.RepoRoot(t), "function.go")
	home, _ := os.UserHomeDir()

	// Each path is a host file that exists here (or a well-known secret
	// location); from the jail, opening it must fail as not found or not
	// permitted, and nothing of it may come back.
	t.Run("host files cannot be opened", func(t *testing.T) {
		t.Parallel()
		paths := []string{
			"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf",
			"/root/.ssh/id_rsa", "/root/.bash_history", "/root/.config/gcloud/application_default_credentials.json",
			"/var/run/plantedSecrets/kubernetes.io/serviceaccount/token", "/run/plantedSecrets/google",
			sec.credsFile, sec.hostFile, self, source, filepath.Join(home, ".ssh", "id_rsa"),
			"/proc/1/root/etc/shadow", "/proc/self/root/etc/shadow", "/proc/1/cwd/function.go",
		}
		for _, p := range []string{sec.credsFile, sec.hostFile, self, source} {
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("planted host file %s is missing: %v", p, err)
			}
		}
		var got map[string]attemptResult
		r := runProbe(t, ts, fmt.Sprintf(`
def main():
    return {p: attempt(lambda p=p: read(p)) for p in %s}
`, pyLiteral(paths)), &got)
		sec.assertAbsent(t, r)
		for _, p := range paths {
			if o := got[p]; !o.failedWith(enoent, eacces, eperm) {
				t.Errorf("open(%q) from the jail %s, want FileNotFoundError or PermissionError", p, o)
			}
		}
	})

	// The environment: the jail's own, every /proc/<pid>/environ it can
	// see, and the interpreter's view all hold exactly the jail's variables.
	t.Run("no environment variable of the service reaches the jail", func(t *testing.T) {
		t.Parallel()
		var got struct {
			Environ  map[string]string `json:"environ"`
			ProcEnvs map[string]string `json:"proc_envs"`
		}
		r := runProbe(t, ts, `
def main():
    envs = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit() or pid in ("self", "thread-self"):
            try:
                envs[pid] = read("/proc/%s/environ" % pid).decode("utf-8", "replace")
            except OSError as exc:
                envs[pid] = type(exc).__name__
    return {"environ": dict(os.environ), "proc_envs": envs}
`, &got)
		sec.assertAbsent(t, r)
		allowed := map[string]bool{"PATH": true, "HOME": true, "TMPDIR": true, "LANG": true, "LC_CTYPE": true,
			"OPENBLAS_NUM_THREADS": true, "OMP_NUM_THREADS": true, "MKL_NUM_THREADS": true, "NUMEXPR_NUM_THREADS": true,
			"MPLBACKEND": true, "MPLCONFIGDIR": true, "JE_ARROW_MALLOC_CONF": true}
		for name := range got.Environ {
			if !allowed[name] {
				t.Errorf("os.environ in the jail has %s, which is not one of the jail's variables", name)
			}
		}
		if len(got.ProcEnvs) == 0 {
			t.Fatal("no /proc/<pid>/environ was readable, not even the jail's own: the probe did not run")
		}
		for pid, env := range got.ProcEnvs {
			for _, kv := range strings.Split(strings.TrimRight(env, "\x00"), "\x00") {
				if name, _, ok := strings.Cut(kv, "="); ok && !allowed[name] {
					t.Errorf("/proc/%s/environ holds %s", pid, name)
				}
			}
		}
	})

	// The mount table shows what the jail is built from. Every mount's
	// source root must be either the same path as inside, the root of a
	// filesystem of the jail's own, or a device node: a host directory
	// (where the service keeps files, its working directory, a temp dir)
	// must not show.
	t.Run("mountinfo reveals no host path", func(t *testing.T) {
		t.Parallel()
		var got struct {
			Mountinfo string `json:"mountinfo"`
			Mounts    string `json:"mounts"`
			Cwd       string `json:"cwd"`
		}
		r := runProbe(t, ts, `
def main():
    return {"mountinfo": read("/proc/self/mountinfo", "r"), "mounts": read("/proc/mounts", "r"), "cwd": os.getcwd()}
`, &got)
		sec.assertAbsent(t, r)
		for _, hostPath := range []string{testsupport.RepoRoot(t), os.TempDir() + "/", filepath.Dir(self), filepath.Dir(sec.hostFile)} {
			if strings.Contains(got.Mountinfo, hostPath) || strings.Contains(got.Mounts, hostPath) {
				t.Errorf("the jail's mount table names the host path %s:\n%s", hostPath, got.Mountinfo)
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(got.Mountinfo), "\n") {
			f := strings.Fields(line)
			if len(f) < 5 {
				t.Fatalf("mountinfo line %q has too few fields", line)
			}
			root, point := f[3], f[4]
			switch {
			case root == "/", root == point, "/dev"+root == point:
			case strings.HasPrefix(root, "/dynamic.") && strings.HasSuffix(root, "//deleted"):
				// nsjail's files written from the configuration, in its own tmpfs.
			default:
				t.Errorf("mount %s comes from %s, a path the jail does not show there", point, root)
			}
		}
		if got.Cwd != "/tmp" {
			t.Errorf("the jail's working directory is %q, want /tmp", got.Cwd)
		}
	})

	t.Run("the root holds only the jail's own tree", func(t *testing.T) {
		t.Parallel()
		var got struct {
			Root []string      `json:"root"`
			Etc  []string      `json:"etc"`
			Home attemptResult `json:"home"`
		}
		runProbe(t, ts, `
def main():
    return {"root": sorted(os.listdir("/")), "etc": sorted(os.listdir("/etc")), "home": attempt(lambda: os.listdir("/home"))}
`, &got)
		for _, name := range got.Root {
			switch name {
			case "bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "dev", "proc", "tmp", "pyexec", "opt":
			default:
				t.Errorf("the jail's / has %q, which the jail does not build", name)
			}
		}
		for _, name := range got.Etc {
			switch name {
			case "passwd", "group", "ld.so.cache", "alternatives", "localtime":
			default:
				t.Errorf("the jail's /etc has %q, a host file it must not see", name)
			}
		}
		if !got.Home.failedWith(enoent) {
			t.Errorf("listing /home %s, want FileNotFoundError", got.Home)
		}
	})
}
