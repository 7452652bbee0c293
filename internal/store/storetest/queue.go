package storetest

import (
	"context"
	"testing"
	"time"

	"anom/internal/store"
)

func testQueue(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	q := store.Queue{Logs: s, Name: "outbox.escrow"}
	must[uint64](t, "enqueue")(q.Enqueue(ctx, []byte("r1"), []byte("r2"), []byte("r3")))
	if n := must[uint64](t, "pending")(q.Pending(ctx)); n != 3 {
		t.Fatalf("pending = %d", n)
	}
	got := must[[]store.LogEntry](t, "pull")(q.Pull(ctx, 0, 2))
	wantEntries(t, "pull", got, "1:r1", "2:r2")
	// Pipelined pull past what was pulled but not acknowledged.
	got = must[[]store.LogEntry](t, "pull after 2")(q.Pull(ctx, 2, 10))
	wantEntries(t, "pull after 2", got, "3:r3")
	// Without acknowledgement, a restarted consumer gets everything again.
	got = must[[]store.LogEntry](t, "pull again")(q.Pull(ctx, 0, 10))
	wantEntries(t, "pull again", got, "1:r1", "2:r2", "3:r3")
	wantErr(t, "ack", q.Ack(ctx, 2), nil)
	wantErr(t, "ack older again", q.Ack(ctx, 1), nil)
	if n := must[uint64](t, "pending")(q.Pending(ctx)); n != 1 {
		t.Fatalf("pending after ack = %d", n)
	}
	if info := must[store.LogInfo](t, "info")(s.Info(ctx, q.Name)); info.First != 3 {
		t.Fatalf("acknowledged entries kept: %+v", info)
	}
	got = must[[]store.LogEntry](t, "pull after ack")(q.Pull(ctx, 0, 10))
	wantEntries(t, "pull after ack", got, "3:r3")
	wantErr(t, "ack beyond end", q.Ack(ctx, 4), store.ErrInvalid)

	// Pull waits for the next entry.
	wantErr(t, "ack", q.Ack(ctx, 3), nil)
	type result struct {
		entries []store.LogEntry
		err     error
	}
	res := make(chan result, 1)
	go func() {
		e, err := q.Pull(ctx, 0, 10)
		res <- result{e, err}
	}()
	select {
	case r := <-res:
		t.Fatalf("pull on empty queue returned %v, %v", entryData(r.entries), r.err)
	case <-time.After(50 * time.Millisecond):
	}
	must[uint64](t, "enqueue")(q.Enqueue(ctx, []byte("r4")))
	r := <-res
	wantErr(t, "pull", r.err, nil)
	wantEntries(t, "waited pull", r.entries, "4:r4")
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err := q.Pull(short, 4, 10)
	wantErr(t, "pull timeout", err, context.DeadlineExceeded)
}
