package client

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
		if string(e.Group) != string(g) || !strings.Contains(e.Text, "of carol was removed (its certificate expired") {
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
