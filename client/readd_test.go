package client

import (
	"bytes"
	"testing"
)

func hasGroup(c *Client, id []byte) bool {
	for _, g := range c.Groups() {
		if bytes.Equal(g.ID, id) {
			return true
		}
	}
	return false
}

// TestReAddRemovedMember: a member removed then added back joins the new
// epoch, reads later messages and keeps the group after a restart (issue
// 9, item 1).
func TestReAddRemovedMember(t *testing.T) {
	n := newTestNet(t)
	alice, bob, carol := n.newDevice("alice"), n.newDevice("bob"), n.newDevice("carol")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	carol.wait(EventJoined)

	// Online: removed, then added back.
	if err := alice.c.RemoveMembers(ctx, g, "carol"); err != nil {
		t.Fatal(err)
	}
	carol.wait(EventRemoved)
	if err := alice.c.AddMembers(ctx, g, "carol"); err != nil {
		t.Fatal(err)
	}
	if e := carol.wait(EventJoined); !bytes.Equal(e.Group, g) {
		t.Fatalf("carol joined %x, want %x", e.Group, g)
	}
	if err := alice.c.SendText(ctx, g, "welcome back"); err != nil {
		t.Fatal(err)
	}
	carol.waitText("welcome back")
	if err := carol.c.SendText(ctx, g, "glad to be back"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("glad to be back")
	carol.reopen(ctx)
	if !hasGroup(carol.c, g) {
		t.Fatal("carol has no group after a restart")
	}

	// Offline: removed and added back while carol is away.
	carol.c.Close()
	if err := alice.c.RemoveMembers(ctx, g, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.SendText(ctx, g, "carol is out"); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.AddMembers(ctx, g, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.SendText(ctx, g, "carol is in again"); err != nil {
		t.Fatal(err)
	}
	carol.reopen(ctx)
	if !hasGroup(carol.c, g) {
		t.Fatal("carol has no group after being added back while offline")
	}
	hist, err := carol.c.History(g)
	if err != nil {
		t.Fatal(err)
	}
	last := hist[len(hist)-1]
	if last.Content.Text != "carol is in again" {
		t.Fatalf("carol's last message %q", last.Content.Text)
	}
	for _, m := range hist {
		if m.Content.Text == "carol is out" {
			t.Fatal("carol read a message of an epoch she was not in")
		}
	}
	if err := carol.c.SendText(ctx, g, "hello again"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("hello again")
}
