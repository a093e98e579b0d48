// Package fakeclock is a manually advanced clock for tests whose code under
// test decides by time (token expiry, refresh, skew), so they never sleep.
package fakeclock

import (
	"sync"
	"time"
)

// Clock starts at a given time and moves only when Advance is called. It is
// safe for concurrent use; pass its Now method where a func() time.Time is
// wanted.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a Clock reading start.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d (which may be negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
