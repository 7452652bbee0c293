package translog

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

// fixedClock is an injected clock that advances by a millisecond per call.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fixedClock { return &fixedClock{t: time.UnixMilli(1_790_000_000_000)} }

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func testEntry(i int) Entry {
	return Entry{Kind: Kind(1 + i%4), Timestamp: uint64(1000 + i), Payload: fmt.Appendf(nil, "payload %d", i)}
}

func openTestLog(t testing.TB, s Storage) *Log {
	t.Helper()
	l, err := Open(context.Background(), Config{Storage: s, Signer: testKey(t, 1), Now: newClock().Now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func encodedEntries(t testing.TB, es []Entry) [][]byte {
	t.Helper()
	var out [][]byte
	for _, e := range es {
		b, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestLogAppendAndProofs(t *testing.T) {
	ctx := context.Background()
	store := &MemoryStorage{}
	l := openTestLog(t, store)
	if h := l.Head(); h.Size != 0 || h.Root != EmptyRoot {
		t.Fatalf("empty log head = %+v", h)
	}
	var es []Entry
	for i := range 37 {
		e := testEntry(i)
		idx, err := l.Append(ctx, e)
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		if idx != uint64(i) {
			t.Fatalf("Append returned index %d, want %d", idx, i)
		}
		es = append(es, e)
		raw := encodedEntries(t, es)
		if got, want := l.Head().Root, naiveMTH(raw); got != want {
			t.Fatalf("root after %d appends = %s, want %s", i+1, got, want)
		}
	}
	raw := encodedEntries(t, es)
	for n := uint64(0); n <= 37; n++ {
		root, err := l.RootAt(n)
		if err != nil || root != naiveMTH(raw[:n]) {
			t.Fatalf("RootAt(%d) = %s, %v", n, root, err)
		}
		for m := uint64(0); m < n; m++ {
			p, err := l.InclusionProof(m, n)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", m, n, err)
			}
			if err := p.Verify(HashLeaf(raw[m]), root); err != nil {
				t.Fatalf("verifying InclusionProof(%d, %d): %v", m, n, err)
			}
		}
		for m := uint64(0); m <= n; m++ {
			p, err := l.ConsistencyProof(m, n)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", m, n, err)
			}
			if err := p.Verify(naiveMTH(raw[:m]), root); err != nil {
				t.Fatalf("verifying ConsistencyProof(%d, %d): %v", m, n, err)
			}
		}
		f, err := l.Frontier(n)
		if err != nil || foldFrontier(f) != root {
			t.Fatalf("Frontier(%d) does not fold to the root: %v", n, err)
		}
	}
	got, err := l.Entries(ctx, 5, 9)
	if err != nil || !slices.EqualFunc(got, raw[5:9], slices.Equal) {
		t.Fatalf("Entries(5, 9) = %q, %v", got, err)
	}
	if h, err := l.LeafHash(36); err != nil || h != HashLeaf(raw[36]) {
		t.Fatalf("LeafHash(36) = %s, %v", h, err)
	}

	// Reopen from storage: the same tree.
	l2 := openTestLog(t, store)
	if l2.Head() != l.Head() {
		t.Fatalf("reopened head %+v, want %+v", l2.Head(), l.Head())
	}
}

func TestLogOutOfRange(t *testing.T) {
	ctx := context.Background()
	l := openTestLog(t, &MemoryStorage{})
	for i := range 5 {
		if _, err := l.Append(ctx, testEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	errs := map[string]error{}
	_, errs["root beyond"] = l.RootAt(6)
	_, errs["inclusion index = size"] = l.InclusionProof(3, 3)
	_, errs["inclusion size beyond"] = l.InclusionProof(0, 6)
	_, errs["consistency reversed"] = l.ConsistencyProof(4, 3)
	_, errs["consistency beyond"] = l.ConsistencyProof(1, 6)
	_, errs["frontier beyond"] = l.Frontier(6)
	_, errs["leaf beyond"] = l.LeafHash(5)
	_, errs["entries beyond"] = l.Entries(ctx, 0, 6)
	_, errs["entries reversed"] = l.Entries(ctx, 3, 2)
	for name, err := range errs {
		if !errors.Is(err, ErrOutOfRange) {
			t.Errorf("%s: got %v, want ErrOutOfRange", name, err)
		}
	}
}

func TestLogTimestampsFromClock(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	store := &MemoryStorage{}
	l, err := Open(ctx, Config{Storage: store, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, Entry{Kind: KindEscrowPolicy, Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, Entry{Kind: KindEscrowPolicy, Timestamp: 42, Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	raw, err := l.Entries(ctx, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	e0, _ := DecodeEntry(raw[0])
	e1, _ := DecodeEntry(raw[1])
	if e0.Timestamp != uint64(time.UnixMilli(1_790_000_000_001).UnixMilli()) || e1.Timestamp != 42 {
		t.Fatalf("timestamps %d, %d", e0.Timestamp, e1.Timestamp)
	}
	if _, err := l.SignedTreeHead(); !errors.Is(err, ErrNoSigner) {
		t.Fatalf("SignedTreeHead without signer: %v", err)
	}
}

func TestLogSignedTreeHead(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	key := testKey(t, 9)
	l, err := Open(ctx, Config{Storage: &MemoryStorage{}, Signer: key, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := l.Append(ctx, testEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	sth, err := l.SignedTreeHead()
	if err != nil {
		t.Fatal(err)
	}
	if err := sth.Verify(key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	if sth.Size != 10 || sth.Root != l.Head().Root {
		t.Fatalf("head %+v", sth.TreeHead)
	}
	// Clock was called once per Append and once for the head.
	if want := uint64(1_790_000_000_011); sth.Timestamp != want {
		t.Fatalf("timestamp %d, want %d", sth.Timestamp, want)
	}
}

func TestAppendBatchAllOrNothing(t *testing.T) {
	ctx := context.Background()
	store := &MemoryStorage{}
	l := openTestLog(t, store)
	batch := []Entry{testEntry(0), {Kind: 99, Payload: []byte("x")}, testEntry(2)}
	if _, err := l.AppendBatch(ctx, batch); !errors.Is(err, ErrEntryKind) {
		t.Fatalf("bad batch: %v", err)
	}
	if l.Size() != 0 || store.Len() != 0 {
		t.Fatalf("bad batch left %d entries (%d stored)", l.Size(), store.Len())
	}
	if _, err := l.AppendBatch(ctx, nil); err == nil {
		t.Fatal("empty batch accepted")
	}
	first, err := l.AppendBatch(ctx, []Entry{testEntry(0), testEntry(1), testEntry(2)})
	if err != nil || first != 0 || l.Size() != 3 {
		t.Fatalf("AppendBatch: %d, %v, size %d", first, err, l.Size())
	}
	first, err = l.AppendBatch(ctx, []Entry{testEntry(3), testEntry(4)})
	if err != nil || first != 3 {
		t.Fatalf("second AppendBatch: %d, %v", first, err)
	}
}

// failingStorage fails appends on demand and can serve corrupt loads.
type failingStorage struct {
	MemoryStorage
	failAppend error
	loadHook   func(index uint64, entry []byte) (uint64, []byte)
}

func (s *failingStorage) Append(ctx context.Context, start uint64, entries [][]byte) error {
	if s.failAppend != nil {
		return s.failAppend
	}
	return s.MemoryStorage.Append(ctx, start, entries)
}

func (s *failingStorage) Load(ctx context.Context, start, end uint64, fn func(uint64, []byte) error) error {
	return s.MemoryStorage.Load(ctx, start, end, func(i uint64, e []byte) error {
		if s.loadHook != nil {
			i, e = s.loadHook(i, e)
		}
		return fn(i, e)
	})
}

func TestLogStorageFailure(t *testing.T) {
	ctx := context.Background()
	store := &failingStorage{}
	l := openTestLog(t, store)
	if _, err := l.Append(ctx, testEntry(0)); err != nil {
		t.Fatal(err)
	}
	before := l.Head()
	errDisk := errors.New("disk full")
	store.failAppend = errDisk
	if _, err := l.Append(ctx, testEntry(1)); !errors.Is(err, errDisk) {
		t.Fatalf("got %v, want disk error", err)
	}
	if l.Head() != before {
		t.Fatal("failed append changed the tree")
	}
	store.failAppend = nil
	if idx, err := l.Append(ctx, testEntry(1)); err != nil || idx != 1 {
		t.Fatalf("append after failure: %d, %v", idx, err)
	}

	// A second writer on the same storage is refused by the index check
	// at the stale index; it catches up and appends after the entries
	// the first wrote meanwhile, and both end with the same tree.
	other := openTestLog(t, store)
	if _, err := l.Append(ctx, testEntry(2)); err != nil {
		t.Fatal(err)
	}
	if idx, err := other.Append(ctx, testEntry(9)); err != nil || idx != 3 {
		t.Fatalf("stale writer: index %d, %v; want 3", idx, err)
	}
	if _, err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if l.Head() != other.Head() {
		t.Fatal("the two writers' trees differ after catching up")
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Append(cancelled, testEntry(3)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled append: %v", err)
	}
}

func TestOpenCorruptStorage(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		hook func(uint64, []byte) (uint64, []byte)
	}{
		{"bad entry", func(i uint64, e []byte) (uint64, []byte) {
			if i == 2 {
				return i, e[:len(e)-1]
			}
			return i, e
		}},
		{"gap", func(i uint64, e []byte) (uint64, []byte) {
			if i >= 2 {
				return i + 1, e
			}
			return i, e
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &failingStorage{}
			l := openTestLog(t, store)
			for i := range 4 {
				if _, err := l.Append(ctx, testEntry(i)); err != nil {
					t.Fatal(err)
				}
			}
			store.loadHook = tt.hook
			if _, err := Open(ctx, Config{Storage: store}); !errors.Is(err, ErrCorruptStorage) {
				t.Fatalf("Open: got %v, want ErrCorruptStorage", err)
			}
			if _, err := l.Entries(ctx, 0, 4); tt.name == "gap" && !errors.Is(err, ErrCorruptStorage) {
				t.Fatalf("Entries: got %v, want ErrCorruptStorage", err)
			}
		})
	}
	if _, err := Open(ctx, Config{}); err == nil {
		t.Fatal("Open without storage succeeded")
	}
}

// TestLogConcurrent appends from many goroutines while others read proofs;
// run with -race.
func TestLogConcurrent(t *testing.T) {
	ctx := context.Background()
	l := openTestLog(t, &MemoryStorage{})
	const writers, perWriter = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				if _, err := l.Append(ctx, testEntry(w*perWriter+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				h := l.Head()
				if h.Size == 0 {
					continue
				}
				p, err := l.InclusionProof(h.Size/2, h.Size)
				if err != nil {
					t.Error(err)
					return
				}
				leaf, _ := l.LeafHash(h.Size / 2)
				if err := p.Verify(leaf, h.Root); err != nil {
					t.Errorf("proof at size %d: %v", h.Size, err)
					return
				}
				if _, err := l.SignedTreeHead(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	if l.Size() != writers*perWriter {
		t.Fatalf("size %d, want %d", l.Size(), writers*perWriter)
	}
	raw, err := l.Entries(ctx, 0, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	if MerkleTreeHash(raw) != l.Head().Root {
		t.Fatal("root does not match stored entries")
	}
	seen := map[string]bool{}
	for _, r := range raw {
		seen[string(r)] = true
	}
	if len(seen) != writers*perWriter {
		t.Fatalf("%d distinct entries, want %d", len(seen), writers*perWriter)
	}
}

func TestMemoryStorageLoadBounds(t *testing.T) {
	ctx := context.Background()
	s := &MemoryStorage{}
	if err := s.Append(ctx, 0, [][]byte{[]byte("a"), []byte("b"), []byte("c")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, 5, [][]byte{[]byte("d")}); !errors.Is(err, ErrStorageIndex) {
		t.Fatalf("append at gap: %v", err)
	}
	var got []string
	if err := s.Load(ctx, 1, math.MaxUint64, func(i uint64, e []byte) error {
		got = append(got, fmt.Sprint(i, string(e)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"1b", "2c"}) {
		t.Fatalf("Load = %q", got)
	}
	stop := errors.New("stop")
	if err := s.Load(ctx, 0, 3, func(uint64, []byte) error { return stop }); err != stop {
		t.Fatalf("Load did not return fn's error: %v", err)
	}
}
