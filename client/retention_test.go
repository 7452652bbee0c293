package client

import (
	"bytes"
	"context"
	"testing"
	"time"

	anomv1 "anom/proto/anom/v1"
)

// reopen closes a device and opens and connects it again.
func (d *device) reopen(ctx context.Context) {
	d.t.Helper()
	d.c.Close()
	c, err := Open(d.cfg, testPIN)
	if err != nil {
		d.t.Fatal(err)
	}
	d.c = c
	if err := c.Connect(ctx); err != nil {
		d.t.Fatalf("%s connecting: %v", d.name, err)
	}
}

// rawGroups lists the groups the server has for a device.
func rawGroups(t *testing.T, ctx context.Context, c *Client) []*anomv1.GroupState {
	t.Helper()
	cn, err := c.current()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_ListGroups{ListGroups: &anomv1.ListGroups{}}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetGroups().GetGroups()
}

// A device removed while offline learns of it when it comes back, reads
// nothing sent after, and the server then forgets its membership.
func TestRemovedWhileOffline(t *testing.T) {
	n := newTestNet(t)
	alice, bob, carol := n.newDevice("alice"), n.newDevice("bob"), n.newDevice("carol")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	carol.wait(EventJoined)
	if err := alice.c.SendText(ctx, g, "before"); err != nil {
		t.Fatal(err)
	}
	carol.waitText("before")
	carol.c.Close()
	if err := alice.c.RemoveMembers(ctx, g, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.SendText(ctx, g, "after carol"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("after carol")

	carol.reopen(ctx)
	if e := carol.wait(EventRemoved); !bytes.Equal(e.Group, g) {
		t.Fatalf("removed from %x, want %x", e.Group, g)
	}
	if gs := carol.c.Groups(); len(gs) != 0 {
		t.Fatalf("carol still in %d groups", len(gs))
	}
	hist, err := carol.c.History(g)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range hist {
		if m.Content.Text == "after carol" {
			t.Fatal("carol read a message sent after her removal")
		}
	}
	if len(hist) != 1 || hist[0].Content.Text != "before" {
		t.Fatalf("carol's history %v", hist)
	}
	// She acknowledged the removal: the server no longer has her in it.
	if gs := rawGroups(t, ctx, carol.c); len(gs) != 0 {
		t.Fatalf("server still lists carol in %v", gs)
	}
}

// The disappearing-message timer is set inside the group's encrypted
// messages and on the server: a device offline past the timer never gets
// the messages, yet still follows the group's commits.
func TestDisappearingTimer(t *testing.T) {
	n := newTestNet(t)
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	if err := alice.c.SetTimer(ctx, g, time.Minute); err != nil {
		t.Fatal(err)
	}
	for {
		e := bob.wait(EventMessage)
		if e.Message.Content.Kind == KindTimer {
			break
		}
	}
	for _, d := range []*device{alice, bob} {
		gs := rawGroups(t, ctx, d.c)
		if len(gs) != 1 || gs[0].GetTimerSeconds() != 60 {
			t.Fatalf("%s: server's groups %v", d.name, gs)
		}
		if sum := d.c.Groups(); len(sum) != 1 || sum[0].Timer != 60 {
			t.Fatalf("%s: client's groups %+v", d.name, sum)
		}
	}
	bob.c.Close()
	if err := alice.c.SendText(ctx, g, "burn after reading"); err != nil {
		t.Fatal(err)
	}
	// A membership change bob has not seen: carol joins.
	carol := n.newDevice("carol")
	if err := alice.c.AddMembers(ctx, g, "carol"); err != nil {
		t.Fatal(err)
	}
	carol.wait(EventJoined)

	n.clock.Advance(2 * time.Minute)
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	// The client's own copy is gone too.
	if hist, err := alice.c.History(g); err != nil || len(hist) != 1 || hist[0].Content.Kind != KindTimer {
		t.Fatalf("alice's history past the timer: %v %v", hist, err)
	}

	bob.reopen(ctx)
	if err := alice.c.SendText(ctx, g, "fresh"); err != nil {
		t.Fatal(err)
	}
	if m := bob.waitText("fresh"); m.Username != "alice" {
		t.Fatalf("from %q", m.Username)
	}
	hist, err := bob.c.History(g)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range hist {
		if m.Content.Text == "burn after reading" {
			t.Fatal("the server delivered a message past the group's timer")
		}
	}
	ms, err := bob.c.Members(g)
	if err != nil || len(ms) != 3 {
		t.Fatalf("bob sees %d members (%v)", len(ms), err)
	}
	if err := carol.c.SetTimer(ctx, g, 0); err != nil {
		t.Fatal(err)
	}
	if gs := rawGroups(t, ctx, bob.c); len(gs) != 1 || gs[0].GetTimerSeconds() != 0 {
		t.Fatalf("timer after carol turned it off: %v", gs)
	}
}
