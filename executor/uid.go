package executor

import (
	"fmt"
	"strconv"
)

// The uid policy, in one place. Inside every jail a script runs as nobody
// (jailUID). Outside, that nobody is a host uid nothing else on the host
// uses, and no two jails alive at once share one: RLIMIT_NPROC counts
// processes per uid, and the kernel's permission checks between processes
// (signals, ptrace, /proc) start from the uid. The ranges, for a
// concurrency of c (at most maxConcurrency, so they never meet):
//
//	199999           fork mode: the fork server's jail, and through it every
//	                 execution's nested user namespace. Executions share it,
//	                 which is why fork mode needs a cgroup for per-execution
//	                 process limits (mode_fork.go).
//	200000 … +c-1    cold mode: one per execution slot.
//	201024 … +2c     pool mode: one per jail alive, waiting or running.
//
// SECURITY.md ("Layers, what each stops, and what it does not") describes
// the user namespace this mapping is part of.

const (
	// jailUID is nobody inside the jail.
	jailUID = 65534
	// outsideUIDBase is the first host uid of cold mode's range.
	outsideUIDBase = 200000
	// forkServerUID is just below the cold range.
	forkServerUID = outsideUIDBase - 1
	// poolUIDBase starts the pool range past the largest cold range.
	poolUIDBase = outsideUIDBase + maxConcurrency
	// lastOutsideUID ends the largest pool range.
	lastOutsideUID = poolUIDBase + 2*maxConcurrency
)

// coldUID is the outside uid of a cold jail in the given execution slot.
func coldUID(slot int) int { return outsideUIDBase + slot }

// poolUIDCount is how many pool jails can be alive at once: one waiting and
// one running per slot, and one being started.
func poolUIDCount(concurrency int) int { return 2*concurrency + 1 }

// outsideUIDs is a mode's range as /healthz reports it
// (Isolation.OutsideUIDs).
func outsideUIDs(mode Mode, concurrency int) string {
	switch mode {
	case ModeFork:
		return strconv.Itoa(forkServerUID)
	case ModePool:
		return fmt.Sprintf("%d-%d", poolUIDBase, poolUIDBase+poolUIDCount(concurrency)-1)
	default:
		return fmt.Sprintf("%d-%d", outsideUIDBase, coldUID(concurrency-1))
	}
}

// checkOutsideUID refuses a uid outside the ranges above; root (the zero
// value of an unset uid) above all.
func checkOutsideUID(uid int) error {
	if uid < forkServerUID || uid > lastOutsideUID {
		return fmt.Errorf("outside uid %d is not one of pyexec's (%d-%d)", uid, forkServerUID, lastOutsideUID)
	}
	return nil
}

// uidPool hands out the uids of a range, each to one jail at a time.
type uidPool chan int

func newUIDPool(first, count int) uidPool {
	p := make(uidPool, count)
	for i := 0; i < count; i++ {
		p <- first + i
	}
	return p
}

// take waits for a free uid.
func (p uidPool) take() int { return <-p }

// give returns a uid whose jail is gone.
func (p uidPool) give(uid int) { p <- uid }
