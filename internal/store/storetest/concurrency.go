package storetest

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"anom/internal/store"
)

// testKVConcurrentCAS: read-modify-write increments with Update never lose
// an increment.
func testKVConcurrentCAS(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	must[uint64](t, "create")(s.Create(ctx, "ctr", "n", []byte("0")))
	const each = 20
	var mismatches atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, h.ConcurrentWriters)
	for w := 0; w < h.ConcurrentWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; {
				e, err := s.Get(ctx, "ctr", "n")
				if err != nil {
					errs <- err
					return
				}
				n, _ := strconv.Atoi(string(e.Value))
				_, err = s.Update(ctx, "ctr", "n", []byte(strconv.Itoa(n+1)), e.Revision)
				if errors.Is(err, store.ErrRevisionMismatch) {
					mismatches.Add(1)
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				i++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	e := must[store.Entry](t, "get")(s.Get(ctx, "ctr", "n"))
	if want := strconv.Itoa(h.ConcurrentWriters * each); string(e.Value) != want {
		t.Fatalf("counter = %s, want %s", e.Value, want)
	}
	t.Logf("%d writers x %d increments, %d revision mismatches retried", h.ConcurrentWriters, each, mismatches.Load())
}

// testCodeConsumedOnce: many devices race to activate with one code; the
// code is consumed by exactly one, whose device alone is created.
func testCodeConsumedOnce(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	for round := 0; round < 5; round++ {
		code := fmt.Sprintf("CODE%d", round)
		must[uint64](t, "create code")(s.Create(ctx, "codes", code, []byte("365d")))
		var wins atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, h.ConcurrentWriters)
		for w := 0; w < h.ConcurrentWriters; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e, err := s.Get(ctx, "codes", code)
				if errors.Is(err, store.ErrNotFound) {
					return // already consumed
				}
				if err != nil {
					errs <- err
					return
				}
				_, err = s.Txn(ctx,
					store.DeleteOp("codes", code, e.Revision),
					store.CreateOp("devices", fmt.Sprintf("r%d-dev%d", round, w), e.Value),
				)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrRevisionMismatch):
				default:
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if wins.Load() != 1 {
			t.Fatalf("round %d: code consumed %d times", round, wins.Load())
		}
		devs, _, err := s.List(ctx, "devices", store.ListOptions{Prefix: fmt.Sprintf("r%d-", round)})
		wantErr(t, "list devices", err, nil)
		if len(devs) != 1 {
			t.Fatalf("round %d: %d devices created", round, len(devs))
		}
	}
}

// testClaimFirst: every one-time key package goes to exactly one claimer.
func testClaimFirst(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	const packages = 100
	for i := 0; i < packages; i++ {
		must[uint64](t, "create")(s.Create(ctx, "kp", fmt.Sprintf("dev1/%03d", i), []byte(strconv.Itoa(i))))
	}
	must[uint64](t, "create other device")(s.Create(ctx, "kp", "dev10/000", []byte("other")))
	var mu sync.Mutex
	claimed := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, h.ConcurrentWriters)
	for w := 0; w < h.ConcurrentWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				e, err := store.ClaimFirst(ctx, s, "kp", "dev1/")
				if errors.Is(err, store.ErrNotFound) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				claimed[e.Key]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(claimed) != packages {
		t.Fatalf("%d distinct packages claimed, want %d", len(claimed), packages)
	}
	for k, n := range claimed {
		if n != 1 {
			t.Fatalf("package %s claimed %d times", k, n)
		}
	}
	must[store.Entry](t, "other device's package untouched")(s.Get(ctx, "kp", "dev10/000"))
}

