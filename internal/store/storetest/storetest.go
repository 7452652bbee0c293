// Package storetest is the conformance suite every store.Store backend must
// pass: call Run from the backend's tests.
package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"anom/internal/store"
)

// Harness tells the suite how to make stores of one backend.
type Harness struct {
	// Open returns a new, empty store whose clock is now. Required.
	Open func(t *testing.T, now func() time.Time) store.Store
	// Reopen closes s and returns a store over the same data and clock
	// (for the embedded backend: the same directory). Every durable
	// backend must set it; only a deliberately non-durable configuration
	// (an in-memory store for tests) may leave it nil, which leaves out
	// the persistence test.
	Reopen func(t *testing.T, s store.Store) store.Store
	// ConcurrentWriters is the number of goroutines of the concurrency
	// tests; zero means 16.
	ConcurrentWriters int
}

// Run runs the whole suite.
func Run(t *testing.T, h Harness) {
	if h.Open == nil {
		t.Fatal("storetest: Harness.Open is required")
	}
	if h.ConcurrentWriters == 0 {
		h.ConcurrentWriters = 16
	}
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"KVBasic", testKVBasic},
		{"KVNames", testKVNames},
		{"KVValues", testKVValues},
		{"KVList", testKVList},
		{"KVTxn", testKVTxn},
		{"KVConcurrentCAS", testKVConcurrentCAS},
		{"KVCodeConsumedOnce", testCodeConsumedOnce},
		{"KVClaimFirst", testClaimFirst},
		{"LogAppendRead", testLogAppendRead},
		{"LogAppendIf", testLogAppendIf},
		{"LogAppendAll", testLogAppendAll},
		{"LogLimits", testLogLimits},
		{"LogTrim", testLogTrim},
		{"LogTrimBefore", testLogTrimBefore},
		{"LogDelete", testLogDelete},
		{"LogList", testLogList},
		{"LogCursors", testLogCursors},
		{"LogWait", testLogWait},
		{"LogConcurrentAppendIf", testLogConcurrentAppendIf},
		{"LogConcurrentAppendAllIf", testLogConcurrentAppendAllIf},
		{"LogConcurrentAppend", testLogConcurrentAppend},
		{"Queue", testQueue},
		{"BlobRoundTrip", testBlobRoundTrip},
		{"BlobErrors", testBlobErrors},
		{"BlobSeek", testBlobSeek},
		{"BlobExpiry", testBlobExpiry},
		{"BlobReaderIsolation", testBlobReaderIsolation},
		{"BlobLarge", testBlobLarge},
		{"Persistence", testPersistence},
		{"Close", testClose},
		{"CloseUnderLoad", testCloseUnderLoad},
	}
	for _, tc := range tests {
		if tc.name == "Persistence" && h.Reopen == nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// Clock is a settable clock for the store under test.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at a fixed start time.
func NewClock() *Clock {
	return &Clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// open makes a store with a fresh clock and closes it at the end of the test.
func open(t *testing.T, h Harness) (store.Store, *Clock) {
	t.Helper()
	c := NewClock()
	s := h.Open(t, c.Now)
	t.Cleanup(func() { s.Close() })
	return s, c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// wantErr fails unless err matches target (nil target: err must be nil).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	switch {
	case target == nil && err != nil:
		t.Fatalf("%s: unexpected error %v", what, err)
	case target != nil && !errors.Is(err, target):
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}
