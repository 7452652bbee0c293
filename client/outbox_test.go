package client

import (
	"testing"
)

// A message written while disconnected waits in the outbox (pending in
// the history), survives a restart and is sent in order on reconnecting.
func TestOutboxQueuesWhileDisconnected(t *testing.T) {
	n := newTestNet(t)
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	alice.c.disconnect()
	for _, text := range []string{"one", "two"} {
		pending, err := alice.c.SendOrQueue(ctx, g, &Content{Kind: KindText, Text: text})
		if err != nil || !pending {
			t.Fatalf("queueing %q: pending %v, %v", text, pending, err)
		}
	}
	hist, err := alice.c.History(g)
	if err != nil || len(hist) != 2 || !hist[0].Pending || hist[1].Content.Text != "two" {
		t.Fatalf("history while pending %+v %v", hist, err)
	}
	alice.reopen(ctx)
	if e := alice.wait(EventSent); e.Message.Content.Text != "one" || e.Message.Seq == 0 {
		t.Fatalf("sent %+v", e.Message)
	}
	bob.waitText("one")
	bob.waitText("two")
	hist, err = alice.c.History(g)
	if err != nil || len(hist) != 2 || hist[0].Pending || hist[1].Pending || hist[1].Content.Text != "two" {
		t.Fatalf("history after sending %+v %v", hist, err)
	}
	// Connected, it sends at once.
	if pending, err := alice.c.SendOrQueue(ctx, g, &Content{Kind: KindText, Text: "three"}); err != nil || pending {
		t.Fatalf("connected send: pending %v, %v", pending, err)
	}
	bob.waitText("three")
}
