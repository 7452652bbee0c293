package translog

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Storage persists the log's entries. The server supplies a durable
// implementation; MemoryStorage is the in-memory one for tests and tools.
// Implementations must be safe for concurrent use.
type Storage interface {
	// Append durably stores entries at indexes start, start+1, and so on.
	// start must equal the number of entries already stored; an
	// implementation must refuse any other start (ErrStorageIndex guards
	// against two writers). The batch is stored entirely or not at all.
	// Append must not retain the entries slices after it returns.
	Append(ctx context.Context, start uint64, entries [][]byte) error

	// Load calls fn for every stored entry with start <= index < end, in
	// index order. An end beyond the stored entries is not an error; Load
	// simply stops at the last one. An error returned by fn stops Load and
	// is returned unchanged. fn must not retain the entry slice after it
	// returns.
	Load(ctx context.Context, start, end uint64, fn func(index uint64, entry []byte) error) error
}

// ErrStorageIndex is returned by a Storage whose Append is called with a
// start index other than its current number of entries.
var ErrStorageIndex = errors.New("translog: storage append at wrong index")

// MemoryStorage is a Storage that keeps entries in memory. The zero value is
// an empty store ready to use.
type MemoryStorage struct {
	mu      sync.RWMutex
	entries [][]byte
}

// Append implements Storage.
func (s *MemoryStorage) Append(ctx context.Context, start uint64, entries [][]byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("appending to memory storage: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if start != uint64(len(s.entries)) {
		return fmt.Errorf("appending to memory storage at %d with %d entries: %w", start, len(s.entries), ErrStorageIndex)
	}
	for _, e := range entries {
		s.entries = append(s.entries, append([]byte(nil), e...))
	}
	return nil
}

// Load implements Storage.
func (s *MemoryStorage) Load(ctx context.Context, start, end uint64, fn func(index uint64, entry []byte) error) error {
	s.mu.RLock()
	n := uint64(len(s.entries))
	s.mu.RUnlock()
	end = min(end, n)
	for i := start; i < end; i++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("loading from memory storage: %w", err)
		}
		s.mu.RLock()
		e := s.entries[i]
		s.mu.RUnlock()
		if err := fn(i, e); err != nil {
			return err
		}
	}
	return nil
}

// Len returns the number of stored entries.
func (s *MemoryStorage) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.entries)
}
