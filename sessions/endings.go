package sessions

import "time"

// Why a session ended is remembered this long, for at most this many
// sessions: long enough for its client's next call, bounded in memory.
const (
	endingsTTL = time.Hour
	maxEndings = 10000
)

// endings remembers why sessions ended, oldest first out.
type endings struct {
	max   int
	ttl   time.Duration
	why   map[string]ending
	order []string // IDs, oldest first
}

type ending struct {
	why string
	at  time.Time
}

func newEndings(max int, ttl time.Duration) endings {
	return endings{max: max, ttl: ttl, why: map[string]ending{}}
}

func (e *endings) add(id, why string, now time.Time) {
	if _, ok := e.why[id]; !ok {
		e.order = append(e.order, id)
	}
	e.why[id] = ending{why: why, at: now}
	for len(e.order) > e.max || (len(e.order) > 0 && now.Sub(e.why[e.order[0]].at) > e.ttl) {
		delete(e.why, e.order[0])
		e.order = e.order[1:]
	}
}

func (e *endings) get(id string, now time.Time) (string, bool) {
	x, ok := e.why[id]
	if !ok || now.Sub(x.at) > e.ttl {
		return "", false
	}
	return x.why, true
}
