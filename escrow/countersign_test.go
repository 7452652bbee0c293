package escrow

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"anom/internal/translog"
)

// batchOf seals, signs and countersigns n of alice's messages in one batch.
func (f *fixture) batchOf(tb testing.TB, n int, first uint32, at time.Time) []*ServerRecord {
	tb.Helper()
	signed := make([]*SignedRecord, n)
	for i := range signed {
		rec, err := Seal(f.policy.EscrowKey, f.exporter, f.meta("dev-alice", "group-1", first+uint32(i), at), []byte(fmt.Sprintf("message %d", i)))
		if err != nil {
			tb.Fatalf("Seal: %v", err)
		}
		if signed[i], err = SignRecord(rec, f.alice); err != nil {
			tb.Fatalf("SignRecord: %v", err)
		}
	}
	f.seq += uint64(n)
	out, err := CountersignBatch(signed, []byte("srv-1"), at, f.seq, f.server)
	if err != nil {
		tb.Fatalf("CountersignBatch: %v", err)
	}
	return out
}

// reparse encodes and decodes a record, as a verifier receives it.
func reparse(tb testing.TB, sr *ServerRecord) *ServerRecord {
	tb.Helper()
	b, err := sr.MarshalBinary()
	if err != nil {
		tb.Fatalf("encoding: %v", err)
	}
	out, err := ParseServerRecord(b)
	if err != nil {
		tb.Fatalf("decoding: %v", err)
	}
	return out
}

// TestCountersignBatch: every record of a batch verifies alone and through
// a cache, which then holds the batch's one signature; sequence numbers
// follow the batch's order.
func TestCountersignBatch(t *testing.T) {
	f := newFixture(t, 2, 3)
	pub := f.server.Public().(ed25519.PublicKey)
	for _, n := range []int{1, 2, 3, 5, 8, 13} {
		batch := f.batchOf(t, n, 0, t0)
		cache := NewCountersignCache()
		for i, sr := range batch {
			sr = reparse(t, sr)
			if sr.Batch.Size != uint32(n) || sr.Batch.Index != uint32(i) || sr.Sequence != batch[0].Sequence+uint64(i) {
				t.Fatalf("n=%d record %d: place %d of %d, sequence %d", n, i, sr.Batch.Index, sr.Batch.Size, sr.Sequence)
			}
			if err := sr.Verify(pub); err != nil {
				t.Fatalf("n=%d record %d alone: %v", n, i, err)
			}
			if err := sr.VerifyCached(pub, cache); err != nil {
				t.Fatalf("n=%d record %d cached: %v", n, i, err)
			}
		}
		if len(cache.seen) != 1 {
			t.Fatalf("n=%d: cache holds %d signatures, want the batch's one", n, len(cache.seen))
		}
	}
	if _, err := CountersignBatch(nil, []byte("srv-1"), t0, 1, f.server); err == nil {
		t.Fatal("an empty batch was countersigned")
	}
}

// TestAttackCountersignTransplanted: whoever holds honest countersigned
// records (a user who received them, the server's or the archive's
// operator) cannot make a record pass under a batch signature that did not
// cover it: not by giving it another batch's signature, size and path, nor
// another record's place in its own batch, nor by editing what the server
// signed of it (time, sequence, server, the device-signed record itself).
func TestAttackCountersignTransplanted(t *testing.T) {
	f := newFixture(t, 2, 3)
	pub := f.server.Public().(ed25519.PublicKey)
	a := f.batchOf(t, 5, 0, t0)
	b := f.batchOf(t, 6, 100, t0.Add(time.Second))
	for _, sr := range append(append([]*ServerRecord{}, a...), b...) {
		if err := sr.Verify(pub); err != nil {
			t.Fatalf("honest record: %v", err)
		}
	}
	type attack struct {
		name string
		edit func(sr *ServerRecord)
	}
	attacks := []attack{
		{"another batch's signature, size and path", func(sr *ServerRecord) {
			sr.Signature, sr.Batch = b[2].Signature, &BatchPlace{Size: b[2].Batch.Size, Index: b[2].Batch.Index, Path: b[2].Batch.Path}
		}},
		{"another batch's signature and size, own path", func(sr *ServerRecord) {
			sr.Signature, sr.Batch.Size = b[0].Signature, b[0].Batch.Size
		}},
		{"another record's place in its batch", func(sr *ServerRecord) { sr.Batch.Index, sr.Batch.Path = a[3].Batch.Index, a[3].Batch.Path }},
		{"another index, own path", func(sr *ServerRecord) { sr.Batch.Index = 4 }},
		{"a larger batch size", func(sr *ServerRecord) { sr.Batch.Size = 6 }},
		{"a shorter path (a subtree root as its leaf)", func(sr *ServerRecord) { sr.Batch.Path = sr.Batch.Path[1:] }},
		{"another record's device-signed record", func(sr *ServerRecord) { sr.Signed = a[2].Signed }},
		{"a record of another batch in its place", func(sr *ServerRecord) { sr.Signed = b[1].Signed }},
		{"another server time", func(sr *ServerRecord) { sr.ServerTime = sr.ServerTime.Add(-time.Hour) }},
		{"another sequence", func(sr *ServerRecord) { sr.Sequence += 1000 }},
		{"another server id", func(sr *ServerRecord) { sr.ServerID = []byte("srv-2") }},
		{"a path hash changed", func(sr *ServerRecord) { sr.Batch.Path[0][0] ^= 1 }},
	}
	for _, at := range attacks {
		t.Run(at.name, func(t *testing.T) {
			sr := reparse(t, a[1]) // a fresh copy
			at.edit(sr)
			// As a verifier receives it, when it still encodes.
			if b, err := sr.MarshalBinary(); err == nil {
				if sr, err = ParseServerRecord(b); err != nil {
					t.Fatalf("an edited record that encodes does not decode: %v", err)
				}
			}
			if err := sr.Verify(pub); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify = %v, want ErrBadSignature", err)
			}
			if err := sr.VerifyCached(pub, cacheHolding(t, pub, a, b)); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("VerifyCached = %v, want ErrBadSignature", err)
			}
		})
	}
}

