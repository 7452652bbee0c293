package server

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudflare/circl/group"

	"anom/escrow"
)

// Record proofs. Before it countersigns a record the server checks its
// proof π (escrow.VerifyRecordProof): without it, a device could send a
// record that carries the R of someone else's record under its own
// metadata, and a warrant for that device would open the other message.
// The records of a batch whose proofs hold are then countersigned together,
// under one signature over the root of a hash tree of them
// (escrow.CountersignBatch), which costs a fraction of a signature a record;
// each record still carries what a verifier needs to check it alone.
//
// Concurrent sends verify their proofs together, in the way of a grouped
// commit: a send queues its record; up to half of GOMAXPROCS sends (at
// least one) at a time lead, each taking what is queued (up to
// maxProofBatch records) and verifying it with escrow.VerifyRecordProofs,
// until its own record is done; then it hands the lead to a waiting send.
// Alone, a send verifies its own record as before; under load, many records
// share one multi-scalar multiplication, which costs a fraction of a single
// check per record (BenchmarkRecordProofs). Leaders take at most half the
// processors so that the other sends keep running up to the queue while
// they verify: with a leader on every processor the queue stays empty and
// every batch holds one record. A failed batch is checked record by record,
// so only the bad records are refused.
//
// On a busy server the sends reach the queue one at a time, each after its
// own signature check, so a leader that takes what is queued mostly finds
// one or two records: the single checks cost about 82 µs a record, a batch
// of 8 about 48, of 32 about 30 (escrow's BenchmarkVerifyRecordProofs), and
// a batch is countersigned under one signature (about 30 µs) whatever its
// size. So once sends overlap (the last batch held more than one record,
// or more came while it ran), a leader that finds fewer than gatherTarget
// records waits up to gatherWait for more before it verifies. A lone send
// never waits; under load, an escrowed send may wait up to gatherWait
// (anom bench --escrow, 2,400 devices in 60 groups: 32 records and 4 ms
// gave 2-3% more messages a second than 8 and 1 ms).

// maxProofBatch bounds the records one leader verifies at once, and so the
// wait of a send queued behind a batch (about 30 µs of CPU a record).
const maxProofBatch = 128

// gatherTarget is the batch a leader waits for, at most gatherWait, when
// sends overlap.
const (
	gatherTarget = 32
	gatherWait   = 4 * time.Millisecond
)

type proofBatcher struct {
	key        group.Element
	rand       io.Reader
	maxLeaders int

	mu      sync.Mutex
	pending []*proofJob
	leaders int
	// overlap: the last batch held more than one record, or more were
	// queued when it ended.
	overlap bool
	// gathered, while a leader waits for a fuller batch, is closed when
	// gatherTarget records are queued.
	gathered chan struct{}
	wait     time.Duration // gatherWait; tests set more

	// sign, if set, countersigns the records of a batch whose proofs hold,
	// together (escrow.CountersignBatch): one signature a batch.
	sign func([]*escrow.SignedRecord) ([]*escrow.ServerRecord, error)

	batches, records, waits atomic.Uint64 // batches verified, records in them, waits for a fuller batch
}

type proofJob struct {
	signed  *escrow.SignedRecord
	sr      *escrow.ServerRecord // countersigned, when the proof holds and the batcher signs
	err     error
	done    chan struct{} // closed once err is set
	lead    chan struct{} // closed when this job's sender is to lead
	leading bool          // under mu: the lead was handed to it
}

func newProofBatcher(key group.Element, rand io.Reader) *proofBatcher {
	return &proofBatcher{key: key, rand: rand, maxLeaders: max(1, runtime.GOMAXPROCS(0)/2), wait: gatherWait}
}

// check verifies the proof of signed's record, with whatever other sends
// are checking at the same time, and returns the record countersigned
// with theirs (nil if the batcher does not sign). The error matches
// escrow.ErrRecordProof if the proof fails.
func (b *proofBatcher) check(signed *escrow.SignedRecord) (*escrow.ServerRecord, error) {
	j := &proofJob{signed: signed, done: make(chan struct{}), lead: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, j)
	if b.gathered != nil && len(b.pending) >= gatherTarget {
		close(b.gathered)
		b.gathered = nil
	}
	if b.leaders < b.maxLeaders {
		b.leaders++
		j.leading = true
		b.mu.Unlock()
		b.leadUntilDone(j)
		return j.sr, j.err
	}
	b.mu.Unlock()
	select {
	case <-j.done:
	case <-j.lead:
		b.leadUntilDone(j)
	}
	return j.sr, j.err
}

// leadUntilDone verifies queued batches until j is done, then hands the
// lead to a queued job that has none, or gives it up.
func (b *proofBatcher) leadUntilDone(j *proofJob) {
	for {
		b.mu.Lock()
		if b.overlap && b.gathered == nil && len(b.pending) > 0 && len(b.pending) < gatherTarget {
			ch := make(chan struct{})
			b.gathered = ch
			b.mu.Unlock()
			b.waits.Add(1)
			t := time.NewTimer(b.wait)
			select {
			case <-ch:
			case <-t.C:
			}
			t.Stop()
			b.mu.Lock()
			if b.gathered == ch {
				b.gathered = nil
			}
		}
		n := min(len(b.pending), maxProofBatch)
		batch := b.pending[:n:n]
		b.pending = append([]*proofJob(nil), b.pending[n:]...)
		b.mu.Unlock()
		if n == 0 {
			<-j.done // j is in another leader's batch
		} else {
			b.run(batch)
			b.mu.Lock()
			b.overlap = n > 1 || len(b.pending) > 0
			b.mu.Unlock()
		}
		select {
		case <-j.done:
		default:
			continue
		}
		b.mu.Lock()
		handed := false
		for _, next := range b.pending {
			if !next.leading {
				next.leading = true
				close(next.lead)
				handed = true
				break
			}
		}
		if !handed {
			b.leaders--
		}
		b.mu.Unlock()
		return
	}
}

// run verifies one batch, countersigns the records whose proofs hold (if
// the batcher signs) and sets every job's result.
func (b *proofBatcher) run(batch []*proofJob) {
	b.batches.Add(1)
	b.records.Add(uint64(len(batch)))
	recs := make([]*escrow.Record, len(batch))
	for i, j := range batch {
		recs[i] = j.signed.Record
	}
	err := escrow.VerifyRecordProofs(b.rand, b.key, recs)
	var pe *escrow.RecordProofsError
	switch {
	case err == nil:
	case errors.As(err, &pe):
		for _, re := range pe.Failed {
			batch[re.Index].err = fmt.Errorf("verifying record proof: %w", re.Err)
		}
	default:
		for _, j := range batch {
			j.err = err
		}
	}
	if b.sign != nil {
		b.countersign(batch)
	}
	for _, j := range batch {
		close(j.done)
	}
}

// countersign countersigns the jobs' records that passed, under one
// signature.
func (b *proofBatcher) countersign(batch []*proofJob) {
	var ok []*proofJob
	var signed []*escrow.SignedRecord
	for _, j := range batch {
		if j.err == nil {
			ok = append(ok, j)
			signed = append(signed, j.signed)
		}
	}
	if len(ok) == 0 {
		return
	}
	srs, err := b.sign(signed)
	for i, j := range ok {
		if err != nil {
			j.err = err
		} else {
			j.sr = srs[i]
		}
	}
}
