// Package uids chooses the ids a jail's nobody is outside: from what the
// service's user namespace maps and its accounts leave free, one run for the
// fork server, one for cold mode's slots and one for pool mode's jails.
package uids

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The uid policy, in one place. Inside every jail a script runs as nobody
// (JailUID). Outside, that nobody is an id of the service's user namespace
// that no account uses, and no two jails alive at once share one:
// RLIMIT_NPROC counts processes per uid, and the kernel's permission checks
// between processes (signals, ptrace, /proc) start from the uid. The same
// number serves as the jail's outside uid and gid. For a concurrency of c
// the ids form three runs:
//
//	fork server   1      fork mode: the fork server's jail, and through it
//	                     every execution's nested user namespace. Executions
//	                     share it, which is why fork mode needs a cgroup for
//	                     per-execution process limits (the executor's mode_fork.go).
//	cold          c      cold mode: one per execution slot.
//	pool          2c+1   pool mode: one per jail alive, waiting or running.
//
// Which ids: an id can only be used if the user namespace the service runs
// in maps it, as uid and as gid (nsjail writes the jail's maps from here).
// On a host, or a container whose namespace maps them, the runs are the
// preferred ones below, far above any account a system allocates.
// Cloud Run runs jobs and worker pools (and may run services) with the
// container's root inside a user namespace that maps only 0-65535; there
// the runs are one block of 3c+2 ids, the highest one the namespace maps
// at or below 65533, and never below 1000:
//
//   - 65535 is (uid_t)-1 to 16-bit interfaces and 65534 is nobody, the
//     id the kernel shows for every unmapped owner; a jail must share
//     neither with anything.
//   - Debian reserves 65000-65533 and allocates no account there (Debian
//     Policy 9.2.2), so on the image this service ships in, the block of
//     any concurrency up to 177 lies where no package creates a user.
//   - Below 1000 lie the system accounts packages create as they install.
//
// In both cases an id named in the container's /etc/passwd or /etc/group
// is never used, and the service fails closed where no block is free:
// Start fails and /healthz says which ids it needed.
//
// SECURITY.md ("Layers, what each stops, and what it does not") describes
// the user namespace this mapping is part of.

// MaxConcurrency is the largest concurrency the runs are sized for; the
// executor bounds PYEXEC_CONCURRENCY by it.
const MaxConcurrency = 1024

const (
	// JailUID is nobody inside the jail.
	JailUID = 65534

	// The preferred runs: what the service has always used where they are
	// mapped. The pool run starts past the largest cold run.
	PreferredForkServerID = 199999
	PreferredColdID       = 200000
	PreferredPoolID       = PreferredColdID + MaxConcurrency

	// The bounds of the block taken where the preferred runs are not mapped.
	LowestBlockID  = 1000
	HighestBlockID = 65533
)

// poolUIDCount is how many pool jails can be alive at once: one waiting and
// one running per slot, and one being started.
func poolUIDCount(concurrency int) int { return 2*concurrency + 1 }

// Range is the ids first, first+1, ... first+count-1.
type Range struct{ first, count int }

// Last returns the range's last id.
func (r Range) Last() int            { return r.first + r.count - 1 }
func (r Range) contains(id int) bool { return id >= r.first && id <= r.Last() }

// String returns the range as "first-last", or the one id it holds.
func (r Range) String() string {
	if r.count == 1 {
		return strconv.Itoa(r.first)
	}
	return fmt.Sprintf("%d-%d", r.first, r.Last())
}

// Outside are the ids one executor's jails run as outside, chosen once
// at Start (Choose) for its concurrency.
type Outside struct {
	forkServer int
	coldFirst  int
	poolFirst  int
	// concurrency sizes the cold and pool runs; zero in an unset value,
	// whose check refuses every uid.
	concurrency int
}

// layoutAt lays the three runs out from first: the fork server, then
// cold, then pool, with no gap.
func layoutAt(first, concurrency int) Outside {
	return Outside{forkServer: first, coldFirst: first + 1, poolFirst: first + 1 + concurrency, concurrency: concurrency}
}

// blockSize is how many ids layoutAt takes.
func blockSize(concurrency int) int { return 1 + concurrency + poolUIDCount(concurrency) }

// Preferred returns the preferred runs for a concurrency.
func Preferred(concurrency int) Outside {
	return Outside{forkServer: PreferredForkServerID, coldFirst: PreferredColdID, poolFirst: PreferredPoolID, concurrency: concurrency}
}

// runs are the fork server's, cold and pool runs.
func (o Outside) runs() []Range {
	return []Range{{o.forkServer, 1}, {o.coldFirst, o.concurrency}, {o.poolFirst, poolUIDCount(o.concurrency)}}
}

// ForkServer returns the outside uid of the fork server's jail.
func (o Outside) ForkServer() int { return o.forkServer }

// Cold returns the outside uid of a cold jail in the given execution slot.
func (o Outside) Cold(slot int) int { return o.coldFirst + slot }

// Pool returns the run pool mode hands out, one uid to each jail alive.
func (o Outside) Pool() Range { return Range{o.poolFirst, poolUIDCount(o.concurrency)} }

// Describe returns the run of the mode named mode ("fork", "pool", else
// cold) as /healthz reports it (Isolation.OutsideUIDs).
func (o Outside) Describe(mode string) string {
	switch mode {
	case "fork":
		return Range{o.forkServer, 1}.String()
	case "pool":
		return o.Pool().String()
	default:
		return Range{o.coldFirst, o.concurrency}.String()
	}
}

// Check refuses a uid that is not one of these runs' ids; root (the zero
// value of an unset uid) above all.
func (o Outside) Check(uid int) error {
	if uid > 0 && o.concurrency > 0 {
		for _, r := range o.runs() {
			if r.contains(uid) {
				return nil
			}
		}
	}
	return fmt.Errorf("outside uid %d is not one of this executor's (%s)", uid, o)
}

