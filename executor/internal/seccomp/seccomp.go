// Package seccomp holds the seccomp deny list every jailed process runs
// under, once, and renders it in the two forms the executor needs: kafel
// policy text for nsjail (Policy, ServerPolicy) and a classic BPF filter for
// the fork server's nested sandboxes (Filter).
package seccomp

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// The seccomp deny list, written once. Every jailed process runs under it:
// nsjail compiles it from kafel text (seccompPolicy) in cold and pool mode;
// fork mode's processes install it as classic BPF (Filter,
// seccomp_bpf.go), inside a server jail whose own kafel policy
// (serverSeccompPolicy) is the same list less the calls the server builds
// their sandboxes with. seccomp_test.go proves the three forms agree.
//
// It is a deny-list with a default of allow: Python, numpy, pandas,
// threads, subprocess and multiprocessing need a wide set of ordinary
// syscalls, and the namespaces already confine what those can reach. What
// it denies are the calls that attack the kernel or the sandbox itself.
// SECURITY.md ("Layers, what each stops, and what it does not") gives the
// threat each row answers.
var seccompRules = []seccompRule{
	// Reading or steering other processes.
	{call: "ptrace"}, {call: "process_vm_readv"}, {call: "process_vm_writev"},

	// Building new namespaces or mounts, the usual first step of a
	// user-namespace kernel exploit. CLONE_NEW* is every namespace flag.
	{call: "mount", serverAllows: true}, {call: "umount"}, {call: "pivot_root"}, {call: "chroot"},
	{call: "setns"}, {call: "unshare", serverAllows: true},
	{call: "clone", arg: &argMatch{index: 0, name: "clone_flags", test: anyBitOf, value: cloneNamespaceFlags}, serverAllows: true},
	{call: "move_mount"}, {call: "open_tree"}, {call: "fsopen"}, {call: "fsconfig"}, {call: "fsmount"},
	{call: "fspick"}, {call: "mount_setattr"},
	// clone3's flags live in memory, where seccomp cannot inspect them:
	// ENOSYS makes glibc fall back to clone, whose flags the filter checks.
	{call: "clone3", enosys: true},

	// Large kernel attack surfaces no script needs.
	{call: "kexec_load"}, {call: "kexec_file_load"},
	{call: "init_module"}, {call: "finit_module"}, {call: "delete_module"},
	{call: "bpf"}, {call: "perf_event_open"}, {call: "userfaultfd"},
	{call: "add_key"}, {call: "request_key"}, {call: "keyctl"},
	{call: "io_uring_setup"}, {call: "io_uring_enter"}, {call: "io_uring_register"},
	{call: "syslog"}, {call: "vhangup"}, {call: "iopl"}, {call: "ioperm"},

	// Setters of what the host shares: clocks, names, swap; and reboot,
	// acct, quotactl and handle-based opens. The server sets its nested
	// sandboxes' hostname.
	{call: "settimeofday"}, {call: "clock_settime"}, {call: "clock_adjtime"}, {call: "adjtimex"},
	{call: "sethostname", serverAllows: true}, {call: "setdomainname"},
	{call: "swapon"}, {call: "swapoff"}, {call: "reboot"}, {call: "acct"}, {call: "quotactl"},
	{call: "open_by_handle_at"}, {call: "name_to_handle_at"}, {call: "lookup_dcookie"}, {call: "fanotify_init"},

	// Sockets of any family but AF_UNIX: there is no network in the jail,
	// and netlink or packet sockets are kernel surface.
	{call: "socket", arg: &argMatch{index: 0, name: "family", test: notEqualTo, value: unix.AF_UNIX}},
	// TIOCSTI pushes input into a terminal. The command is compared as the
	// 32-bit value the kernel uses, so high bits set in the register do not
	// slip past.
	{call: "ioctl", arg: &argMatch{index: 1, name: "cmd", test: equalTo, value: unix.TIOCSTI}},
}

// cloneNamespaceFlags is every CLONE_NEW* flag.
const cloneNamespaceFlags = 0x7e020000

// The other entry points into the kernel, denied as a whole wherever user
// code runs:
//   - int 0x80 (the i386 ABI): the architecture check kills the caller
//     (SIGSYS) for anything but the native architecture.
//   - x32: its calls report the x86_64 architecture, with bit 30 set in the
//     number, so an architecture check does not catch them and the default
//     would allow them: on a kernel built with x32 support, mount or ptrace
//     would be reachable by their x32 numbers. The whole x32 table is
//     answered EPERM, which also tells a test that the filter, not the
//     kernel, answered.
//
// x32TableSize bounds the x32 table in kafel, which names numbers one by
// one (x86_64's common numbers plus x32's own at 512..547), with room for
// years of new syscalls; numbers past the kernel's table are ENOSYS anyway.
// The BPF filter denies every number from x32SyscallBit up.
const (
	x32SyscallBit = 0x40000000
	x32TableSize  = 1024
)

