package executor

import (
	"fmt"
	"strings"
)

// seccompPolicy is the kafel policy every jailed process runs under. It is a
// deny-list with a default of allow: Python, numpy, pandas, threads,
// subprocess and multiprocessing need a wide set of ordinary syscalls, and the
// namespaces already confine what those can reach. What it denies are the
// calls that attack the kernel or the sandbox itself.
//
//   - ptrace and process_vm_*: reading or steering other processes.
//   - the mount family, pivot_root, chroot, setns, unshare and clone with any
//     CLONE_NEW* flag (0x7e020000): building new namespaces or mounts, the
//     usual first step of a user-namespace kernel exploit.
//   - kexec, modules, bpf, perf_event_open, userfaultfd, the key calls,
//     io_uring, syslog, iopl/ioperm: large kernel attack surfaces no script needs.
//   - clock, hostname and swap setters, reboot, acct, quotactl, handle-based
//     opens.
//   - socket for any family but AF_UNIX (1): there is no network in the jail,
//     and netlink or packet sockets are kernel surface.
//   - ioctl TIOCSTI (0x5412): pushing input into a terminal. kafel compares
//     ioctl's cmd as the 32-bit value the kernel uses, so high bits set in
//     the register do not slip past it.
//
// clone3 gets ENOSYS (38) rather than EPERM: its flags live in memory, where
// seccomp cannot inspect them, and ENOSYS makes glibc fall back to clone,
// whose flags the filter can check. kafel names x86_64 syscall 166 `umount`.
//
// The other entry points into the kernel:
//   - int 0x80 (the i386 ABI): kafel's filter checks the architecture first
//     and kills the caller (SIGSYS) for anything but x86_64.
//   - x32: its calls report the x86_64 architecture, with bit 30 set in the
//     number (0x40000000 | nr), so an architecture check does not catch them
//     and kafel's default would allow them: on a kernel built with x32
//     support, mount or ptrace would be reachable by their x32 numbers. The
//     policy denies the whole x32 table with EPERM, which also tells a test
//     that the filter, not the kernel, answered.
var seccompPolicy = buildSeccompPolicy()

// x32SyscallBit marks an x32 syscall number; x32TableSize bounds the x32
// table (x86_64's common numbers plus x32's own at 512..547), with room for
// years of new syscalls. Numbers past the kernel's table are ENOSYS anyway.
const (
	x32SyscallBit = 0x40000000
	x32TableSize  = 1024
)

func buildSeccompPolicy() string {
	x32 := make([]string, x32TableSize)
	for i := range x32 {
		x32[i] = fmt.Sprintf("SYSCALL[%d]", x32SyscallBit+i)
	}
	return `POLICY pyexec {
  ERRNO(1) {
    ptrace, process_vm_readv, process_vm_writev,
    mount, umount, pivot_root, chroot, setns, unshare,
    move_mount, open_tree, fsopen, fsconfig, fsmount, fspick, mount_setattr,
    kexec_load, kexec_file_load, init_module, finit_module, delete_module,
    bpf, perf_event_open, userfaultfd, add_key, request_key, keyctl,
    io_uring_setup, io_uring_enter, io_uring_register,
    settimeofday, clock_settime, clock_adjtime, adjtimex,
    sethostname, setdomainname, swapon, swapoff, reboot, acct, quotactl,
    open_by_handle_at, name_to_handle_at, lookup_dcookie, fanotify_init,
    syslog, vhangup, iopl, ioperm,
    clone { (clone_flags & 0x7e020000) != 0 },
    socket { family != 1 },
    ioctl { cmd == 0x5412 }
  },
  ERRNO(38) { clone3 },
  ERRNO(1) {
    ` + strings.Join(x32, ",") + `
  }
}
USE pyexec DEFAULT ALLOW
`
}

// serverSeccompPolicy is the server jail's kafel policy: seccompPolicy's,
// less the calls the server needs to build the nested sandboxes (clone with
// namespace flags, unshare, mount, sethostname). Every execution's process
// adds the full filter of seccomp_bpf.go before user code runs, which denies
// those too.
const serverSeccompPolicy = `POLICY pyexec_server {
  ERRNO(1) {
    ptrace, process_vm_readv, process_vm_writev,
    umount, pivot_root, chroot, setns,
    move_mount, open_tree, fsopen, fsconfig, fsmount, fspick, mount_setattr,
    kexec_load, kexec_file_load, init_module, finit_module, delete_module,
    bpf, perf_event_open, userfaultfd, add_key, request_key, keyctl,
    io_uring_setup, io_uring_enter, io_uring_register,
    settimeofday, clock_settime, clock_adjtime, adjtimex,
    setdomainname, swapon, swapoff, reboot, acct, quotactl,
    open_by_handle_at, name_to_handle_at, lookup_dcookie, fanotify_init,
    syslog, vhangup, iopl, ioperm,
    socket { family != 1 },
    ioctl { cmd == 0x5412 }
  },
  ERRNO(38) { clone3 }
}
USE pyexec_server DEFAULT ALLOW
`
