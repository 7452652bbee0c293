// Package clocktest is the clock test networks run on: the real clock,
// moved by an offset a test sets, so certificates expire and subscriptions
// run out without waiting.
package clocktest

import (
	"sync"
	"time"
)

// Clock is the real clock plus an offset; the zero value is the real
// clock. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	off time.Duration
}

// Now is the real time plus the offset.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// Set puts the clock at the real time plus off.
func (c *Clock) Set(off time.Duration) {
	c.mu.Lock()
	c.off = off
	c.mu.Unlock()
}
