//go:build integration

package jail

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyexec/pyexec/executor/internal/cgroups"
	"github.com/pyexec/pyexec/executor/internal/uids"
)

// Cloud Run runs jobs and worker pools (and may run services) with the
// container's root inside a user namespace that maps only uids and gids
// 0-65535. These tests run the executor as root of such a namespace: a
// child process of the test binary, in a new user and mount namespace
// whose maps are "0 0 65536" (or smaller), with the real runtime.
//
// Two setups. With the host's pid namespace and cgroups, every mode runs.
// With a pid namespace and /proc of its own, as in a container, the
// executor runs without cgroups (cold and pool mode, rlimits): the host's
// cgroup tree is shared with its other services, which the executor's
// sweep of stale cgroups (package cgroups) could not see from another pid
// namespace and would take for dead instances. In a container the service
// is alone in its cgroup tree, so the sweep is right there.

// usernsChildEnv tells the test binary it is the child: its value is a
// usernsChild in JSON.
const usernsChildEnv = "PYEXEC_TEST_USERNS_CHILD"

// usernsChild is what the child runs.
type usernsChild struct {
	Modes     []Mode // "" is the default mode
	NoCgroups bool   // limit by rlimits, touching no cgroup
}

// usernsReportPrefix starts each line the child reports on.
const usernsReportPrefix = "PYEXEC-USERNS-REPORT "

// usernsReport is what the child found in one mode.
type usernsReport struct {
	Mode     string   `json:"mode"`
	UIDMap   string   `json:"uid_map"` // the child's own, to prove where it ran
	StartErr string   `json:"start_error"`
	Health   Health   `json:"health"`
	Result   string   `json:"result"`
	RunErr   string   `json:"run_error"`
	Left     []string `json:"left"`
}

// usernsScript runs numpy and pandas and reports the jail's uid and map.
const usernsScript = `
import os, numpy, pandas
def main():
    with open("/proc/self/uid_map") as f:
        uid_map = f.read().split()
    return {"uid": os.getuid(), "uid_map": uid_map,
            "sum": int(pandas.Series(numpy.arange(10)).sum())}
`

func TestTheSandboxWorksWhereOnlyIDs0To65535AreMapped(t *testing.T) {
	t.Run("with the host's pid namespace and cgroups", func(t *testing.T) {
		checkUsernsReports(t, runInUserNamespace(t, 65536, false, usernsChild{Modes: []Mode{ModeCold, ModePool, ModeFork, ModeAuto}}), ModeFork)
	})
	t.Run("with a pid namespace and /proc of its own", func(t *testing.T) {
		reports := runInUserNamespace(t, 65536, true, usernsChild{Modes: []Mode{ModeCold, ModePool, ModeAuto}, NoCgroups: true})
		checkUsernsReports(t, reports, ModePool)
		for _, r := range reports {
			if r.Health.Isolation.Limits != string(cgroups.Rlimit) {
				t.Errorf("%q mode limits by %q, want %q: the child was to touch no cgroup", r.Mode, r.Health.Isolation.Limits, cgroups.Rlimit)
			}
		}
	})
}

// checkUsernsReports checks that every mode reported ran its script in a
// jail as one of the outside ids, which lie in the mapped space below
// nobody, and that the default mode was wantDefault.
func checkUsernsReports(t *testing.T, reports []usernsReport, wantDefault Mode) {
	for _, r := range reports {
		name := r.Mode
		if name == string(ModeAuto) {
			name = "default mode"
		}
		t.Run(name, func(t *testing.T) {
			if strings.Join(strings.Fields(r.UIDMap), " ") != "0 0 65536" {
				t.Fatalf("the executor ran with uid_map %q, want 0 0 65536", r.UIDMap)
			}
			if r.StartErr != "" {
				t.Fatalf("Start = %s, want the self-test passed", r.StartErr)
			}
			h := r.Health
			if !h.Ready || (r.Mode != "" && h.Mode != r.Mode) {
				t.Errorf("Health() = ready %v mode %q (%s), want ready in %q", h.Ready, h.Mode, h.Reason, r.Mode)
			}
			if r.Mode == string(ModeAuto) && h.Mode != string(wantDefault) {
				t.Errorf("the default mode is %q (fallback %q), want %s mode", h.Mode, h.Fallback, wantDefault)
			}
			first, last := idBounds(t, h.Isolation.OutsideUIDs)
			if first < uids.LowestBlockID || last > uids.HighestBlockID {
				t.Errorf("outside uids %s, want them within %d-%d, the mapped ids below nobody", h.Isolation.OutsideUIDs, uids.LowestBlockID, uids.HighestBlockID)
			}
			if r.RunErr != "" {
				t.Fatalf("Run = %s, want the script's result", r.RunErr)
			}
			var got struct {
				UID    int      `json:"uid"`
				UIDMap []string `json:"uid_map"`
				Sum    int      `json:"sum"`
			}
			if err := json.Unmarshal([]byte(r.Result), &got); err != nil {
				t.Fatalf("result %s: %v", r.Result, err)
			}
			if got.UID != uids.JailUID || got.Sum != 45 {
				t.Errorf("the script ran as uid %d and summed %d, want uid %d and 45", got.UID, got.Sum, uids.JailUID)
			}
			// In cold and pool mode the jail's nobody is one of the outside
			// uids, as the namespace the service runs in numbers them.
			// Fork mode's execution sits in a namespace nested in the
			// server's, which maps nobody onto itself.
			if h.Mode != string(ModeFork) {
				var outside int
				if len(got.UIDMap) == 3 {
					outside, _ = strconv.Atoi(got.UIDMap[1])
				}
				if len(got.UIDMap) != 3 || got.UIDMap[0] != strconv.Itoa(uids.JailUID) || outside < first || outside > last || got.UIDMap[2] != "1" {
					t.Errorf("the jail's uid_map is %v, want %d mapped onto one of %s", got.UIDMap, uids.JailUID, h.Isolation.OutsideUIDs)
				}
			}
			if len(r.Left) > 0 {
				t.Errorf("Leftovers() after Shutdown = %v, want none", r.Left)
			}
			t.Logf("%s mode, limits by %s: outside uids %s; the script answered %s", h.Mode, h.Isolation.Limits, h.Isolation.OutsideUIDs, r.Result)
		})
	}
}

