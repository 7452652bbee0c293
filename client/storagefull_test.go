package client

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"anom/identity"
	"anom/internal/server"
	"anom/internal/store"
)

// fullStore is a store whose writes fail as a full disk's do while full
// is set.
type fullStore struct {
	store.Store
	full *atomic.Bool
}

func (s fullStore) err() error {
	if s.full.Load() {
		return fmt.Errorf("committing: %w: write db/000002.log: no space left on device", store.ErrFull)
	}
	return nil
}

func (s fullStore) Append(ctx context.Context, log string, entries ...[]byte) (uint64, error) {
	if err := s.err(); err != nil {
		return 0, err
	}
	return s.Store.Append(ctx, log, entries...)
}

func (s fullStore) AppendIf(ctx context.Context, log string, last uint64, entries ...[]byte) (uint64, error) {
	if err := s.err(); err != nil {
		return 0, err
	}
	return s.Store.AppendIf(ctx, log, last, entries...)
}

func (s fullStore) AppendAll(ctx context.Context, appends ...store.Append) ([]uint64, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.AppendAll(ctx, appends...)
}

func (s fullStore) Txn(ctx context.Context, ops ...store.Op) ([]uint64, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Txn(ctx, ops...)
}

// TestStorageFullKeepsMessage: a server out of storage refuses a send
// with STORAGE_FULL; the message stays in the outbox (pending), the user
// is told why (EventSendHeld, ErrServerFull), and it is sent by the next
// sync once the server has space again. Nothing is lost.
func TestStorageFullKeepsMessage(t *testing.T) {
	full := &atomic.Bool{}
	n := newTestNetWith(t, func(c *server.Config, _ *identity.RootKey) {
		c.Store = fullStore{Store: c.Store, full: full}
	})
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)

	full.Store(true)
	err = alice.c.Send(ctx, g, &Content{Kind: KindText, Text: "direct"})
	if !IsCode(err, CodeStorageFull) {
		t.Fatalf("send to a full server: %v, want STORAGE_FULL", err)
	}
	pending, err := alice.c.SendOrQueue(ctx, g, &Content{Kind: KindText, Text: "kept"})
	if err != nil || !pending {
		t.Fatalf("queueing on a full server: pending %v, %v", pending, err)
	}
	e := alice.wait(EventSendHeld)
	if !errors.Is(e.Err, ErrServerFull) || !IsCode(e.Err, CodeStorageFull) {
		t.Fatalf("held event error %v, want ErrServerFull with STORAGE_FULL", e.Err)
	}
	hist, err := alice.c.History(g)
	if err != nil || len(hist) != 1 || !hist[0].Pending || hist[0].Content.Text != "kept" {
		t.Fatalf("history while the server is full %+v %v", hist, err)
	}

	full.Store(false)
	if err := alice.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if e := alice.wait(EventSent); e.Message.Content.Text != "kept" || e.Message.Seq == 0 {
		t.Fatalf("sent %+v", e.Message)
	}
	bob.waitText("kept")
}
