package client

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"anom/internal/translog"
)

// newDeviceFor is newDevice with a subscription (and certificate) of the
// given months.
func (n *testNet) newDeviceFor(name string, months int) *device {
	n.t.Helper()
	d := &device{t: n.t, name: name, events: make(chan Event, 1000)}
	d.cfg = Config{Dir: filepath.Join(n.t.TempDir(), name), KDF: testKDF, Now: n.clock.Now, KeyPackages: 4,
		OnEvent: func(e Event) { d.events <- e }}
	c, err := Create(d.cfg, testPIN, testDuress)
	if err != nil {
		n.t.Fatal(err)
	}
	d.c = c
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Activate(ctx, n.net, n.code(months), name); err != nil {
		n.t.Fatalf("activating %s: %v", name, err)
	}
	n.t.Cleanup(func() { d.c.Close() })
	return d
}

// TestExpiredDeviceRemoved: a device whose certificate expired is removed
// from its groups by the first member online, stops being listed, and
// every member is alerted (issue 9, item 6, the expiry part).
func TestExpiredDeviceRemoved(t *testing.T) {
	n := newTestNet(t)
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	carol := n.newDeviceFor("carol", 1)
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	carol.wait(EventJoined)
	carol.c.Close()

	n.clock.Set(45 * 24 * time.Hour)
	if err := alice.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*device{alice, bob} {
		e := d.wait(EventDeviceRemoved)
		if string(e.Group) != string(g) || !strings.Contains(e.Text, "of carol was removed: its certificate expired") {
			t.Fatalf("%s's alert: %q", d.name, e.Text)
		}
		ms, err := d.c.Members(g)
		if err != nil {
			t.Fatal(err)
		}
		if u := usernames(ms); u["carol"] != 0 || u["alice"] != 1 || u["bob"] != 1 {
			t.Fatalf("%s lists %v", d.name, u)
		}
	}
	// Bob, coming online after, has nothing left to remove: no second
	// commit.
	epoch := groupEpoch(t, alice.c, g)
	if err := bob.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if e := groupEpoch(t, bob.c, g); e != epoch {
		t.Fatalf("bob at epoch %d, alice at %d", e, epoch)
	}
	if err := bob.c.SendText(ctx, g, "just us"); err != nil {
		t.Fatal(err)
	}
	alice.waitText("just us")
}

// TestRevokedDeviceRemoved: a revoked device is removed from its groups
// by the first member online after the revocation is logged, stops being
// listed, and the member is alerted; the next member has nothing left to
// do (issue 9, item 6, the revocation part; a confirmed wipe is a
// revocation).
func TestRevokedDeviceRemoved(t *testing.T) {
	n := newTestNet(t)
	alice, bob, carol := n.newDevice("alice"), n.newDevice("bob"), n.newDevice("carol")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	carol.wait(EventJoined)
	cid, _ := carol.c.Identity()
	if _, err := n.srv.Revoke(context.Background(), cid.DeviceID, "test", n.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	e := alice.wait(EventDeviceRemoved)
	if string(e.Group) != string(g) || e.Text != "device "+cid.DeviceID.String()+" of carol was removed: it was revoked" {
		t.Fatalf("alice's alert: %q", e.Text)
	}
	bob.wait(EventMembers)
	for _, d := range []*device{alice, bob} {
		ms, err := d.c.Members(g)
		if err != nil {
			t.Fatal(err)
		}
		if u := usernames(ms); u["carol"] != 0 || u["alice"] != 1 || u["bob"] != 1 {
			t.Fatalf("%s lists %v", d.name, u)
		}
	}
	epoch := groupEpoch(t, alice.c, g)
	if err := bob.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if e := groupEpoch(t, bob.c, g); e != epoch {
		t.Fatalf("bob at epoch %d, alice at %d", e, epoch)
	}
	// Bob got alice's commit before reading the revocation: the alert
	// comes once he has.
	if e := bob.wait(EventDeviceRemoved); string(e.Group) != string(g) || e.Text != "device "+cid.DeviceID.String()+" of carol was removed: it was revoked" {
		t.Fatalf("bob's alert: %q", e.Text)
	}
	if err := bob.c.SendText(ctx, g, "without carol"); err != nil {
		t.Fatal(err)
	}
	alice.waitText("without carol")
}

// TestAttackForgedRevocationRemovesNoOne: a revocation in the log that
// does not verify under the network root (the server forging one, say)
// is ignored: the device it names stays in its groups.
func TestAttackForgedRevocationRemovesNoOne(t *testing.T) {
	n := newTestNet(t)
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	bid, _ := bob.c.Identity()
	r := n.dir.SignRevocation(bid.DeviceID, n.clock.Now())
	r.Signature[0] ^= 1
	raw, err := translog.Entry{Kind: translog.KindRevocation, Timestamp: uint64(n.clock.Now().UnixMilli()), Payload: r.Encode()}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	alice.c.mu.Lock()
	err = alice.c.noteRevocations([][]byte{raw})
	alice.c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if ms, _ := alice.c.Members(g); usernames(ms)["bob"] != 1 {
		t.Fatalf("bob was removed on a forged revocation: %v", usernames(ms))
	}
	if err := alice.c.SendText(ctx, g, "still here"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("still here")
}

// TestRevokedDeviceRemovedByTwo: two members online at once both remove
// the revoked device; one commit wins, the other finds nothing left to do
// (no error, no extra epoch).
func TestRevokedDeviceRemovedByTwo(t *testing.T) {
	n := newTestNet(t)
	alice, bob, carol := n.newDevice("alice"), n.newDevice("bob"), n.newDevice("carol")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	carol.wait(EventJoined)
	before := groupEpoch(t, alice.c, g)
	cid, _ := carol.c.Identity()
	if _, err := n.srv.Revoke(context.Background(), cid.DeviceID, "test", n.clock.Now()); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	for _, d := range []*device{alice, bob} {
		go func() { errs <- d.c.Sync(ctx) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	alice.wait(EventDeviceRemoved)
	bob.wait(EventDeviceRemoved)
	ga, gb := groupEpoch(t, alice.c, g), groupEpoch(t, bob.c, g)
	if ga != gb || ga != before+1 {
		t.Fatalf("epochs: alice %d, bob %d, before %d", ga, gb, before)
	}
	if err := alice.c.SendText(ctx, g, "one removal"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("one removal")
}
