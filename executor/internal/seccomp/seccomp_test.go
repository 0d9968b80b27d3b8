package seccomp

import (
	"encoding/binary"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// kafelEntry is one entry of a kafel ERRNO block: a call, or SYSCALL[n],
// with its condition when it has one.
type kafelEntry struct {
	errno int
	cond  string
}

// parseKafel reads a policy as seccompPolicy is written: ERRNO blocks of
// comma-separated entries, each a name, SYSCALL[n] or `name { condition }`,
// and a default of allow. It fails the test on anything else.
func parseKafel(t *testing.T, policy string) map[string]kafelEntry {
	t.Helper()
	m := regexp.MustCompile(`(?s)^POLICY (\w+) \{\n(.*)\n\}\nUSE (\w+) DEFAULT ALLOW\n$`).FindStringSubmatch(policy)
	if m == nil || m[1] != m[3] {
		t.Fatalf("policy is not one POLICY used with DEFAULT ALLOW:\n%.500s", policy)
	}
	entries := map[string]kafelEntry{}
	body := m[2]
	block := regexp.MustCompile(`^\s*ERRNO\((\d+)\) \{`)
	for strings.TrimSpace(body) != "" {
		head := block.FindStringSubmatch(body)
		if head == nil {
			t.Fatalf("policy body does not start with an ERRNO block: %.80q", body)
		}
		errno, _ := strconv.Atoi(head[1])
		body = body[len(head[0]):]
		// The block ends at its closing brace; conditions nest one level.
		depth, end := 0, -1
		for i, c := range body {
			if c == '{' {
				depth++
			} else if c == '}' {
				if depth == 0 {
					end = i
					break
				}
				depth--
			}
		}
		if end < 0 {
			t.Fatalf("unclosed ERRNO(%d) block", errno)
		}
		inner := body[:end]
		body = strings.TrimPrefix(strings.TrimSpace(body[end+1:]), ",")
		depth, start := 0, 0
		split := func(i int) {
			entry := strings.TrimSpace(inner[start:i])
			start = i + 1
			name, cond, _ := strings.Cut(entry, " {")
			cond = strings.TrimSpace(strings.TrimSuffix(cond, "}"))
			if _, dup := entries[name]; dup {
				t.Errorf("%s appears twice in the policy", name)
			}
			entries[name] = kafelEntry{errno: errno, cond: cond}
		}
		for i, c := range inner {
			switch {
			case c == '{':
				depth++
			case c == '}':
				depth--
			case c == ',' && depth == 0:
				split(i)
			}
		}
		split(len(inner))
	}
	return entries
}

// kafelArgs names the arguments as kafel's x86_64 table does, for the
// calls the rules inspect.
var kafelArgs = map[string]map[string]int{
	"clone":  {"clone_flags": 0},
	"socket": {"family": 0},
	"ioctl":  {"cmd": 1},
}

// kafelDenies evaluates a kafel condition on a call's arguments: the three
// shapes seccompPolicy uses, read from the text, not from the rules.
func kafelDenies(t *testing.T, call, cond string, args [6]uint32) bool {
	t.Helper()
	if cond == "" {
		return true
	}
	m := regexp.MustCompile(`^(?:\((\w+) & (\w+)\) != 0|(\w+) (==|!=) (\w+))$`).FindStringSubmatch(cond)
	if m == nil {
		t.Fatalf("%s: condition %q is not one the test reads", call, cond)
	}
	name, value, op := m[1], m[2], "&"
	if name == "" {
		name, op, value = m[3], m[4], m[5]
	}
	index, ok := kafelArgs[call][name]
	if !ok {
		t.Fatalf("%s: kafel has no argument %q", call, name)
	}
	v, err := strconv.ParseUint(value, 0, 32)
	if err != nil {
		t.Fatalf("%s: value %q: %v", call, value, err)
	}
	test := map[string]argTest{"&": anyBitOf, "==": equalTo, "!=": notEqualTo}[op]
	return argMatches(test, args[index], uint32(v))
}

// ruleDenies is what the rules say of a call with these arguments.
func ruleDenies(r seccompRule, args [6]uint32) bool {
	return r.arg == nil || argMatches(r.arg.test, args[r.arg.index], r.arg.value)
}

// argMatches is what each argTest means.
func argMatches(test argTest, arg, value uint32) bool {
	switch test {
	case anyBitOf:
		return arg&value != 0
	case equalTo:
		return arg == value
	default:
		return arg != value
	}
}

// argSamples are argument vectors that tell the rules' conditions apart:
// zero, all ones, and each rule's value, its neighbours and each of its
// bits, in every argument position a rule reads.
func argSamples() [][6]uint32 {
	samples := [][6]uint32{{}, {^uint32(0), ^uint32(0), ^uint32(0), ^uint32(0), ^uint32(0), ^uint32(0)}}
	for _, r := range seccompRules {
		if r.arg == nil {
			continue
		}
		values := []uint32{r.arg.value, r.arg.value - 1, r.arg.value + 1, ^r.arg.value}
		for bit := 0; bit < 32; bit++ {
			if r.arg.value&(1<<bit) != 0 {
				values = append(values, 1<<bit)
			}
		}
		for _, v := range values {
			var args [6]uint32
			args[r.arg.index] = v
			samples = append(samples, args)
		}
	}
	return samples
}

func TestTheSeccompRulesNameEachCallOnceAndAllAreKnown(t *testing.T) {
	table, _ := syscallTable()
	seen := map[string]bool{}
	for _, r := range seccompRules {
		if seen[r.call] {
			t.Errorf("%s has more than one rule", r.call)
		}
		seen[r.call] = true
		if _, ok := table[r.call]; table != nil && !ok {
			t.Errorf("%s is not in this architecture's syscall table", r.call)
		}
		if r.arg != nil {
			if _, ok := kafelArgs[r.call][r.arg.name]; !ok {
				t.Errorf("%s: kafel names no argument %q", r.call, r.arg.name)
			}
		}
	}
}

// The kafel policies, read back from their text, say exactly what the
// rules say: every rule with its errno and condition, nothing else, and the
// x32 table denied as a whole in the policy of the jails that run scripts.
func TestTheKafelPoliciesSayWhatTheRulesSay(t *testing.T) {
	for _, tt := range []struct {
		name      string
		policy    string
		forServer bool
	}{
		{"the jails' policy", seccompPolicy, false},
		{"the fork server's policy", serverSeccompPolicy, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			entries := parseKafel(t, tt.policy)
			x32 := 0
			for name, e := range entries {
				if n, ok := strings.CutPrefix(name, "SYSCALL["); ok {
					nr, err := strconv.Atoi(strings.TrimSuffix(n, "]"))
					if err != nil || nr < x32SyscallBit || nr >= x32SyscallBit+x32TableSize || e.errno != int(unix.EPERM) || e.cond != "" {
						t.Errorf("%s = %+v, want only x32 numbers, denied EPERM", name, e)
					}
					x32++
					delete(entries, name)
				}
			}
			if want := map[bool]int{false: x32TableSize, true: 0}[tt.forServer]; x32 != want {
				t.Errorf("%d x32 numbers denied, want %d", x32, want)
			}
			for _, r := range seccompRules {
				e, ok := entries[r.call]
				delete(entries, r.call)
				if tt.forServer && r.serverAllows {
					if ok {
						t.Errorf("%s is denied, want it allowed: the server builds the nested sandboxes with it", r.call)
					}
					continue
				}
				if !ok {
					t.Errorf("%s is missing", r.call)
					continue
				}
				if e.errno != int(r.errno()) {
					t.Errorf("%s answers ERRNO(%d), want %d", r.call, e.errno, r.errno())
				}
				if (e.cond == "") != (r.arg == nil) {
					t.Errorf("%s has condition %q, want one exactly when the rule inspects an argument", r.call, e.cond)
					continue
				}
				for _, args := range argSamples() {
					if got, want := kafelDenies(t, r.call, e.cond, args), ruleDenies(r, args); got != want {
						t.Errorf("%s { %s } denies %v: %v, want %v", r.call, e.cond, args, got, want)
					}
				}
			}
			for name := range entries {
				t.Errorf("%s is denied with no rule for it", name)
			}
		})
	}
}

