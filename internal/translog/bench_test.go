package translog

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"
)

// benchSize is the log size for proof benchmarks; not a power of two, so
// proofs include right-edge subtrees that are hashed on demand.
const benchSize = 1_000_000

// benchEntry is about the size of a device certificate entry.
func benchEntry(i uint64) Entry {
	p := make([]byte, 160)
	binary.BigEndian.PutUint64(p, i)
	return Entry{Kind: KindDeviceCertificate, Timestamp: 1_790_000_000_000 + i, Payload: p}
}

var (
	benchOnce  sync.Once
	benchLog   *Log
	benchStore *MemoryStorage
)

func largeLog(b *testing.B) *Log {
	benchOnce.Do(func() {
		ctx := context.Background()
		benchStore = &MemoryStorage{}
		l, err := Open(ctx, Config{Storage: benchStore, Signer: testKey(b, 1)})
		if err != nil {
			b.Fatal(err)
		}
		batch := make([]Entry, 0, 4000)
		for i := uint64(0); i < benchSize; i++ {
			batch = append(batch, benchEntry(i))
			if len(batch) == cap(batch) {
				if _, err := l.AppendBatch(ctx, batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		benchLog = l
	})
	if benchLog == nil || benchLog.Size() != benchSize {
		b.Fatal("benchmark log not built")
	}
	return benchLog
}

func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	l, err := Open(ctx, Config{Storage: &MemoryStorage{}})
	if err != nil {
		b.Fatal(err)
	}
	es := make([]Entry, 1024)
	for i := range es {
		es[i] = benchEntry(uint64(i))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := l.Append(ctx, es[i%len(es)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkAppendBatch256(b *testing.B) {
	ctx := context.Background()
	l, err := Open(ctx, Config{Storage: &MemoryStorage{}})
	if err != nil {
		b.Fatal(err)
	}
	es := make([]Entry, 256)
	for i := range es {
		es[i] = benchEntry(uint64(i))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.AppendBatch(ctx, es); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(es)), "ns/entry")
}

func BenchmarkInclusionProof1M(b *testing.B) {
	l := largeLog(b)
	rng := rand.New(rand.NewPCG(1, 1))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.InclusionProof(rng.Uint64N(benchSize), benchSize); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyInclusion1M(b *testing.B) {
	l := largeLog(b)
	root := l.Head().Root
	const n = 256
	proofs := make([]InclusionProof, n)
	leaves := make([]Hash, n)
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range proofs {
		idx := rng.Uint64N(benchSize)
		proofs[i], _ = l.InclusionProof(idx, benchSize)
		leaves[i], _ = l.LeafHash(idx)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := proofs[i%n].Verify(leaves[i%n], root); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkConsistencyProof1M(b *testing.B) {
	l := largeLog(b)
	rng := rand.New(rand.NewPCG(3, 3))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.ConsistencyProof(rng.Uint64N(benchSize-2)+1, benchSize-1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyConsistency1M(b *testing.B) {
	l := largeLog(b)
	const n = 256
	proofs := make([]ConsistencyProof, n)
	roots1 := make([]Hash, n)
	root2, _ := l.RootAt(benchSize - 1)
	rng := rand.New(rand.NewPCG(4, 4))
	for i := range proofs {
		m := rng.Uint64N(benchSize-2) + 1
		proofs[i], _ = l.ConsistencyProof(m, benchSize-1)
		roots1[i], _ = l.RootAt(m)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := proofs[i%n].Verify(roots1[i%n], root2); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkRootAt1M(b *testing.B) {
	l := largeLog(b)
	rng := rand.New(rand.NewPCG(5, 5))
	for b.Loop() {
		if _, err := l.RootAt(rng.Uint64N(benchSize) + 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignedTreeHead(b *testing.B) {
	l := largeLog(b)
	pub := testKey(b, 1).Public().(ed25519.PublicKey)
	for b.Loop() {
		sth, err := l.SignedTreeHead()
		if err != nil {
			b.Fatal(err)
		}
		_ = sth
	}
	sth, _ := l.SignedTreeHead()
	if err := sth.Verify(pub); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkOpen1M measures rebuilding the tree from a million stored
// entries, as the server does at startup.
func BenchmarkOpen1M(b *testing.B) {
	largeLog(b)
	for b.Loop() {
		l, err := Open(context.Background(), Config{Storage: benchStore})
		if err != nil {
			b.Fatal(err)
		}
		if l.Size() != benchSize {
			b.Fatal("wrong size")
		}
	}
}
