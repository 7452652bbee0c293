package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"anom/internal/store"
)

// testPersistence: everything written is there after Reopen, and
// revisions and sequences continue where they were.
func testPersistence(t *testing.T, h Harness) {
	clock := NewClock()
	s := h.Open(t, clock.Now)
	ctx := ctxT(t)
	rev := must[uint64](t, "put")(s.Put(ctx, "dir", "alice", []byte("dev1")))
	must[uint64](t, "put")(s.Put(ctx, "dir", "bob", []byte("dev2")))
	wantErr(t, "delete", s.Delete(ctx, "dir", "bob", 0), nil)
	must[uint64](t, "append")(s.Append(ctx, "g", []byte("a"), []byte("b"), []byte("c")))
	wantErr(t, "trim", s.Trim(ctx, "g", 2), nil)
	must[uint64](t, "cursor")(s.SetCursor(ctx, "g", "dev1", 3))
	q := store.Queue{Logs: s, Name: "outbox"}
	must[uint64](t, "enqueue")(q.Enqueue(ctx, []byte("r1"), []byte("r2")))
	wantErr(t, "ack", q.Ack(ctx, 1), nil)
	blob := bytes.Repeat([]byte("blob"), 300<<10)
	must[store.BlobInfo](t, "put blob")(s.PutBlob(ctx, "b", bytes.NewReader(blob), store.BlobOptions{Expires: clock.Now().Add(1 << 40)}))

	s = h.Reopen(t, s)
	t.Cleanup(func() { s.Close() })
	e := must[store.Entry](t, "get")(s.Get(ctx, "dir", "alice"))
	if string(e.Value) != "dev1" || e.Revision != rev {
		t.Fatalf("after reopen: %+v", e)
	}
	_, err := s.Get(ctx, "dir", "bob")
	wantErr(t, "deleted key after reopen", err, store.ErrNotFound)
	if r := must[uint64](t, "put")(s.Put(ctx, "dir", "carol", nil)); r <= rev {
		t.Fatalf("revision after reopen %d not above %d", r, rev)
	}
	wantEntries(t, "log after reopen", must[[]store.LogEntry](t, "read")(s.Read(ctx, "g", 1, 0)), "2:b", "3:c")
	if seq := must[uint64](t, "append")(s.AppendIf(ctx, "g", 3, []byte("d"))); seq != 4 {
		t.Fatalf("append after reopen = %d", seq)
	}
	if c := must[uint64](t, "cursor")(s.Cursor(ctx, "g", "dev1")); c != 3 {
		t.Fatalf("cursor after reopen = %d", c)
	}
	q.Logs = s
	wantEntries(t, "queue after reopen", must[[]store.LogEntry](t, "pull")(q.Pull(ctx, 0, 10)), "2:r2")
	got, _ := readBlob(t, s, "b")
	if !bytes.Equal(got, blob) {
		t.Fatal("blob differs after reopen")
	}
}

func testClose(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	must[store.BlobInfo](t, "put blob")(s.PutBlob(ctx, "b", bytes.NewReader(make([]byte, 600<<10)), store.BlobOptions{}))
	r, _, err := s.GetBlob(ctx, "b")
	wantErr(t, "get blob", err, nil)
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() {
		_, err := s.Wait(context.Background(), "g", 0)
		waitErr <- err
	}()
	wantErr(t, "close", s.Close(), nil)
	wantErr(t, "close again", s.Close(), nil)
	wantErr(t, "blocked wait", <-waitErr, store.ErrClosed)
	if _, err := io.ReadAll(r); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("read from reader of closed store: %v", err)
	}
	r.Close()
	calls := []struct {
		name string
		err  error
	}{
		{"get", second(s.Get(ctx, "a", "k"))},
		{"put", second(s.Put(ctx, "a", "k", nil))},
		{"list", third(s.List(ctx, "a", store.ListOptions{}))},
		{"txn", second(s.Txn(ctx, store.PutOp("a", "k", nil)))},
		{"append", second(s.Append(ctx, "g", nil))},
		{"read", second(s.Read(ctx, "g", 1, 0))},
		{"info", second(s.Info(ctx, "g"))},
		{"trim", s.Trim(ctx, "g", 1)},
		{"cursor", second(s.Cursor(ctx, "g", "c"))},
		{"wait", second(s.Wait(ctx, "g", 0))},
		{"put blob", second(s.PutBlob(ctx, "b2", bytes.NewReader(nil), store.BlobOptions{}))},
		{"stat blob", second(s.StatBlob(ctx, "b"))},
		{"sweep", second(s.SweepBlobs(ctx, NewClock().Now()))},
	}
	for _, c := range calls {
		if !errors.Is(c.err, store.ErrClosed) {
			t.Errorf("%s after close: %v, want ErrClosed", c.name, c.err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func third[T, U any](_ T, _ U, err error) error { return err }

// testCloseUnderLoad: Close while writers, readers and waiters are busy
// ends every call with success or ErrClosed, and nothing hangs.
func testCloseUnderLoad(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	started := make(chan struct{}, 64)
	work := []func(i int) error{
		func(i int) error { _, err := s.Append(ctx, "g", []byte("x")); return err },
		func(i int) error { _, err := s.Put(ctx, "b", fmt.Sprint("k", i), []byte("v")); return err },
		func(i int) error { _, err := s.Read(ctx, "g", 1, 10); return err },
		func(i int) error { _, err := s.Wait(ctx, "never", 0); return err },
		func(i int) error {
			_, err := s.PutBlob(ctx, fmt.Sprint("blob", i), newPattern(1, 300<<10), store.BlobOptions{})
			return err
		},
		func(i int) error {
			_, err := store.Queue{Logs: s, Name: "q"}.Pull(ctx, 0, 10)
			return err
		},
	}
	for w := 0; w < 2*len(work); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn := work[w%len(work)]
			for i := 0; ; i++ {
				if i == 1 {
					started <- struct{}{}
				}
				err := fn(w*1_000_000 + i)
				if errors.Is(err, store.ErrClosed) {
					return
				}
				if err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
			}
		}()
	}
	// Wait until the workers that return are running, then close.
	for i := 0; i < 2*(len(work)-2); i++ {
		<-started
	}
	wantErr(t, "close under load", s.Close(), nil)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("calls still running 30s after Close")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