// seccompRule denies one syscall, or those of its calls whose argument
// matches. Its zero values are the strict ones: EPERM, every call, and
// denied in the fork server's jail too.
type seccompRule struct {
	call string    // kafel's name for it (x86_64's 166 is `umount`)
	arg  *argMatch // nil: every call
	// enosys answers ENOSYS instead of EPERM.
	enosys bool
	// serverAllows marks what the fork server needs to build every
	// execution's nested sandbox; its own jail allows it. The processes it
	// forks deny it, as every other jail does.
	serverAllows bool
}

// errno is what a denied call returns.
func (r seccompRule) errno() unix.Errno {
	if r.enosys {
		return unix.ENOSYS
	}
	return unix.EPERM
}

// argMatch selects calls by one argument, compared as its low 32 bits.
type argMatch struct {
	index int    // which argument, from 0
	name  string // kafel's name for it
	test  argTest
	value uint32
}

// argTest is how an argument is compared with the rule's value.
type argTest int

const (
	anyBitOf   argTest = iota // any bit of value is set
	equalTo                   // the argument is value
	notEqualTo                // the argument is not value
)

// kafel writes the condition in kafel's syntax.
func (m argMatch) kafel() string {
	v := fmt.Sprint(m.value)
	if m.value >= 10 {
		v = fmt.Sprintf("%#x", m.value)
	}
	switch m.test {
	case anyBitOf:
		return fmt.Sprintf("(%s & %s) != 0", m.name, v)
	case equalTo:
		return fmt.Sprintf("%s == %s", m.name, v)
	default:
		return fmt.Sprintf("%s != %s", m.name, v)
	}
}

// seccompPolicy is the kafel policy of every jail nsjail starts for an
// execution.
var seccompPolicy = kafelPolicy("pyexec", false)

// serverSeccompPolicy is the fork server's jail's kafel policy: the same,
// less the calls it builds the nested sandboxes with. Every execution's
// process installs the full filter before user code runs.
var serverSeccompPolicy = kafelPolicy("pyexec_server", true)

// Policy returns the kafel policy of every jail nsjail starts for an
// execution, for its configuration's seccomp_string.
func Policy() string { return seccompPolicy }

// ServerPolicy returns the kafel policy of the fork server's jail: Policy
// less the calls the server builds its nested sandboxes with, and less the
// x32 table.
func ServerPolicy() string { return serverSeccompPolicy }

// kafelPolicy renders seccompRules as a kafel policy named name, leaving
// out what the server needs when forServer.
func kafelPolicy(name string, forServer bool) string {
	var calls, conditional, enosys []string
	for _, r := range seccompRules {
		switch {
		case forServer && r.serverAllows:
		case r.enosys:
			enosys = append(enosys, r.call)
		case r.arg != nil:
			conditional = append(conditional, fmt.Sprintf("%s { %s }", r.call, r.arg.kafel()))
		default:
			calls = append(calls, r.call)
		}
	}
	var x32 []string
	if !forServer {
		// The server runs no user code, and the x32 table would take a third
		// of its jail's configuration, which must fit a pipe's buffer
		// (the executor's startNsjail): its executions' filter denies x32.
		numbers := make([]string, x32TableSize)
		for i := range numbers {
			numbers[i] = fmt.Sprintf("SYSCALL[%d]", x32SyscallBit+i)
		}
		x32 = []string{strings.Join(numbers, ",")} // one line
	}
	var blocks []string
	for _, block := range []struct {
		errno   unix.Errno
		entries []string
	}{
		{unix.EPERM, append(wrap(calls, 72), conditional...)}, // one line each
		{unix.ENOSYS, enosys},
		{unix.EPERM, x32},
	} {
		if len(block.entries) > 0 {
			blocks = append(blocks, kafelBlock(block.errno, block.entries))
		}
	}
	return fmt.Sprintf("POLICY %s {\n%s\n}\nUSE %s DEFAULT ALLOW\n", name, strings.Join(blocks, ",\n"), name)
}

// kafelBlock is one ERRNO block of a kafel policy.
func kafelBlock(errno unix.Errno, entries []string) string {
	if len(entries) == 1 {
		return fmt.Sprintf("  ERRNO(%d) { %s }", int(errno), entries[0])
	}
	return fmt.Sprintf("  ERRNO(%d) {\n    %s\n  }", int(errno), strings.Join(entries, ",\n    "))
}

// wrap joins words with ", " into lines of about width characters.
func wrap(words []string, width int) []string {
	var lines []string
	line := ""
	for _, w := range words {
		switch {
		case line == "":
			line = w
		case len(line)+2+len(w) > width:
			lines = append(lines, line)
			line = w
		default:
			line += ", " + w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
