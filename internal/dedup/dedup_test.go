package dedup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newSet(max int, ttl time.Duration) (*Set, *fakeClock) {
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := New(max, ttl)
	s.now = clock.now
	return s, clock
}

func claim(t *testing.T, s *Set, id string) bool {
	t.Helper()
	done, err := s.Claim(context.Background(), id)
	if err != nil {
		t.Fatalf("Claim(%q) = %v", id, err)
	}
	return done
}

func TestClaimReportsCompletedIDsAsDone(t *testing.T) {
	tests := []struct {
		name      string
		completed bool
		wantDone  bool
	}{
		{name: "an ID released as completed is done", completed: true, wantDone: true},
		{name: "an ID released without completing may be worked on again", completed: false, wantDone: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newSet(10, time.Hour)
			if claim(t, s, "m1") {
				t.Fatal("first Claim(m1) = done, want not done")
			}
			s.Release("m1", tt.completed)
			if got := claim(t, s, "m1"); got != tt.wantDone {
				t.Errorf("Claim(m1) after Release(m1, %v) = %v, want %v", tt.completed, got, tt.wantDone)
			}
		})
	}
}

func TestCompletedIDsAreForgottenAfterTheTTL(t *testing.T) {
	s, clock := newSet(10, time.Hour)
	claim(t, s, "m1")
	s.Release("m1", true)
	clock.advance(59 * time.Minute)
	if !claim(t, s, "m1") {
		t.Errorf("Claim(m1) within the TTL = not done, want done")
	}
	clock.advance(time.Minute)
	if claim(t, s, "m1") {
		t.Errorf("Claim(m1) after the TTL = done, want forgotten")
	}
}

func TestBeyondCapacityTheOldestIDsAreForgotten(t *testing.T) {
	s, clock := newSet(3, time.Hour)
	for i := range 5 {
		id := fmt.Sprint("m", i)
		claim(t, s, id)
		s.Release(id, true)
		clock.advance(time.Second)
	}
	if s.Len() != 3 {
		t.Errorf("Len() = %d, want the capacity 3", s.Len())
	}
	for i, want := range []bool{false, false, true, true, true} {
		id := fmt.Sprint("m", i)
		if got := claim(t, s, id); got != want {
			t.Errorf("Claim(%s) = %v, want %v", id, got, want)
		}
		if !want {
			s.Release(id, false)
		}
	}
}

func TestConcurrentClaimsOfOneIDDoTheWorkOnce(t *testing.T) {
	s := New(100, time.Hour)
	var worked atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			done, err := s.Claim(context.Background(), "m1")
			if err != nil {
				t.Errorf("Claim(m1) = %v", err)
				return
			}
			if done {
				return
			}
			worked.Add(1)
			time.Sleep(5 * time.Millisecond)
			s.Release("m1", true)
		})
	}
	wg.Wait()
	if worked.Load() != 1 {
		t.Errorf("the work of m1 was done %d times, want once", worked.Load())
	}
}

func TestAClaimWaitingForAnotherGivesUpWithItsContext(t *testing.T) {
	s := New(100, time.Hour)
	claim(t, s, "m1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.Claim(ctx, "m1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Claim(m1) while held = %v, want %v", err, context.DeadlineExceeded)
	}
	s.Release("m1", false)
	if claim(t, s, "m1") {
		t.Errorf("Claim(m1) after a release without completion = done, want not done")
	}
}
