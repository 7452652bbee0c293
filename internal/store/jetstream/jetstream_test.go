package jetstream

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"anom/internal/natstest"
	"anom/internal/store"
	"anom/internal/store/storetest"
)

var (
	clusterOnce sync.Once
	shared      *natstest.Cluster
	prefixes    atomic.Int64
)

// cluster returns the three-node cluster shared by the package's tests
// that do not stop nodes.
func cluster(t *testing.T) *natstest.Cluster {
	clusterOnce.Do(func() { shared = natstest.Start(sharedTB{t}, 3) })
	return shared
}

// sharedTB keeps the shared cluster alive after the first test that
// started it ends (it is stopped when the test binary exits).
type sharedTB struct{ *testing.T }

func (s sharedTB) Cleanup(func()) {}

func (s sharedTB) TempDir() string {
	dir, err := tempDir()
	if err != nil {
		s.T.Fatal(err)
	}
	return dir
}

func openStore(t *testing.T, c *natstest.Cluster, prefix string, now func() time.Time) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{URLs: c.URLs(), Prefix: prefix, Now: now})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	c := cluster(t)
	type opened struct {
		prefix string
		now    func() time.Time
	}
	var mu sync.Mutex
	stores := map[store.Store]opened{}
	openAt := func(t *testing.T, prefix string, now func() time.Time) store.Store {
		s := openStore(t, c, prefix, now)
		mu.Lock()
		stores[s] = opened{prefix, now}
		mu.Unlock()
		return s
	}
	start := time.Now()
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T, now func() time.Time) store.Store {
			return openAt(t, fmt.Sprintf("t%d", prefixes.Add(1)), now)
		},
		Reopen: func(t *testing.T, s store.Store) store.Store {
			mu.Lock()
			o := stores[s]
			mu.Unlock()
			if err := s.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			return openAt(t, o.prefix, o.now)
		},
	})
	t.Logf("conformance suite on a 3-node R3 cluster: %v", time.Since(start))
}