// The fork server's policy leaves out only what building a nested sandbox
// takes: new namespaces, mounts and the hostname.
func TestTheServerPolicyAllowsOnlyWhatNestedSandboxesNeed(t *testing.T) {
	var allowed []string
	for _, r := range seccompRules {
		if r.serverAllows {
			allowed = append(allowed, r.call)
		}
	}
	slices.Sort(allowed)
	if want := []string{"clone", "mount", "sethostname", "unshare"}; !slices.Equal(allowed, want) {
		t.Errorf("the server's jail allows %v, want %v", allowed, want)
	}
}

// The BPF program says what the rules say for every call number of this
// architecture and the x32 table, with every argument sample: no rule
// missing, none added, the same errno; and kills another architecture's
// calls.
func TestTheBPFFilterSaysWhatTheRulesSay(t *testing.T) {
	prog, table, arch := filterOrSkip(t)
	rules := map[int]seccompRule{}
	for _, r := range seccompRules {
		rules[table[r.call]] = r
	}
	samples := argSamples()
	for nr := 0; nr < 1024; nr++ {
		for _, args := range samples {
			want := uint32(unix.SECCOMP_RET_ALLOW)
			if r, ok := rules[nr]; ok && ruleDenies(r, args) {
				want = unix.SECCOMP_RET_ERRNO | uint32(r.errno())
			}
			wide := make([]uint64, len(args))
			for i, a := range args {
				wide[i] = uint64(a)
			}
			if got := evalBPF(t, prog, arch, nr, wide...); got != want {
				t.Fatalf("filter(%d, %v) = %#x, want %#x", nr, args, got, want)
			}
		}
	}
	eperm := uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.EPERM)
	for nr := x32SyscallBit; nr < x32SyscallBit+x32TableSize; nr++ {
		if got := evalBPF(t, prog, arch, nr); got != eperm {
			t.Fatalf("filter(x32 %#x) = %#x, want EPERM", nr, got)
		}
	}
	if got := evalBPF(t, prog, unix.AUDIT_ARCH_I386, unix.SYS_READ); got != unix.SECCOMP_RET_KILL_PROCESS {
		t.Errorf("filter(i386 read) = %#x, want the process killed", got)
	}
}

// filterOrSkip is this architecture's filter and syscall table; there is
// none, and no fork mode, off x86_64.
func filterOrSkip(t *testing.T) (prog []byte, table map[string]int, arch uint32) {
	t.Helper()
	prog, err := Filter()
	if errors.Is(err, ErrNoFilter) {
		t.Skip("no seccomp filter table for this architecture; fork mode is not offered here")
	}
	if err != nil {
		t.Fatalf("Filter: %v", err)
	}
	table, arch = syscallTable()
	return prog, table, arch
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
	prog, table, arch := filterOrSkip(t)
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
		{"ioctl TIOCSTI is denied", arch, table["ioctl"], []uint64{0, unix.TIOCSTI}, eperm},
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
