package server

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"anom/escrow"
	"anom/internal/escrowtest"
)

// proofRecords seals n records of one device; every bad-th one (from the
// first) carries the proof of the next record instead of its own.
func proofRecords(t testing.TB, n, bad int) (*escrowtest.Network, []*escrow.Record, map[int]bool) {
	t.Helper()
	net := escrowtest.New(t, 5, 2, 3)
	dev := net.Device(t, "alice")
	var recs []*escrow.Record
	for i := range n + 1 {
		rec, err := net.Seal(dev, []byte("group"), time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), []byte(fmt.Sprint("message ", i)))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	wantBad := map[int]bool{}
	for i := 0; bad > 0 && i < n; i += bad {
		c := *recs[i]
		c.Proof = recs[i+1].Proof
		recs[i] = &c
		wantBad[i] = true
	}
	return net, recs[:n], wantBad
}

// TestProofBatcherGroups: records queued while the lead is taken are
// verified together in one batch when it is free, and each sender gets its
// own record's result.
func TestProofBatcherGroups(t *testing.T) {
	net, recs, bad := proofRecords(t, 40, 7)
	b := newProofBatcher(net.Policy.Policy.EscrowKey, rand.Reader)
	b.maxLeaders = 1
	b.leaders = 1 // the test holds the lead while the senders queue
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	for i, rec := range recs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = b.verify(rec) }()
	}
	waitQueued(t, b, len(recs))
	// The test's own record goes last and the test leads: one batch.
	own := &proofJob{signed: &escrow.SignedRecord{Record: recs[1]}, done: make(chan struct{}), lead: make(chan struct{}), leading: true}
	b.mu.Lock()
	b.pending = append(b.pending, own)
	b.mu.Unlock()
	b.leadUntilDone(own)
	wg.Wait()
	if own.err != nil || b.leaders != 0 || len(b.pending) != 0 {
		t.Fatalf("after the batch: own %v, %d leaders, %d pending", own.err, b.leaders, len(b.pending))
	}
	for i, err := range errs {
		if bad[i] != errors.Is(err, escrow.ErrRecordProof) || (!bad[i] && err != nil) {
			t.Errorf("record %d (bad %v): %v", i, bad[i], err)
		}
	}
}

// TestProofBatcherConcurrent: many senders at once, some with bad proofs,
// each get their own result; the lead is always given back.
func TestProofBatcherConcurrent(t *testing.T) {
	net, recs, bad := proofRecords(t, 120, 11)
	b := newProofBatcher(net.Policy.Policy.EscrowKey, rand.Reader)
	b.maxLeaders = 2
	for round := range 3 {
		errs := make([]error, len(recs))
		var wg sync.WaitGroup
		for i, rec := range recs {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = b.verify(rec) }()
		}
		wg.Wait()
		for i, err := range errs {
			if bad[i] != errors.Is(err, escrow.ErrRecordProof) || (!bad[i] && err != nil) {
				t.Fatalf("round %d record %d (bad %v): %v", round, i, bad[i], err)
			}
		}
		b.mu.Lock()
		leaders, pending := b.leaders, len(b.pending)
		b.mu.Unlock()
		if leaders != 0 || pending != 0 {
			t.Fatalf("round %d: %d leaders, %d pending after every sender returned", round, leaders, pending)
		}
	}
}

