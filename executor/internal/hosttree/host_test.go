package hosttree

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestResolveRecordingFollowsEverySymlinkOnTheWay(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(p, target string) {
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	mk("usr/lib/x86_64-linux-gnu")
	mk("usr/lib64")
	if err := os.WriteFile(filepath.Join(root, "usr/lib/x86_64-linux-gnu/libz.so.1.2.13"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link("lib", "usr/lib")
	link("lib64", "usr/lib64")
	link("usr/lib/x86_64-linux-gnu/libz.so.1", "libz.so.1.2.13")
	link("usr/lib64/libz.so.1", "../lib/x86_64-linux-gnu/libz.so.1")
	link("abs", filepath.Join(root, "usr"))
	link("loop1", "loop2")
	link("loop2", "loop1")
	real := filepath.Join(root, "usr/lib/x86_64-linux-gnu/libz.so.1.2.13")

	tests := []struct {
		path      string
		wantLinks map[string]string
	}{
		{"usr/lib/x86_64-linux-gnu/libz.so.1.2.13", map[string]string{}},
		{"lib/x86_64-linux-gnu/libz.so.1", map[string]string{
			"lib":                                "usr/lib",
			"usr/lib/x86_64-linux-gnu/libz.so.1": "libz.so.1.2.13",
		}},
		// A relative symlink whose target climbs out of its directory, met
		// through another symlink.
		{"lib64/libz.so.1", map[string]string{
			"lib64":                              "usr/lib64",
			"usr/lib64/libz.so.1":                "../lib/x86_64-linux-gnu/libz.so.1",
			"usr/lib/x86_64-linux-gnu/libz.so.1": "libz.so.1.2.13",
		}},
		// An absolute symlink, then .. from the directory it led to.
		{"abs/lib64/../lib/./x86_64-linux-gnu/libz.so.1.2.13", map[string]string{
			"abs": filepath.Join(root, "usr"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, links, err := resolveRecording(filepath.Join(root, tt.path))
			if err != nil {
				t.Fatalf("resolveRecording = %v", err)
			}
			if got != real {
				t.Errorf("resolveRecording = %s, want %s", got, real)
			}
			want := map[string]string{}
			for p, target := range tt.wantLinks {
				want[filepath.Join(root, p)] = target
			}
			if !maps.Equal(links, want) {
				t.Errorf("links = %v, want %v", links, want)
			}
		})
	}
	for _, bad := range []string{"loop1/x", "lib/missing.so", "relative/path"} {
		p := filepath.Join(root, bad)
		if bad == "relative/path" {
			p = bad
		}
		if got, _, err := resolveRecording(p); err == nil {
			t.Errorf("resolveRecording(%s) = %s, want an error", bad, got)
		}
	}
}

func TestHostPathRefused(t *testing.T) {
	tests := []struct {
		path string
		link bool
		want string // "" for allowed
	}{
		{"/usr/lib/python3.11", false, ""},
		{"/opt/pyexec/venv", false, ""},
		{"/lib", true, ""},
		{"/etc/ld.so.cache", false, ""},
		{"/etc/localtime", true, ""},
		{"/etc/alternatives/libblas.so.3-x86_64-linux-gnu", true, ""},
		{"/", false, "host's root"},
		{"usr/lib", false, "not a clean absolute path"},
		{"/usr//lib", false, "not a clean absolute path"},
		{"/etc/ld.so.cache", true, "lies under /etc"},
		{"/etc/localtime", false, "lies under /etc"},
		{"/etc/alternatives", true, "lies under /etc"},
		{"/etc/alternatives/x", false, "lies under /etc"},
		{"/etc/passwd", false, "lies under /etc"},
		{"/home/me/venv", false, "lies under /home"},
		{"/root/.local/lib", false, "lies under /root"},
		{"/tmp/venv", false, "lies under /tmp"},
		{"/run/secrets", true, "lies under /run"},
		{"/proc/self/root", true, "lies under /proc"},
	}
	for _, tt := range tests {
		got := PathRefused(tt.path, tt.link)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("PathRefused(%q, link %v) = %q, want %q", tt.path, tt.link, got, tt.want)
		}
	}
}

func TestTheTreeBindsOutermostPathsAndOnlySymlinksOutsideThem(t *testing.T) {
	b := &treeBuilder{
		binds: map[string]bool{
			"/opt/pyexec/venv": true,
			"/opt/pyexec/venv/lib/python3.11/site-packages": true,
			"/usr/bin/python3.11":                           true,
			"/usr/lib/python3.11":                           true,
			"/usr/lib/python3.11/lib-dynload":               true,
			"/usr/share/zoneinfo":                           true,
			"/usr/share/zoneinfo/Etc/UTC":                   true,
		},
		links: map[string]string{
			"/opt/pyexec/venv/bin/python3":    "python3.11",
			"/opt/pyexec/venv/bin/python3.11": "/usr/bin/python3.11",
			"/lib64":                          "usr/lib64",
			"/etc/localtime":                  "/usr/share/zoneinfo/Etc/UTC",
		},
	}
	binds, links := b.result()
	wantBinds := []string{"/opt/pyexec/venv", "/usr/bin/python3.11", "/usr/lib/python3.11", "/usr/share/zoneinfo"}
	if !slices.Equal(binds, wantBinds) {
		t.Errorf("binds = %v, want %v", binds, wantBinds)
	}
	wantLinks := map[string]string{"/lib64": "usr/lib64", "/etc/localtime": "/usr/share/zoneinfo/Etc/UTC"}
	if !maps.Equal(links, wantLinks) {
		t.Errorf("links = %v, want %v (those inside a bind come with it)", links, wantLinks)
	}
}

func TestTheTreeRefusesWhatTheJailMayNotTake(t *testing.T) {
	// t.TempDir lies under /tmp, which the jail replaces: nothing of it, and
	// no symlink in it, may be taken.
	dir := t.TempDir()
	venv := filepath.Join(dir, "venv")
	if err := os.Mkdir(venv, 0o755); err != nil {
		t.Fatal(err)
	}
	b := &treeBuilder{binds: map[string]bool{}, links: map[string]string{}}
	if real, err := b.add(venv); err == nil || !strings.Contains(err.Error(), "lies under /tmp") {
		t.Errorf("add(%s) = %s, %v; want it refused as under /tmp", venv, real, err)
	}
	if len(b.binds) != 0 || len(b.links) != 0 {
		t.Errorf("a refused path left binds %v and links %v", b.binds, b.links)
	}
	tree := jailTree{Venv: venv}
	if _, _, err := tree.build(filepath.Join(venv, "python3")); err == nil {
		t.Error("build with an interpreter under /tmp succeeded, want it refused")
	}
}
