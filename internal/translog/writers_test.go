package translog

import (
	"context"
	"sync"
	"testing"
)

// TestTwoWritersOneStorage: two Logs over one storage (two servers of a
// cluster) append concurrently. Every append lands at its own index, each
// Log catches up with the other's entries, and their tree heads are
// prefixes of one log: the consistency proof between them verifies.
func TestTwoWritersOneStorage(t *testing.T) {
	ctx := context.Background()
	var st MemoryStorage
	a, b := openTestLog(t, &st), openTestLog(t, &st)
	const per = 50
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for w, l := range []*Log{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				idx, err := l.Append(ctx, testEntry(w*per+i))
				if err != nil {
					t.Errorf("writer %d append %d: %v", w, i, err)
					return
				}
				mu.Lock()
				if seen[idx] {
					t.Errorf("index %d handed out twice", idx)
				}
				seen[idx] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if st.Len() != 2*per {
		t.Fatalf("storage holds %d entries, want %d", st.Len(), 2*per)
	}
	small := a.Head()
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ha, hb := a.Head(), b.Head()
	if ha != hb || ha.Size != 2*per {
		t.Fatalf("heads differ after sync: %d %x / %d %x", ha.Size, ha.Root, hb.Size, hb.Root)
	}
	p, err := b.ConsistencyProof(small.Size, hb.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(small.Root, hb.Root); err != nil {
		t.Fatalf("the head one writer had is not a prefix of the other's: %v", err)
	}
}
