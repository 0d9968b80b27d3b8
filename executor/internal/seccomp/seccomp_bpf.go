package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// The fork server's nested sandboxes cannot use kafel (nsjail compiles it,
// and there is no nsjail per execution), so their filter is assembled here
// as classic BPF from the same rules (seccompRules): the same denied calls,
// the same argument checks, ENOSYS where the rule says so, the same answer
// to other architectures and to x32, and a default of allow. The fork
// server installs it in every execution's process after dropping its
// capabilities, so an execution runs under both this filter and the server
// jail's kafel one.

// seccomp_data offsets (linux/seccomp.h): nr, arch, instruction_pointer,
// args[6]. An argument's low 32 bits come first on little-endian machines,
// the only ones with a syscall table here.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

const (
	retAllow       = unix.SECCOMP_RET_ALLOW
	retKillProcess = unix.SECCOMP_RET_KILL_PROCESS
	retErrno       = unix.SECCOMP_RET_ERRNO
)

// ErrNoFilter is what Filter returns where this architecture has no filter
// table.
var ErrNoFilter = errors.New("no seccomp filter for this architecture")

// Filter assembles the filter for this machine's architecture and
// returns it as struct sock_filter records, ready for PR_SET_SECCOMP. A
// rule whose call the table lacks is an error: fork mode is then not
// offered, rather than run with a filter that misses a call.
func Filter() ([]byte, error) {
	table, arch := syscallTable()
	if table == nil {
		return nil, ErrNoFilter
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
	jump(jge, x32SyscallBit, 0, 1)
	stmt(ret, eperm)
	for _, r := range seccompRules {
		nr, ok := table[r.call]
		if !ok {
			return nil, fmt.Errorf("seccomp rule for %s: no such call in this architecture's table", r.call)
		}
		deny := retErrno | uint32(r.errno())
		if r.arg == nil {
			jump(jeq, uint32(nr), 0, 1)
			stmt(ret, deny)
			continue
		}
		// Not this call: on to the next rule. This call: load the
		// argument, and deny or allow as it matches.
		jump(jeq, uint32(nr), 0, 4)
		stmt(ldAbs, uint32(offArgs+8*r.arg.index))
		switch r.arg.test {
		case anyBitOf:
			jump(jset, r.arg.value, 0, 1)
		case equalTo:
			jump(jeq, r.arg.value, 0, 1)
		case notEqualTo:
			jump(jeq, r.arg.value, 1, 0)
		}
		stmt(ret, deny)
		stmt(ret, retAllow)
	}
	stmt(ret, retAllow)

	out := make([]byte, 0, 8*len(prog))
	for _, ins := range prog {
		out = binary.LittleEndian.AppendUint16(out, ins.Code)
		out = append(out, ins.Jt, ins.Jf)
		out = binary.LittleEndian.AppendUint32(out, ins.K)
	}
	return out, nil
}