// BenchmarkRecordProofs is the server's check of record proofs from 64
// concurrent senders: "single" verifies each record alone
// (escrow.VerifyRecordProof), "batched" through the server's batcher. It
// reports CPU time per record (the process's, so other processes on the
// machine do not count) beside wall time.
func BenchmarkRecordProofs(b *testing.B) {
	net, recs, _ := proofRecords(b, 512, 0)
	key := net.Policy.Policy.EscrowKey
	const senders = 64
	run := func(b *testing.B, verify func(*escrow.Record) error) {
		b.ReportAllocs()
		cpu0 := cpuTime()
		b.ResetTimer()
		var wg sync.WaitGroup
		per := (b.N + senders - 1) / senders
		for s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range per {
					if err := verify(recs[(s*per+i)%len(recs)]); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		n := float64(per * senders)
		b.ReportMetric(float64(cpuTime()-cpu0)/1e3/n, "cpu-µs/record")
		b.ReportMetric(b.Elapsed().Seconds()*1e6/n, "µs/record")
	}
	b.Run("single", func(b *testing.B) {
		run(b, func(r *escrow.Record) error { return escrow.VerifyRecordProof(key, r) })
	})
	b.Run("batched", func(b *testing.B) {
		pb := newProofBatcher(key, rand.Reader)
		run(b, pb.verify)
	})
}

// TestProofBatcherGathers: once sends overlap, a leader that finds fewer
// than gatherTarget records waits for more and verifies them as one
// batch; a lone send does not wait.
func TestProofBatcherGathers(t *testing.T) {
	net, recs, bad := proofRecords(t, gatherTarget+1, 3)
	b := newProofBatcher(net.Policy.Policy.EscrowKey, rand.Reader)
	b.wait = time.Hour // only a full batch ends the wait

	if err := b.verify(recs[0]); bad[0] != (err != nil) {
		t.Fatalf("lone record (bad %v): %v", bad[0], err)
	}
	if b.waits.Load() != 0 || b.batches.Load() != 1 {
		t.Fatalf("a lone send: %d waits, %d batches", b.waits.Load(), b.batches.Load())
	}

	b.mu.Lock()
	b.overlap = true
	b.mu.Unlock()
	errs := make([]error, gatherTarget)
	var wg sync.WaitGroup
	send := func(i int) {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = b.verify(recs[1+i]) }()
	}
	// The first send leads and waits for a fuller batch; the others come
	// while it waits.
	send(0)
	for deadline := time.Now().Add(10 * time.Second); ; {
		b.mu.Lock()
		waiting := b.gathered != nil
		b.mu.Unlock()
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("with sends overlapping, the leader did not wait for a fuller batch")
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < gatherTarget; i++ {
		send(i)
	}
	wg.Wait()
	for i, err := range errs {
		if bad[1+i] != errors.Is(err, escrow.ErrRecordProof) || (!bad[1+i] && err != nil) {
			t.Errorf("record %d (bad %v): %v", 1+i, bad[1+i], err)
		}
	}
	if b.waits.Load() != 1 || b.batches.Load() != 2 || b.records.Load() != 1+gatherTarget {
		t.Fatalf("overlapping sends: %d waits, %d batches of %d records in all; want 1 wait and one batch of %d", b.waits.Load(), b.batches.Load(), b.records.Load(), gatherTarget)
	}
}

// verify checks rec's proof through the batcher (which signs nothing in
// these tests).
func (b *proofBatcher) verify(rec *escrow.Record) error {
	_, err := b.check(&escrow.SignedRecord{Record: rec})
	return err
}

// TestProofBatcherCountersigns: the records of one batch whose proofs hold
// are countersigned together, under one signature, with consecutive
// sequence numbers, and each verifies alone; a record whose proof fails
// gets no countersignature and no place in the batch.
func TestProofBatcherCountersigns(t *testing.T) {
	net, recs, bad := proofRecords(t, 12, 5)
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	b := newProofBatcher(net.Policy.Policy.EscrowKey, rand.Reader)
	var signs []int
	b.sign = func(signed []*escrow.SignedRecord) ([]*escrow.ServerRecord, error) {
		signs = append(signs, len(signed))
		return escrow.CountersignBatch(signed, []byte("srv"), time.Now(), 100, key)
	}
	b.maxLeaders = 1
	b.leaders = 1 // the test holds the lead while the senders queue
	srs := make([]*escrow.ServerRecord, len(recs))
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	for i, rec := range recs {
		wg.Add(1)
		signed, err := escrow.SignRecord(rec, key)
		if err != nil {
			t.Fatal(err)
		}
		go func() { defer wg.Done(); srs[i], errs[i] = b.check(signed) }()
	}
	waitQueued(t, b, len(recs))
	b.mu.Lock()
	b.leaders = 0
	b.mu.Unlock()
	own, err := escrow.SignRecord(recs[1], key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.check(own); err != nil { // leads the queued batch
		t.Fatal(err)
	}
	wg.Wait()
	good := len(recs) - len(bad) + 1 // and the test's own
	if len(signs) != 1 || signs[0] != good {
		t.Fatalf("countersigned batches of %v records; want one of the %d good ones", signs, good)
	}
	pub := key.Public().(ed25519.PublicKey)
	var sig []byte
	for i, sr := range srs {
		if bad[i] {
			if sr != nil || !errors.Is(errs[i], escrow.ErrRecordProof) {
				t.Fatalf("bad record %d: countersigned %v, err %v", i, sr != nil, errs[i])
			}
			continue
		}
		if errs[i] != nil || sr == nil {
			t.Fatalf("record %d: %v", i, errs[i])
		}
		if err := sr.Verify(pub); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if sig == nil {
			sig = sr.Signature
		}
		if sr.Batch.Size != uint32(good) || !bytes.Equal(sr.Signature, sig) || sr.Sequence != 100+uint64(sr.Batch.Index) {
			t.Fatalf("record %d: place %d of %d, sequence %d, one signature %v", i, sr.Batch.Index, sr.Batch.Size, sr.Sequence, bytes.Equal(sr.Signature, sig))
		}
	}
}

// waitQueued waits until n sends are queued in b.
func waitQueued(t *testing.T, b *proofBatcher, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		queued := len(b.pending)
		b.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d senders queued", queued, n)
		}
	}
}