// String returns the three runs, or "none chosen" for an unset value.
func (o Outside) String() string {
	if o.concurrency == 0 {
		return "none chosen"
	}
	var runs []string
	for _, r := range o.runs() {
		runs = append(runs, r.String())
	}
	return strings.Join(runs, ", ")
}

// Facts are what the choice of outside ids rests on: the maps of the
// user namespace the service runs in, and the ids its accounts use.
type Facts struct {
	uidMap, gidMap string // the text of /proc/self/uid_map and gid_map
	passwd, group  string // the text of /etc/passwd and /etc/group
}

// ReadFacts reads this process's facts. A missing /etc/passwd or
// /etc/group names no account; unreadable maps are an error, since then
// no id is known to be mapped.
func ReadFacts() (Facts, error) {
	var f Facts
	for path, dst := range map[string]*string{"/proc/self/uid_map": &f.uidMap, "/proc/self/gid_map": &f.gidMap} {
		b, err := os.ReadFile(path)
		if err != nil {
			return Facts{}, fmt.Errorf("reading the user namespace's id map: %w", err)
		}
		*dst = string(b)
	}
	for path, dst := range map[string]*string{"/etc/passwd": &f.passwd, "/etc/group": &f.group} {
		if b, err := os.ReadFile(path); err == nil {
			*dst = string(b)
		}
	}
	return f, nil
}

// Choose picks the runs for a concurrency from what facts say is
// mapped and free: the preferred runs if they are, else the highest free
// block of the mapped ids between LowestBlockID and HighestBlockID.
func Choose(f Facts, concurrency int) (Outside, error) {
	if concurrency < 1 || concurrency > MaxConcurrency {
		return Outside{}, fmt.Errorf("concurrency %d is not 1..%d", concurrency, MaxConcurrency)
	}
	uids, err := parseIDMap(f.uidMap)
	if err != nil {
		return Outside{}, fmt.Errorf("reading uid_map: %w", err)
	}
	gids, err := parseIDMap(f.gidMap)
	if err != nil {
		return Outside{}, fmt.Errorf("reading gid_map: %w", err)
	}
	taken := accountIDs(f.passwd, f.group)
	usable := func(id int) bool {
		return mapped(uids, id) && mapped(gids, id) && !taken[id]
	}

	preferred := Preferred(concurrency)
	var missing []string
	for _, r := range preferred.runs() {
		for id := r.first; id <= r.Last(); id++ {
			if !usable(id) {
				missing = append(missing, r.String())
				break
			}
		}
	}
	if len(missing) == 0 {
		return preferred, nil
	}

	// The highest run of usable ids long enough, scanning down.
	need, run := blockSize(concurrency), 0
	for id := HighestBlockID; id >= LowestBlockID; id-- {
		if !usable(id) {
			run = 0
			continue
		}
		if run++; run == need {
			return layoutAt(id, concurrency), nil
		}
	}
	return Outside{}, fmt.Errorf("outside uids %s are not mapped as uids and gids in this user namespace, or belong to accounts "+
		"(uid_map: %s; gid_map: %s), and no free block of %d ids lies between %d and %d",
		strings.Join(missing, ", "), oneLine(f.uidMap), oneLine(f.gidMap), need, LowestBlockID, HighestBlockID)
}

// idExtent is one line of an id map: the ids first..last of this namespace.
type idExtent struct{ first, last uint64 }

// parseIDMap reads a /proc/<pid>/uid_map or gid_map, as read by a process
// of the namespace itself: each line maps count ids from the first field
// (ids of this namespace) onto its parent's.
func parseIDMap(text string) ([]idExtent, error) {
	var extents []idExtent
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 3 {
			return nil, fmt.Errorf("line %q does not have three fields", line)
		}
		var n [3]uint64
		for i, field := range fields {
			v, err := strconv.ParseUint(field, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("line %q: %w", line, err)
			}
			n[i] = v
		}
		if n[2] > 0 {
			extents = append(extents, idExtent{first: n[0], last: n[0] + n[2] - 1})
		}
	}
	return extents, nil
}

// mapped tells whether an id map maps id.
func mapped(extents []idExtent, id int) bool {
	for _, e := range extents {
		if id >= 0 && uint64(id) >= e.first && uint64(id) <= e.last {
			return true
		}
	}
	return false
}

// accountIDs are the uids and gids /etc/passwd and /etc/group name.
func accountIDs(passwd, group string) map[int]bool {
	ids := map[int]bool{}
	add := func(text string, columns ...int) {
		for _, line := range strings.Split(text, "\n") {
			fields := strings.Split(line, ":")
			for _, c := range columns {
				if c < len(fields) {
					if id, err := strconv.Atoi(fields[c]); err == nil {
						ids[id] = true
					}
				}
			}
		}
	}
	add(passwd, 2, 3) // name:password:uid:gid:...
	add(group, 2)     // name:password:gid:members
	return ids
}

// oneLine is an id map as one line, its fields single-spaced.
func oneLine(text string) string {
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		lines = append(lines, strings.Join(strings.Fields(line), " "))
	}
	return strings.Join(lines, ", ")
}

// Pool hands out the uids of a range, each to one jail at a time.
type Pool chan int

// NewPool returns a pool holding every uid of r.
func NewPool(r Range) Pool {
	p := make(Pool, r.count)
	for i := 0; i < r.count; i++ {
		p <- r.first + i
	}
	return p
}

// Take waits for a free uid and returns it.
func (p Pool) Take() int { return <-p }

// Give returns a uid whose jail is gone to the pool.
func (p Pool) Give(uid int) { p <- uid }
