package executor

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

// The fork server's nested sandboxes cannot use kafel (nsjail compiles it,
// and there is no nsjail per execution), so their filter is built here as
// classic BPF with the same rules as seccompPolicy: the same denied calls,
// the same argument checks on clone, socket and ioctl, ENOSYS for clone3,
// and a default of allow. The fork server installs it in every execution's
// process after dropping its capabilities, so an execution runs under both
// this filter and the server jail's kafel one.

// seccompDenied lists the calls answered EPERM, by the names seccompPolicy
// uses; seccomp_bpf_test.go checks that the two lists agree.
var seccompDenied = []string{
	"ptrace", "process_vm_readv", "process_vm_writev",
	"mount", "umount", "pivot_root", "chroot", "setns", "unshare",
	"move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"bpf", "perf_event_open", "userfaultfd", "add_key", "request_key", "keyctl",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"sethostname", "setdomainname", "swapon", "swapoff", "reboot", "acct", "quotactl",
	"open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "fanotify_init",
	"syslog", "vhangup", "iopl", "ioperm",
}

// Argument rules, as in seccompPolicy.
const (
	cloneNamespaceFlags = 0x7e020000 // every CLONE_NEW* flag
	afUnix              = 1
	tiocsti             = 0x5412
)

// seccomp_data offsets (linux/seccomp.h): nr, arch, instruction_pointer, args[6].
const (
	offNr   = 0
	offArch = 4
	offArg0 = 16 // low 32 bits on little-endian machines
	offArg1 = 24
)

const (
	retAllow       = unix.SECCOMP_RET_ALLOW
	retKillProcess = unix.SECCOMP_RET_KILL_PROCESS
	retErrno       = unix.SECCOMP_RET_ERRNO
)

// errNoFilter is returned where this architecture has no filter table.
var errNoFilter = errors.New("no seccomp filter for this architecture")

// seccompFilter assembles the filter for this machine's architecture and
// returns it as struct sock_filter records, ready for PR_SET_SECCOMP.
func seccompFilter() ([]byte, error) {
	table, arch := syscallTable()
	if table == nil {
		return nil, errNoFilter
	}
	var prog []unix.SockFilter
	stmt := func(code uint16, k uint32) { prog = append(prog, unix.SockFilter{Code: code, K: k}) }
	jump := func(code uint16, k uint32, jt, jf uint8) {
		prog = append(prog, unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k})
	}
	const (
		ldAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge   = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		jset  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
	)
	eperm := retErrno | uint32(unix.EPERM)

	// Another architecture's entry points (int 0x80 on x86_64) number the
	// calls differently: a process using them is killed.
	stmt(ldAbs, offArch)
	jump(jeq, arch, 1, 0)
	stmt(ret, retKillProcess)
	stmt(ldAbs, offNr)
	// x32 numbers (bit 30) reach the same calls by other numbers.
	jump(jge, 0x40000000, 0, 1)
	stmt(ret, eperm)
	for _, name := range seccompDenied {
		nr, ok := table[name]
		if !ok {
			continue // not a call on this architecture
		}
		jump(jeq, uint32(nr), 0, 1)
		stmt(ret, eperm)
	}
	// clone3's flags live in memory, where the filter cannot read them:
	// ENOSYS makes glibc fall back to clone.
	jump(jeq, uint32(table["clone3"]), 0, 1)
	stmt(ret, retErrno|uint32(unix.ENOSYS))
	// clone with any namespace flag.
	jump(jeq, uint32(table["clone"]), 0, 4)
	stmt(ldAbs, offArg0)
	jump(jset, cloneNamespaceFlags, 0, 1)
	stmt(ret, eperm)
	stmt(ret, retAllow)
	// socket for any family but AF_UNIX.
	jump(jeq, uint32(table["socket"]), 0, 4)
	stmt(ldAbs, offArg0)
	jump(jeq, afUnix, 0, 1)
	stmt(ret, retAllow)
	stmt(ret, eperm)
	// ioctl TIOCSTI.
	jump(jeq, uint32(table["ioctl"]), 0, 4)
	stmt(ldAbs, offArg1)
	jump(jeq, tiocsti, 0, 1)
	stmt(ret, eperm)
	stmt(ret, retAllow)
	stmt(ret, retAllow)

	out := make([]byte, 0, 8*len(prog))
	for _, ins := range prog {
		out = binary.LittleEndian.AppendUint16(out, ins.Code)
		out = append(out, ins.Jt, ins.Jf)
		out = binary.LittleEndian.AppendUint32(out, ins.K)
	}
	return out, nil
}
