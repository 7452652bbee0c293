package pebble

import (
	"testing"
	"time"

	"anom/internal/store"
	"anom/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	type opened struct {
		dir string
		now func() time.Time
	}
	dirs := map[store.Store]opened{}
	openAt := func(t *testing.T, dir string, now func() time.Time) store.Store {
		s, err := Open(dir, Options{Now: now})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		dirs[s] = opened{dir, now}
		return s
	}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T, now func() time.Time) store.Store {
			return openAt(t, t.TempDir(), now)
		},
		Reopen: func(t *testing.T, s store.Store) store.Store {
			o := dirs[s]
			if err := s.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			return openAt(t, o.dir, o.now)
		},
	})
}

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T, now func() time.Time) store.Store {
			s, err := Open("", Options{Now: now, InMemory: true})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			return s
		},
		// No Reopen: an in-memory store does not persist.
	})
}