// testLogConcurrentAppendIf: writers race to append at each sequence with
// AppendIf; exactly one wins each sequence and the log holds the winners.
func testLogConcurrentAppendIf(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	const seqs = 40
	winners := make([]atomic.Int64, seqs+1)
	var conflicts atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, h.ConcurrentWriters)
	for w := 0; w < h.ConcurrentWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for last < seqs {
				seq, err := s.AppendIf(ctx, "g", last, []byte(fmt.Sprintf("w%d@%d", w, last+1)))
				var ce *store.ConflictError
				switch {
				case err == nil:
					if seq != last+1 {
						errs <- fmt.Errorf("AppendIf after %d returned sequence %d", last, seq)
						return
					}
					winners[seq].Add(1)
					last = seq
				case errors.As(err, &ce) && errors.Is(err, store.ErrConflict):
					if ce.Last <= last || ce.Expected != last || ce.Log != "g" {
						errs <- fmt.Errorf("conflict %+v after %d", ce, last)
						return
					}
					conflicts.Add(1)
					last = ce.Last
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for seq := 1; seq <= seqs; seq++ {
		if n := winners[seq].Load(); n != 1 {
			t.Fatalf("sequence %d won by %d writers", seq, n)
		}
	}
	entries := must[[]store.LogEntry](t, "read")(s.Read(ctx, "g", 1, 0))
	if len(entries) != seqs {
		t.Fatalf("log has %d entries, want %d", len(entries), seqs)
	}
	for i, e := range entries {
		var w int
		var at uint64
		if _, err := fmt.Sscanf(string(e.Data), "w%d@%d", &w, &at); err != nil || at != e.Seq || e.Seq != uint64(i+1) {
			t.Fatalf("entry %d: seq %d data %q", i, e.Seq, e.Data)
		}
	}
	t.Logf("%d writers, %d sequences, %d conflicts", h.ConcurrentWriters, len(entries), conflicts.Load())
}

// testLogConcurrentAppendAllIf: writers (the servers of a cluster) race
// to append a group message with AppendAll, conditional on the group
// log's last sequence, together with an unconditional entry of a shared
// outbox. Exactly one wins each group sequence, and the outbox holds the
// winners' entries only: a losing AppendAll wrote nothing.
func testLogConcurrentAppendAllIf(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	const seqs = 30
	var wg sync.WaitGroup
	errs := make(chan error, h.ConcurrentWriters)
	for w := 0; w < h.ConcurrentWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for last < seqs {
				data := []byte(fmt.Sprintf("w%d@%d", w, last+1))
				firsts, err := s.AppendAll(ctx,
					store.Append{Log: "g", Entries: [][]byte{data}, Check: true, IfLast: last},
					store.Append{Log: "outbox", Entries: [][]byte{data}},
				)
				var ce *store.ConflictError
				switch {
				case err == nil:
					if firsts[0] != last+1 {
						errs <- fmt.Errorf("AppendAll after %d returned sequence %d", last, firsts[0])
						return
					}
					last = firsts[0]
				case errors.As(err, &ce):
					if ce.Log != "g" || ce.Last <= last {
						errs <- fmt.Errorf("conflict %+v after %d", ce, last)
						return
					}
					last = ce.Last
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	group := must[[]store.LogEntry](t, "read group")(s.Read(ctx, "g", 1, 0))
	outbox := must[[]store.LogEntry](t, "read outbox")(s.Read(ctx, "outbox", 1, 0))
	if len(group) != seqs || len(outbox) != seqs {
		t.Fatalf("group log has %d entries and outbox %d, want %d each", len(group), len(outbox), seqs)
	}
	won := map[string]bool{}
	for i, e := range group {
		if e.Seq != uint64(i+1) {
			t.Fatalf("group entry %d has sequence %d", i, e.Seq)
		}
		won[string(e.Data)] = true
	}
	for _, e := range outbox {
		if !won[string(e.Data)] {
			t.Fatalf("outbox entry %q of a losing append", e.Data)
		}
		delete(won, string(e.Data))
	}
}

// testLogConcurrentAppend: unconditional appends from many writers get
// dense, distinct sequences and nothing is lost.
func testLogConcurrentAppend(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	const each = 30
	var mu sync.Mutex
	got := map[uint64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, h.ConcurrentWriters)
	for w := 0; w < h.ConcurrentWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				data := fmt.Sprintf("w%d-%d", w, i)
				n := 1 + i%3
				batch := make([][]byte, n)
				for j := range batch {
					batch[j] = []byte(fmt.Sprintf("%s-%d", data, j))
				}
				seq, err := s.Append(ctx, "busy", batch...)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for j := range batch {
					if prev, dup := got[seq+uint64(j)]; dup {
						mu.Unlock()
						errs <- fmt.Errorf("sequence %d handed out twice (%s, %s)", seq+uint64(j), prev, batch[j])
						return
					}
					got[seq+uint64(j)] = string(batch[j])
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	info := must[store.LogInfo](t, "info")(s.Info(ctx, "busy"))
	if info.Last != uint64(len(got)) || info.First != 1 {
		t.Fatalf("info %+v, %d sequences handed out", info, len(got))
	}
	var from uint64 = 1
	for from <= info.Last {
		entries := must[[]store.LogEntry](t, "read")(s.Read(ctx, "busy", from, 50))
		if len(entries) == 0 {
			t.Fatalf("read from %d: nothing", from)
		}
		for _, e := range entries {
			if e.Seq != from || string(e.Data) != got[e.Seq] {
				t.Fatalf("entry %d = %q, want sequence %d %q", e.Seq, e.Data, from, got[from])
			}
			from++
		}
	}
}