// cacheHolding is a cache that has checked every record of the batches.
func cacheHolding(tb testing.TB, pub ed25519.PublicKey, batches ...[]*ServerRecord) *CountersignCache {
	tb.Helper()
	c := NewCountersignCache()
	for _, batch := range batches {
		for _, sr := range batch {
			if err := sr.VerifyCached(pub, c); err != nil {
				tb.Fatalf("honest record: %v", err)
			}
		}
	}
	return c
}

// TestAttackCountersignDowngrade: a batch signature does not verify as the
// signature of a record countersigned alone (encoding version 1), nor the
// other way round: the two sign different messages under different
// contexts.
func TestAttackCountersignDowngrade(t *testing.T) {
	f := newFixture(t, 2, 3)
	pub := f.server.Public().(ed25519.PublicKey)
	batch := f.batchOf(t, 1, 0, t0)
	down := reparse(t, batch[0])
	down.Batch = nil
	if err := reparse(t, down).Verify(pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("batch of one as version 1: %v, want ErrBadSignature", err)
	}
	single := countersignSingle(batch[0].Signed, []byte("srv-1"), t0, 9, f.server)
	if err := single.Verify(pub); err != nil {
		t.Fatalf("version 1 record: %v", err)
	}
	up := reparse(t, single)
	up.Batch = &BatchPlace{Size: 1}
	if err := reparse(t, up).Verify(pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("version 1 signature as a batch of one: %v, want ErrBadSignature", err)
	}
}

// TestAttackCountersignCache: the cache never lets through what a
// signature check would refuse: a record with its batch's path but other
// signature bytes, a record checked under another key (a rogue server's
// batch whose root the cache holds for that key), or a record that failed
// once and is offered again.
func TestAttackCountersignCache(t *testing.T) {
	f := newFixture(t, 2, 3)
	pub := f.server.Public().(ed25519.PublicKey)
	batch := f.batchOf(t, 4, 0, t0)
	cache := cacheHolding(t, pub, batch)

	forged := reparse(t, batch[2])
	forged.Signature = bytes.Clone(forged.Signature)
	forged.Signature[10] ^= 0x40
	for range 2 {
		if err := forged.VerifyCached(pub, cache); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("other signature bytes on a cached root: %v", err)
		}
	}

	rogue := testKey("rogue server")
	rogueBatch, err := CountersignBatch([]*SignedRecord{batch[0].Signed, batch[1].Signed}, []byte("srv-1"), t0, 1, rogue)
	if err != nil {
		t.Fatal(err)
	}
	if err := rogueBatch[0].VerifyCached(rogue.Public().(ed25519.PublicKey), cache); err != nil {
		t.Fatalf("rogue record under its own key: %v", err)
	}
	if err := rogueBatch[0].VerifyCached(pub, cache); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("rogue server's record under the real key, its root cached for the rogue key: %v", err)
	}
	if err := batch[3].VerifyCached(pub, cache); err != nil {
		t.Fatalf("honest record after the attempts: %v", err)
	}
}

// TestCountersignPathBounds: a decoded place is within its batch and a
// path no longer than the largest batch's; a path of the wrong length
// decodes but does not verify.
func TestCountersignPathBounds(t *testing.T) {
	f := newFixture(t, 2, 3)
	pub := f.server.Public().(ed25519.PublicKey)
	sr := reparse(t, f.batchOf(t, 3, 0, t0)[0])
	for _, bad := range []BatchPlace{
		{Size: 0, Index: 0},
		{Size: 3, Index: 3},
		{Size: MaxCountersignBatch + 1, Index: 0},
		{Size: 3, Index: 0, Path: make([]translog.Hash, maxBatchPath+1)},
	} {
		c := *sr
		c.Batch = &bad
		if _, err := c.MarshalBinary(); err == nil {
			t.Fatalf("place %d of %d with %d hashes encoded", bad.Index, bad.Size, len(bad.Path))
		}
	}
	long := reparse(t, sr)
	long.Batch.Path = append(long.Batch.Path, translog.Hash{})
	if err := reparse(t, long).Verify(pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("path one hash too long: %v", err)
	}
}
