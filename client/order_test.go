package client

import (
	"testing"
	"time"
)

// A device that was offline gets the messages with the sender's time, and
// its history is in the server's log order even when the device recorded
// the messages in another order.
func TestHistorySenderTimeAndLogOrder(t *testing.T) {
	n := newTestNet(t)
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	bob.c.Close()
	sent := n.clock.Now()
	if err := alice.c.SendText(ctx, g, "while you were away"); err != nil {
		t.Fatal(err)
	}
	n.clock.Advance(3 * time.Hour)
	bob.reopen(ctx)
	hist, err := bob.c.History(g)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 || hist[0].Content.SentAt.UnixMilli() != sent.UnixMilli() || hist[0].Received.Sub(sent) < 3*time.Hour {
		t.Fatalf("history %+v", hist)
	}

	// Alice records a message received while she was sending after her
	// own, which the server put after it.
	if err := bob.c.SendText(ctx, g, "first in the log"); err != nil {
		t.Fatal(err)
	}
	alice.waitText("first in the log")
	alice.c.mu.Lock()
	raw := [][]byte{}
	if err := alice.c.v.readLog(historyName(g), func(_ uint64, b []byte) error { raw = append(raw, b); return nil }); err != nil {
		t.Fatal(err)
	}
	last := len(raw) - 1
	raw[last-1], raw[last] = raw[last], raw[last-1]
	if err := alice.c.v.rewriteLog(historyName(g), raw); err != nil {
		t.Fatal(err)
	}
	alice.c.mu.Unlock()
	hist, err = alice.c.History(g)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(hist); i++ {
		if hist[i].Seq <= hist[i-1].Seq {
			t.Fatalf("history out of log order: %d after %d", hist[i].Seq, hist[i-1].Seq)
		}
	}
	if hist[len(hist)-1].Content.Text != "first in the log" {
		t.Fatalf("last %q", hist[len(hist)-1].Content.Text)
	}
}