// Where the namespace maps no block of ids the executor could use, nothing
// runs and Health says which ids were missing and what the maps hold.
func TestTheSandboxIsUnavailableWhereTooFewIDsAreMapped(t *testing.T) {
	reports := runInUserNamespace(t, 1000, false, usernsChild{Modes: []Mode{ModeAuto}})
	r := reports[0]
	if strings.Join(strings.Fields(r.UIDMap), " ") != "0 0 1000" {
		t.Fatalf("the executor ran with uid_map %q, want 0 0 1000", r.UIDMap)
	}
	for _, want := range []string{"outside uids 199999, 200000-200001, 201024-201028 are not mapped", "uid_map: 0 0 1000", "no free block of 8 ids"} {
		if !strings.Contains(r.StartErr, want) || !strings.Contains(r.Health.Reason, want) {
			t.Errorf("Start = %q and Health().Reason = %q, want both to say %q", r.StartErr, r.Health.Reason, want)
		}
	}
	if r.Health.Ready || !strings.Contains(r.RunErr, ErrSandboxUnavailable.Error()) {
		t.Errorf("Health().Ready = %v and Run = %q, want not ready and %q", r.Health.Ready, r.RunErr, ErrSandboxUnavailable)
	}
}

// runInUserNamespace runs the child half (TestUserNamespaceChild) of this
// test binary as root of a new user namespace mapping ids 0..size-1 onto
// the same host ids, in a pid namespace of its own if ownPIDs, and returns
// what it reported, one report per mode.
func runInUserNamespace(t *testing.T, size int, ownPIDs bool, child usernsChild) []usernsReport {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("mapping ids into a user namespace as these tests do needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestUserNamespaceChild$", "-test.count=1", "-test.v")
	spec, err := json.Marshal(child)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), usernsChildEnv+"="+string(spec))
	idMap := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: size}}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings:                idMap,
		GidMappings:                idMap,
		GidMappingsEnableSetgroups: true,
		Pdeathsig:                  syscall.SIGKILL,
	}
	if ownPIDs {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWPID
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	var reports []usernsReport
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), usernsReportPrefix); ok {
			var r usernsReport
			if jerr := json.Unmarshal([]byte(line), &r); jerr != nil {
				t.Fatalf("the child's report %q: %v", line, jerr)
			}
			reports = append(reports, r)
		}
	}
	if runErr != nil || len(reports) != len(child.Modes) {
		t.Fatalf("the child in the user namespace: %v, %d reports; output:\n%s\nstderr:\n%s", runErr, len(reports), out, stderr.String())
	}
	return reports
}

// TestUserNamespaceChild is the child half of the tests above; run by
// itself, outside their user namespace, it does nothing. For each mode
// listed in usernsChildEnv it starts an executor,
// runs usernsScript, shuts the executor down and prints a report.
func TestUserNamespaceChild(t *testing.T) {
	env, ok := os.LookupEnv(usernsChildEnv)
	if !ok {
		return
	}
	var child usernsChild
	if err := json.Unmarshal([]byte(env), &child); err != nil {
		t.Fatal(err)
	}
	if os.Getpid() == 1 {
		// The first process of a pid namespace of its own: /proc must be
		// this namespace's, or nsjail writes its jails' id maps through
		// the pids of another. Mounts stay in this mount namespace.
		if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
			t.Fatal(err)
		}
	}
	uidMap, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range child.Modes {
		r := usernsReport{Mode: string(mode), UIDMap: string(uidMap)}
		cfg := realConfig(t)
		cfg.Mode, cfg.Concurrency, cfg.Timeout = mode, 2, 30*time.Second
		if child.NoCgroups {
			cfg.CgroupRoot = t.TempDir() // no hierarchy here
		}
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(context.Background()); err != nil {
			r.StartErr = err.Error()
		}
		r.Health = e.Health()
		res, err := e.Run(context.Background(), Request{Script: usernsScript})
		if err != nil {
			r.RunErr = err.Error()
		} else {
			r.Result = string(res.Value)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := e.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		cancel()
		r.Left = e.Leftovers()
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println(usernsReportPrefix + string(line))
	}
}

// idBounds reads an Isolation.OutsideUIDs range, "a-b" or "a".
func idBounds(t *testing.T, ids string) (int, int) {
	t.Helper()
	a, b, found := strings.Cut(ids, "-")
	first, err1 := strconv.Atoi(a)
	last, err2 := first, error(nil)
	if found {
		last, err2 = strconv.Atoi(b)
	}
	if err1 != nil || err2 != nil {
		t.Fatalf("outside uids %q are not a range", ids)
	}
	return first, last
}
