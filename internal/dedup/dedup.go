// Package dedup remembers which pieces of work completed, so that work
// delivered more than once (Pub/Sub delivers at least once) is done once.
//
// Memory is bounded: a Set forgets an ID after a while (its TTL) and, beyond
// its capacity, forgets the oldest first. It is a per-process best effort,
// not a guarantee across instances.
package dedup

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Set holds the IDs of completed work and the IDs being worked on. It is safe
// for concurrent use.
type Set struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu     sync.Mutex
	done   map[string]*list.Element // of *completion, oldest at the front
	order  *list.List
	active map[string]chan struct{} // closed when the holder releases the ID
}

type completion struct {
	id string
	at time.Time
}

// New returns a Set that remembers at most max completed IDs, each for at
// most ttl.
func New(max int, ttl time.Duration) *Set {
	return &Set{
		max:    max,
		ttl:    ttl,
		now:    time.Now,
		done:   map[string]*list.Element{},
		order:  list.New(),
		active: map[string]chan struct{}{},
	}
}

// Claim asks to do the work of id. While another caller holds id, it waits
// for that caller to release it (or for ctx). It reports done when id has
// completed; otherwise the caller now holds id and must Release it.
func (s *Set) Claim(ctx context.Context, id string) (done bool, err error) {
	for {
		s.mu.Lock()
		s.forget()
		if _, ok := s.done[id]; ok {
			s.mu.Unlock()
			return true, nil
		}
		released, held := s.active[id]
		if !held {
			s.active[id] = make(chan struct{})
			s.mu.Unlock()
			return false, nil
		}
		s.mu.Unlock()
		select {
		case <-released:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// Release gives up a claimed id. With completed, id is remembered as done;
// otherwise the next Claim of it may do the work again.
func (s *Set) Release(id string, completed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if released, ok := s.active[id]; ok {
		close(released)
		delete(s.active, id)
	}
	if completed {
		s.done[id] = s.order.PushBack(&completion{id: id, at: s.now()})
		s.forget()
	}
}

// Len is the number of completed IDs remembered.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forget()
	return len(s.done)
}

// forget drops expired IDs and, beyond capacity, the oldest. IDs complete in
// time order, so both are at the front of the list.
func (s *Set) forget() {
	now := s.now()
	for e := s.order.Front(); e != nil; e = s.order.Front() {
		c := e.Value.(*completion)
		if len(s.done) <= s.max && now.Sub(c.at) < s.ttl {
			return
		}
		s.order.Remove(e)
		delete(s.done, c.id)
	}
}
