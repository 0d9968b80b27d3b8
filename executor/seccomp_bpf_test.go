package executor

import (
	"encoding/binary"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// deniedNames returns the calls a kafel policy answers ERRNO(1) without
// looking at their arguments.
func deniedNames(t *testing.T, policy string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?s)ERRNO\(1\) \{(.*?)\w+ \{`).FindStringSubmatch(policy)
	if m == nil {
		t.Fatalf("no ERRNO(1) block in policy:\n%s", policy)
	}
	var names []string
	for _, f := range strings.Split(m[1], ",") {
		if f = strings.TrimSpace(f); f != "" {
			names = append(names, f)
		}
	}
	slices.Sort(names)
	return names
}

func TestTheBPFFilterDeniesWhatTheKafelPolicyDenies(t *testing.T) {
	want := deniedNames(t, seccompPolicy)
	got := slices.Sorted(slices.Values(seccompDenied))
	if !slices.Equal(got, want) {
		t.Errorf("seccompDenied = %v, want the kafel policy's %v", got, want)
	}
}

func TestTheServerPolicyAllowsOnlyWhatNestedSandboxesNeed(t *testing.T) {
	// clone with namespace flags is the one argument rule it drops.
	if strings.Contains(serverSeccompPolicy, "clone {") || !strings.Contains(serverSeccompPolicy, "socket { family != 1 }") {
		t.Errorf("server policy's argument rules:\n%s\nwant socket and ioctl, not clone", serverSeccompPolicy)
	}
	var want []string
	for _, name := range deniedNames(t, seccompPolicy) {
		if name != "mount" && name != "unshare" && name != "sethostname" {
			want = append(want, name)
		}
	}
	if got := deniedNames(t, serverSeccompPolicy); !slices.Equal(got, want) {
		t.Errorf("server policy denies %v, want %v", got, want)
	}
}

// evalBPF runs a classic BPF seccomp program on one call.
func evalBPF(t *testing.T, prog []byte, arch uint32, nr int, args ...uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.LittleEndian.PutUint32(data[0:], uint32(nr))
	binary.LittleEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.LittleEndian.PutUint64(data[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog)/8; pc++ {
		ins := prog[8*pc:]
		code, jt, jf, k := binary.LittleEndian.Uint16(ins), ins[2], ins[3], binary.LittleEndian.Uint32(ins[4:])
		switch code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			acc = binary.LittleEndian.Uint32(data[k:])
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			pc += int(map[bool]uint8{true: jt, false: jf}[acc == k])
		case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			pc += int(map[bool]uint8{true: jt, false: jf}[acc >= k])
		case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			pc += int(map[bool]uint8{true: jt, false: jf}[acc&k != 0])
		case unix.BPF_RET | unix.BPF_K:
			return k
		default:
			t.Fatalf("instruction %d: unexpected code %#x", pc, code)
		}
	}
	t.Fatal("the program ran off its end")
	return 0
}

func TestTheBPFFilterAnswersEachCallAsThePolicySays(t *testing.T) {
	prog, err := seccompFilter()
	if err == errNoFilter {
		t.Skip("no seccomp filter table for this architecture; fork mode is not offered here")
	}
	if err != nil {
		t.Fatalf("seccompFilter: %v", err)
	}
	table, arch := syscallTable()
	eperm := uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.EPERM)
	tests := []struct {
		name string
		arch uint32
		nr   int
		args []uint64
		want uint32
	}{
		{"read is allowed", arch, unix.SYS_READ, nil, unix.SECCOMP_RET_ALLOW},
		{"ptrace is denied", arch, table["ptrace"], nil, eperm},
		{"unshare is denied", arch, table["unshare"], nil, eperm},
		{"mount is denied", arch, table["mount"], nil, eperm},
		{"umount2 is denied", arch, table["umount"], nil, eperm},
		{"a plain clone (fork, thread) is allowed", arch, table["clone"], []uint64{0x3d0f00}, unix.SECCOMP_RET_ALLOW},
		{"clone with CLONE_NEWUSER is denied", arch, table["clone"], []uint64{unix.CLONE_NEWUSER | 0x11}, eperm},
		{"clone with CLONE_NEWNS is denied", arch, table["clone"], []uint64{unix.CLONE_NEWNS}, eperm},
		{"clone3 answers ENOSYS", arch, table["clone3"], nil, uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.ENOSYS)},
		{"an AF_UNIX socket is allowed", arch, table["socket"], []uint64{unix.AF_UNIX}, unix.SECCOMP_RET_ALLOW},
		{"an AF_INET socket is denied", arch, table["socket"], []uint64{unix.AF_INET}, eperm},
		{"a netlink socket is denied", arch, table["socket"], []uint64{unix.AF_NETLINK}, eperm},
		{"ioctl TIOCSTI is denied", arch, table["ioctl"], []uint64{0, tiocsti}, eperm},
		{"other ioctls are allowed", arch, table["ioctl"], []uint64{0, unix.TCGETS}, unix.SECCOMP_RET_ALLOW},
		{"x32 numbers are denied", arch, 0x40000000 + unix.SYS_READ, nil, eperm},
		{"another architecture's calls kill the process", unix.AUDIT_ARCH_I386, 1, nil, unix.SECCOMP_RET_KILL_PROCESS},
	}
	for _, tt := range tests {
		if got := evalBPF(t, prog, tt.arch, tt.nr, tt.args...); got != tt.want {
			t.Errorf("%s: filter(%d) = %#x, want %#x", tt.name, tt.nr, got, tt.want)
		}
	}
}
