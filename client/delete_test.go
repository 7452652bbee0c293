package client

import (
	"errors"
	"testing"
)

// TestDeleteMessage: a device deletes a message it sent, for every
// member; it cannot delete another's; one still waiting in the outbox is
// taken out of it and never sent.
func TestDeleteMessage(t *testing.T) {
	n := newTestNet(t)
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	secret := &Content{Kind: KindText, Text: "secret"}
	if _, err := alice.c.SendOrQueue(ctx, g, secret); err != nil {
		t.Fatal(err)
	}
	bob.waitText("secret")
	if err := bob.c.SendText(ctx, g, "bob's"); err != nil {
		t.Fatal(err)
	}
	theirs := alice.waitText("bob's")

	if _, err := bob.c.DeleteMessage(ctx, g, secret.ID); !errors.Is(err, ErrNotOwnMessage) {
		t.Fatalf("bob deleting alice's message: %v", err)
	}
	if _, err := alice.c.DeleteMessage(ctx, g, theirs.Content.ID); !errors.Is(err, ErrNotOwnMessage) {
		t.Fatalf("alice deleting bob's message: %v", err)
	}
	if _, err := alice.c.DeleteMessage(ctx, g, MessageID{1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting an unknown message: %v", err)
	}
	if pending, err := alice.c.DeleteMessage(ctx, g, secret.ID); err != nil || pending {
		t.Fatalf("deleting: pending %v, %v", pending, err)
	}
	for {
		e := bob.wait(EventMessage)
		if e.Message.Content.Kind == KindDelete && e.Message.Content.Target == secret.ID {
			break
		}
	}
	for _, d := range []*device{alice, bob} {
		hist, err := d.c.History(g)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range hist {
			if m.Content.Text == "secret" {
				t.Fatalf("%s's history still holds the deleted message", d.name)
			}
		}
	}

	// A message waiting in the outbox is dropped from it.
	alice.c.disconnect()
	oops := &Content{Kind: KindText, Text: "oops"}
	if pending, err := alice.c.SendOrQueue(ctx, g, oops); err != nil || !pending {
		t.Fatalf("queueing: pending %v, %v", pending, err)
	}
	if pending, err := alice.c.DeleteMessage(ctx, g, oops.ID); err != nil || pending {
		t.Fatalf("deleting a queued message: pending %v, %v", pending, err)
	}
	if _, err := alice.c.SendOrQueue(ctx, g, &Content{Kind: KindText, Text: "after"}); err != nil {
		t.Fatal(err)
	}
	alice.reopen(ctx)
	for {
		e := bob.wait(EventMessage)
		if e.Message.Content.Text == "oops" {
			t.Fatal("bob got the message deleted from the outbox")
		}
		if e.Message.Content.Text == "after" {
			break
		}
	}
}
