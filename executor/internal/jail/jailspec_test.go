package jail

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/executor/internal/cgroups"
	"github.com/pyexec/pyexec/executor/internal/hosttree"
	"github.com/pyexec/pyexec/executor/internal/seccomp"
	"github.com/pyexec/pyexec/executor/internal/uids"
)

// testSpec is the specification of one jail like those Start derives,
// valid, with host paths chosen to be recognisable.
func testSpec(l cgroups.Limiter) jailSpec {
	return jailSpec{
		Interp: hosttree.Interpreter{
			Executable: "/opt/pyexec/venv/bin/python3",
			Binds: []string{"/etc/ld.so.cache", "/opt/pyexec/venv", "/usr/bin/python3.11",
				"/usr/lib/python3.11", "/usr/lib/x86_64-linux-gnu/libc.so.6"},
			Links: map[string]string{"/lib": "usr/lib", "/lib64": "usr/lib64",
				"/usr/lib64/ld-linux-x86-64.so.2": "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
		},
		Timeout:     30 * time.Second,
		MemoryBytes: 512 << 20,
		MaxProcs:    64,
		TmpBytes:    64 << 20,
		IDs:         uids.Preferred(4),
		OutsideUID:  200001,
		Limiter:     l,

		CgroupMemMount:  "/sys/fs/cgroup/memory",
		CgroupPidsMount: "/sys/fs/cgroup/pids",
		CgroupParent:    "pyexec/123/exec-id",
	}
}

// configLines is the set of top-level lines of a rendered configuration.
func configLines(config string) []string {
	return strings.Split(strings.TrimSpace(config), "\n")
}

func TestJailConfigHasEveryIsolationLayer(t *testing.T) {
	config := jailConfig(testSpec(cgroups.V1))
	lines := configLines(config)
	want := []string{
		`mode: ONCE`,
		`hostname: "pyexec"`,
		`cwd: "/tmp"`,
		`keep_env: false`,
		`keep_caps: false`,
		`disable_no_new_privs: false`,
		// Every namespace, the user one included.
		`clone_newnet: true`,
		`clone_newuser: true`,
		`clone_newns: true`,
		`clone_newpid: true`,
		`clone_newipc: true`,
		`clone_newuts: true`,
		`clone_newcgroup: true`,
		// nobody inside is the slot's unprivileged uid outside, never root.
		`uidmap { inside_id: "65534" outside_id: "200001" count: 1 }`,
		`gidmap { inside_id: "65534" outside_id: "200001" count: 1 }`,
		// rlimits whose type must be VALUE, or nsjail ignores the number.
		`rlimit_nproc: 64`,
		`rlimit_nproc_type: VALUE`,
		`rlimit_stack: 16`,
		`rlimit_stack_type: VALUE`,
		`rlimit_cpu: 65`,
		`rlimit_cpu_type: VALUE`,
		`rlimit_core: 0`,
		`rlimit_fsize: 64`,
		`rlimit_nofile: 1024`,
		// The executor's own timer ends the execution; nsjail's is a backstop.
		`time_limit: 35`,
		`log_fd: 5`,
		`pass_fd: 3`,
		`pass_fd: 4`,
	}
	for _, w := range want {
		if !slices.Contains(lines, w) {
			t.Errorf("jail configuration lacks the line %q:\n%s", w, config)
		}
	}
	for _, bad := range []string{"clone_newnet: false", "keep_env: true", "keep_caps: true", "disable_no_new_privs: true", `outside_id: "0"`} {
		if strings.Contains(config, bad) {
			t.Errorf("jail configuration holds %q", bad)
		}
	}
}

func TestJailConfigPassesOnlyItsOwnEnvironment(t *testing.T) {
	t.Setenv("PYEXEC_SECRET_CANARY", "leak")
	config := jailConfig(testSpec(cgroups.V1))
	var envars []string
	for _, line := range configLines(config) {
		if v, ok := strings.CutPrefix(line, "envar: "); ok {
			envars = append(envars, v)
		}
	}
	var want []string
	for _, e := range jailEnv() {
		want = append(want, quote(e))
	}
	if !slices.Equal(envars, want) {
		t.Errorf("jail envars = %v, want exactly %v", envars, want)
	}
	if strings.Contains(config, "PYEXEC_SECRET_CANARY") {
		t.Error("the service's environment reached the jail configuration")
	}
	for _, e := range jailEnv() {
		if strings.HasPrefix(e, "PYEXEC_") || strings.HasPrefix(e, "PYTHON") {
			t.Errorf("jailEnv holds %q", e)
		}
	}
}

func TestJailConfigSeccompPolicy(t *testing.T) {
	config := jailConfig(testSpec(cgroups.V1))
	if !strings.Contains(config, "seccomp_string: "+quote(seccomp.Policy())) {
		t.Errorf("jail configuration lacks the seccomp policy:\n%s", config)
	}
	for _, call := range []string{"ptrace", "mount", "unshare", "setns", "bpf", "keyctl", "io_uring_setup", "clone3", "socket { family != 1 }"} {
		if !strings.Contains(seccomp.Policy(), call) {
			t.Errorf("seccomp policy does not mention %s", call)
		}
	}
	if !strings.Contains(seccomp.Policy(), "DEFAULT ALLOW") || !strings.Contains(seccomp.Policy(), "ERRNO(38) { clone3 }") {
		t.Errorf("seccomp policy = %s, want a deny-list answering clone3 with ENOSYS", seccomp.Policy())
	}
}

func TestJailConfigMountsAreReadOnlyButTmp(t *testing.T) {
	spec := testSpec(cgroups.V1)
	config := jailConfig(spec)
	var mounts []string
	for _, line := range configLines(config) {
		if strings.HasPrefix(line, "mount {") {
			mounts = append(mounts, line)
		}
	}
	find := func(dst string) string {
		for _, m := range mounts {
			if strings.Contains(m, "dst: "+quote(dst)+" ") {
				return m
			}
		}
		return ""
	}
	tmpOpts := fmt.Sprintf(`options: "size=%d,`, 64<<20)
	tests := []struct {
		dst  string
		want []string
	}{
		{"/", []string{`fstype: "tmpfs"`, "rw: false", "nosuid: true", "nodev: true", "noexec: true"}},
		{"/opt/pyexec/venv", []string{`src: "/opt/pyexec/venv"`, "is_bind: true", "rw: false", "nosuid: true", "nodev: true"}},
		{"/usr/bin/python3.11", []string{`src: "/usr/bin/python3.11"`, "is_bind: true", "rw: false", "nosuid: true", "nodev: true"}},
		{"/usr/lib/python3.11", []string{`src: "/usr/lib/python3.11"`, "is_bind: true", "rw: false"}},
		{"/etc/ld.so.cache", []string{"is_bind: true", "rw: false"}},
		{"/lib", []string{`src: "usr/lib"`, "is_symlink: true"}},
		{"/usr/lib64/ld-linux-x86-64.so.2", []string{`src: "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"`, "is_symlink: true"}},
		{"/proc", []string{`fstype: "proc"`, "rw: false", "noexec: true"}},
		{"/tmp", []string{`fstype: "tmpfs"`, "rw: true", tmpOpts, "nosuid: true", "nodev: true", "noexec: true"}},
		{"/dev/shm", []string{`fstype: "tmpfs"`, "rw: true", tmpOpts, "noexec: true"}},
		{"/etc/passwd", []string{"rw: false"}},
		{jailHarness, []string{"rw: false"}},
		{"/dev/null", []string{"is_bind: true"}},
		{"/dev/urandom", []string{"is_bind: true"}},
	}
	for _, tt := range tests {
		m := find(tt.dst)
		if m == "" {
			t.Errorf("no mount at %s in:\n%s", tt.dst, strings.Join(mounts, "\n"))
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(m, w) {
				t.Errorf("mount at %s = %s, want %q", tt.dst, m, w)
			}
		}
	}
	for _, m := range mounts {
		if strings.Contains(m, "rw: true") && find("/tmp") != m && find("/dev/shm") != m && !strings.Contains(m, `"/dev/`) {
			t.Errorf("writable mount %s; only /tmp, /dev/shm and device nodes may be", m)
		}
		for _, host := range []string{`src: "/tmp`, `src: "/home`, `src: "/root`, `src: "/etc"`, `src: "/proc`, `src: "/sys`, `src: "/run`} {
			if strings.Contains(m, host) {
				t.Errorf("mount %s binds a host path the jail must not see", m)
			}
		}
	}
}

func TestJailConfigLimitsMemoryByCgroupOrRlimit(t *testing.T) {
	const memMiB = 512
	tests := []struct {
		limiter cgroups.Limiter
		want    []string
		notWant []string
	}{
		{
			limiter: cgroups.V1,
			want: []string{
				"rlimit_as_type: INF",
				fmt.Sprintf("cgroup_mem_max: %d", (memMiB+16)<<20),
				fmt.Sprintf("cgroup_mem_memsw_max: %d", (memMiB+16)<<20),
				`cgroup_mem_mount: "/sys/fs/cgroup/memory"`,
				`cgroup_mem_parent: "pyexec/123/exec-id"`,
				"cgroup_pids_max: 64",
				`cgroup_pids_mount: "/sys/fs/cgroup/pids"`,
				`cgroup_pids_parent: "pyexec/123/exec-id"`,
			},
			notWant: []string{"use_cgroupv2", "rlimit_as: "},
		},
		{
			limiter: cgroups.V2,
			want: []string{
				"rlimit_as_type: INF",
				"use_cgroupv2: true",
				`cgroupv2_mount: "/sys/fs/cgroup/memory/pyexec/123/exec-id"`,
				fmt.Sprintf("cgroup_mem_max: %d", (memMiB+16)<<20),
				"cgroup_pids_max: 64",
			},
			notWant: []string{"cgroup_mem_parent", "rlimit_as: "},
		},
		{
			limiter: cgroups.Rlimit,
			want:    []string{fmt.Sprintf("rlimit_as: %d", memMiB+addressSpaceHeadroom>>20)},
			notWant: []string{"cgroup_", "rlimit_as_type: INF"},
		},
	}
	for _, tt := range tests {
		t.Run(string(tt.limiter), func(t *testing.T) {
			config := jailConfig(testSpec(tt.limiter))
			lines := configLines(config)
			for _, w := range tt.want {
				if !slices.Contains(lines, w) {
					t.Errorf("%s jail configuration lacks %q", tt.limiter, w)
				}
			}
			for _, nw := range tt.notWant {
				if strings.Contains(config, nw) {
					t.Errorf("%s jail configuration holds %q", tt.limiter, nw)
				}
			}
		})
	}
}

func TestJailConfigFollowsTheSpec(t *testing.T) {
	spec := testSpec(cgroups.V1)
	spec.Timeout, spec.MaxProcs, spec.TmpBytes, spec.OutsideUID = 2*time.Second, 8, 16<<20, 200007
	lines := configLines(jailConfig(spec))
	for _, w := range []string{
		"time_limit: 7",
		"rlimit_cpu: 9",
		"rlimit_nproc: 8",
		"rlimit_fsize: 16",
		`uidmap { inside_id: "65534" outside_id: "200007" count: 1 }`,
	} {
		if !slices.Contains(lines, w) {
			t.Errorf("jail configuration for %+v lacks %q", spec, w)
		}
	}
}

func TestJailArgvRunsTheHarnessIsolatedAndUnbuffered(t *testing.T) {
	argv := jailArgv(testSpec(cgroups.V1))
	if argv[0] != "/opt/pyexec/venv/bin/python3" || argv[len(argv)-1] != jailHarness {
		t.Errorf("jailArgv = %v, want the interpreter running %s", argv, jailHarness)
	}
	for _, flag := range []string{"-I", "-u"} {
		if !slices.Contains(argv, flag) {
			t.Errorf("jailArgv = %v, want %s", argv, flag)
		}
	}
}

func TestQuoteWritesProtobufTextStrings(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/lib":     `"/usr/lib"`,
		`a"b`:          `"a\"b"`,
		`back\slash`:   `"back\\slash"`,
		"two\nlines":   `"two\nlines"`,
		"tab\there":    `"tab\011here"`,
		"caf\xc3\xa9":  `"caf\303\251"`,
		"":             `""`,
		"} mount { x ": `"} mount { x "`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestValidateAcceptsTheSpecsEveryModeDerives(t *testing.T) {
	cfg := Config{Timeout: 30 * time.Second, MemoryBytes: 512 << 20, MaxProcs: 64, TmpBytes: 64 << 20, Concurrency: 4}
	base := testSpec(cgroups.V1)
	base.OutsideUID, base.CgroupMemMount, base.CgroupPidsMount, base.CgroupParent = 0, "", "", ""
	placed := func(s *jailSpec) {
		s.OutsideUID = s.IDs.Cold(3)
		s.CgroupMemMount, s.CgroupPidsMount, s.CgroupParent = "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "pyexec/1-1/exec-id"
	}
	cold, err := base.derive(placed)
	if err != nil {
		t.Fatalf("cold jail: %v", err)
	}
	pool, err := base.derive(func(s *jailSpec) { preloaded(s); placed(s); s.OutsideUID = s.IDs.Pool().Last() })
	if err != nil {
		t.Fatalf("pool jail: %v", err)
	}
	server, err := forkServerSpec(base, cfg, plainServer)
	if errors.Is(err, seccomp.ErrNoFilter) {
		t.Skip("no seccomp filter table for this architecture; fork mode is not offered here")
	}
	if err != nil {
		t.Fatalf("fork server jail: %v", err)
	}
	for name, spec := range map[string]jailSpec{"cold": cold, "pool": pool, "fork server": server} {
		if n := len(jailConfig(spec)); n > maxJailConfig {
			t.Errorf("%s jail configuration is %d bytes, past the %d its pipe takes", name, n, maxJailConfig)
		}
	}
	if argv := jailArgv(server); argv[len(argv)-1] != jailZygote {
		t.Errorf("jailArgv(fork server) = %v, want it to run %s", argv, jailZygote)
	}
	if base.OutsideUID != 0 || len(base.Files) != 0 || base.Preload {
		t.Errorf("derive changed its template: %+v", base)
	}
	if _, err := base.derive(func(*jailSpec) {}); err == nil {
		t.Error("the template itself (no outside uid, no cgroup) validates; want it refused as a jail")
	}
}

func TestValidateRefusesWhatWouldWeakenOrBreakTheJail(t *testing.T) {
	server := func(s *jailSpec) {
		s.Server = true
		s.OutsideUID = s.IDs.ForkServer()
		s.CgroupMemMount, s.CgroupPidsMount, s.CgroupParent = "", "", ""
		s.Files = []jailFile{{jailZygote, "print()"}}
	}
	tests := []struct {
		name   string
		change func(*jailSpec)
		want   string
	}{
		{"a relative bind", func(s *jailSpec) { s.Interp.Binds = []string{"opt/pyexec", "/usr/bin/python3.11"} }, `"opt/pyexec" is not a clean absolute path`},
		{"an unclean bind", func(s *jailSpec) { s.Interp.Binds = []string{"/opt/pyexec/../pyexec", "/usr/bin/python3.11"} }, "not a clean absolute path"},
		{"the host's root bound whole", func(s *jailSpec) { s.Interp.Binds = []string{"/"} }, "is the host's root"},
		{"nothing to bind", func(s *jailSpec) { s.Interp.Binds = nil }, "no interpreter paths"},
		{"a bind under /home", func(s *jailSpec) { s.Interp.Binds = []string{"/home/me/venv", "/usr/bin/python3.11"} }, "/home/me/venv lies under /home"},
		{"a bind of the host's /etc", func(s *jailSpec) { s.Interp.Binds = append(s.Interp.Binds, "/etc") }, "/etc lies under /etc"},
		{"a bind of /etc/shadow", func(s *jailSpec) { s.Interp.Binds = append(s.Interp.Binds, "/etc/shadow") }, "/etc/shadow lies under /etc"},
		{"a bind of /etc/alternatives", func(s *jailSpec) { s.Interp.Binds = append(s.Interp.Binds, "/etc/alternatives") }, "/etc/alternatives lies under /etc"},
		{"a bind of /run", func(s *jailSpec) { s.Interp.Binds = append(s.Interp.Binds, "/run/secrets") }, "lies under /run"},
		{"a bind of the host's /tmp", func(s *jailSpec) { s.Interp.Binds = append(s.Interp.Binds, "/tmp") }, "lies under /tmp"},
		{"a bind inside another", func(s *jailSpec) { s.Interp.Binds = append(s.Interp.Binds, "/usr/lib/python3.11/lib-dynload") }, "lie one inside the other"},
		{"a bind around another", func(s *jailSpec) { s.Interp.Binds = append(s.Interp.Binds, "/usr") }, "lie one inside the other"},
		{"a symlink where a bind is", func(s *jailSpec) { s.Interp.Links = map[string]string{"/usr/bin/python3.11": "python3"} }, "mounted at /usr/bin/python3.11"},
		{"a symlink inside a bind", func(s *jailSpec) { s.Interp.Links = map[string]string{"/opt/pyexec/venv/lib64": "lib"} }, "lies inside the bind /opt/pyexec/venv"},
		{"a symlink without a target", func(s *jailSpec) { s.Interp.Links = map[string]string{"/lib": ""} }, "has no target"},
		{"a symlink in /etc", func(s *jailSpec) { s.Interp.Links = map[string]string{"/etc/shadow": "/usr/lib/x"} }, "/etc/shadow lies under /etc"},
		{"an interpreter the jail cannot reach", func(s *jailSpec) { s.Interp.Executable = "/srv/python3" }, `interpreter "/srv/python3"`},
		{"a zero timeout", func(s *jailSpec) { s.Timeout = 0 }, "timeout"},
		{"memory under 1 MiB", func(s *jailSpec) { s.MemoryBytes = 1<<20 - 1 }, "memory limit"},
		{"a /tmp under 1 MiB", func(s *jailSpec) { s.TmpBytes = 0 }, "/tmp size"},
		{"no process allowed", func(s *jailSpec) { s.MaxProcs = 0 }, "process limit"},
		{"root outside (an unset uid)", func(s *jailSpec) { s.OutsideUID = 0 }, "outside uid 0"},
		{"a uid below the executor's runs", func(s *jailSpec) { s.OutsideUID = uids.PreferredForkServerID - 1 }, "outside uid 199998"},
		{"a uid between the cold and pool runs", func(s *jailSpec) { s.OutsideUID = uids.PreferredColdID + 4 }, "outside uid 200004"},
		{"a uid past the executor's runs", func(s *jailSpec) { s.OutsideUID = uids.PreferredPoolID + 9 }, "outside uid 201033"},
		{"a jail without the executor's ids", func(s *jailSpec) { s.IDs = uids.Outside{} }, "outside uid 200001"},
		{"an unknown limiter", func(s *jailSpec) { s.Limiter = "ulimit" }, `unknown limiter "ulimit"`},
		{"a cgroup jail without its cgroup", func(s *jailSpec) { s.CgroupParent = "" }, "cgroup \"\""},
		{"a cgroup above the mount", func(s *jailSpec) { s.CgroupParent = "../escape" }, "cgroup \"../escape\""},
		{"an absolute cgroup", func(s *jailSpec) { s.CgroupParent = "/pyexec/x" }, "cgroup \"/pyexec/x\""},
		{"a relative cgroup mount", func(s *jailSpec) { s.CgroupMemMount = "sys/fs/cgroup" }, "cgroup mounts"},
		{"a cgroup for a jail limited by rlimits", func(s *jailSpec) { s.Limiter = cgroups.Rlimit }, "cgroup placement"},
		{"an idle time without preload", func(s *jailSpec) { s.MaxIdle = time.Minute }, "idle time"},
		{"a fork server with a cgroup of its own", func(s *jailSpec) { server(s); s.CgroupParent = "pyexec/x" }, "cgroup placement"},
		{"a fork server that preloads", func(s *jailSpec) { server(s); s.Preload = true }, "preloads by itself"},
		{"a fork server without its program", func(s *jailSpec) { server(s); s.Files = nil }, "lacks " + jailZygote},
		{"a jail file at a relative path", func(s *jailSpec) { s.Files = []jailFile{{"pyexec/x", ""}} }, `jail file "pyexec/x"`},
		{"a jail file over the harness", func(s *jailSpec) { s.Files = []jailFile{{jailHarness, ""}} }, "mounted at " + jailHarness},
		{"a jail file over /proc", func(s *jailSpec) { s.Files = []jailFile{{"/proc", ""}} }, "mounted at /proc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := testSpec(cgroups.V1)
			tt.change(&spec)
			err := spec.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate(%s) = %v, want an error saying %q", tt.name, err, tt.want)
			}
			if _, err := testSpec(cgroups.V1).derive(tt.change); err == nil {
				t.Errorf("derive(%s) succeeded, want it refused", tt.name)
			}
		})
	}
	t.Run("every problem is reported at once", func(t *testing.T) {
		spec := testSpec(cgroups.V1)
		spec.Timeout, spec.MaxProcs, spec.OutsideUID = 0, 0, 0
		err := spec.Validate()
		for _, want := range []string{"timeout", "process limit", "outside uid"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Validate with three problems = %v, want %q named", err, want)
			}
		}
	})
	t.Run("links in /etc that the jail allows", func(t *testing.T) {
		spec := testSpec(cgroups.V1)
		spec.Interp.Links = map[string]string{"/etc/localtime": "/usr/share/zoneinfo/Etc/UTC",
			"/etc/alternatives/libblas.so.3-x86_64-linux-gnu": "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3"}
		if err := spec.Validate(); err != nil {
			t.Errorf("Validate(/etc/localtime and an alternatives link) = %v, want nil", err)
		}
	})
}
