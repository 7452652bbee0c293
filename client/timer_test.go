package client

import (
	"slices"
	"testing"
	"time"
)

// A disappearing-message timer applies to the messages sent after it is
// set: the ones before stay, on the device that set it and on the one
// that received it.
func TestTimerAppliesToLaterMessages(t *testing.T) {
	n := newTestNet(t)
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	if err := alice.c.SendText(ctx, g, "before the timer"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("before the timer")
	if err := alice.c.SetTimer(ctx, g, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.SendText(ctx, g, "under the timer"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("under the timer")
	n.clock.Advance(2 * time.Hour)
	for _, d := range []*device{alice, bob} {
		hist, err := d.c.History(g)
		if err != nil {
			t.Fatal(err)
		}
		var texts []string
		for _, m := range hist {
			if m.Content.Kind == KindText {
				texts = append(texts, m.Content.Text)
			}
		}
		if len(texts) != 1 || texts[0] != "before the timer" {
			t.Fatalf("%s: texts past the timer %q", d.name, texts)
		}
	}
	// Turned off, the timer no longer applies to what follows.
	if err := alice.c.SetTimer(ctx, g, 0); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.SendText(ctx, g, "after the timer"); err != nil {
		t.Fatal(err)
	}
	n.clock.Advance(2 * time.Hour)
	hist, err := alice.c.History(g)
	if err != nil {
		t.Fatal(err)
	}
	if last := hist[len(hist)-1]; last.Content.Text != "after the timer" {
		t.Fatalf("last message %+v", last.Content)
	}
}

// The server applies a timer as devices do, from the timer message on: a
// device offline while the timer was set, and past it, still catches up
// on the messages sent before it, and not on those after.
func TestTimerKeepsEarlierMessagesForOfflineDevice(t *testing.T) {
	n := newTestNet(t)
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	bob.c.Close()
	if err := alice.c.SendText(ctx, g, "before the timer"); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.SetTimer(ctx, g, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.SendText(ctx, g, "under the timer"); err != nil {
		t.Fatal(err)
	}
	n.clock.Advance(2 * time.Minute)
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}

	bob.reopen(ctx)
	bob.waitText("before the timer")
	if err := alice.c.SendText(ctx, g, "fresh"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("fresh")
	got := textsAndTimers(t, bob.c, g)
	if want := []string{"before the timer", "timer 1m0s", "fresh"}; !slices.Equal(got, want) {
		t.Fatalf("bob caught up on %q, want %q", got, want)
	}
}

// A timer message whose answer was lost (the connection dropped inside
// the send) is met by its sender in the log on reconnecting; the sender
// then tells the server, whose copy applies the timer from that message,
// as when the answer arrives.
func TestTimerWithLostAnswerReachesServer(t *testing.T) {
	n, _, newProxy := newRestartableNet(t)
	proxy := newProxy()
	alice := n.newDevice("alice")
	newProxy()
	bob := n.newDevice("bob")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	bob.c.Close()
	if err := alice.c.SendText(ctx, g, "before the timer"); err != nil {
		t.Fatal(err)
	}
	proxy.armed.Store(true)
	pending, err := alice.c.SendOrQueue(ctx, g, &Content{Kind: KindTimer, Timer: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !pending {
		t.Fatal("the timer's answer was lost, yet it is not pending")
	}
	select {
	case <-proxy.cut:
	default:
		t.Fatal("the proxy cut nothing")
	}
	if err := alice.c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	alice.wait(EventSent)
	if err := alice.c.SendText(ctx, g, "under the timer"); err != nil {
		t.Fatal(err)
	}
	n.clock.Advance(2 * time.Minute)
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}

	bob.reopen(ctx)
	bob.waitText("before the timer")
	if err := alice.c.SendText(ctx, g, "fresh"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("fresh")
	got := textsAndTimers(t, bob.c, g)
	if want := []string{"before the timer", "timer 1m0s", "fresh"}; !slices.Equal(got, want) {
		t.Fatalf("bob caught up on %q, want %q", got, want)
	}
}

// textsAndTimers lists a group's history on c: each text, and each timer
// as "timer DURATION".
func textsAndTimers(t *testing.T, c *Client, g []byte) []string {
	t.Helper()
	hist, err := c.History(g)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range hist {
		switch m.Content.Kind {
		case KindText:
			got = append(got, m.Content.Text)
		case KindTimer:
			got = append(got, "timer "+m.Content.Timer.String())
		}
	}
	return got
}
