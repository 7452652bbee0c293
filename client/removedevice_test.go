package client

import (
	"errors"
	"testing"

	"anom/identity"
)

// TestRemoveOneDevice: one device of a user is removed from a group, the
// user's other device stays and keeps reading (issue 9, item 6).
func TestRemoveOneDevice(t *testing.T) {
	n := newTestNet(t)
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	ctx := ctxT(t)
	bob2 := n.pairDevice("bob2", "bob", func(req *identity.PairingRequest) {
		if err := bob.c.ApproveDevice(ctx, req); err != nil {
			t.Fatal(err)
		}
	})
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	bob2.wait(EventJoined)
	b2, _ := bob2.c.Identity()
	a, _ := alice.c.Identity()
	if err := alice.c.RemoveDevice(ctx, g, a.DeviceID); !errors.Is(err, ErrSelfRemove) {
		t.Fatalf("removing this device: %v", err)
	}
	if err := alice.c.RemoveDevice(ctx, g, b2.DeviceID); err != nil {
		t.Fatal(err)
	}
	bob2.wait(EventRemoved)
	if err := alice.c.RemoveDevice(ctx, g, b2.DeviceID); !errors.Is(err, ErrNotMember) {
		t.Fatalf("removing a device not in the group: %v", err)
	}
	ms, err := bob.c.Members(g)
	if err != nil {
		t.Fatal(err)
	}
	if u := usernames(ms); u["bob"] != 1 || u["alice"] != 1 {
		t.Fatalf("members after removing bob2: %v", u)
	}
	for _, m := range ms {
		if m.DeviceID == b2.DeviceID.String() {
			t.Fatal("bob2 is still listed")
		}
	}
	if err := alice.c.SendText(ctx, g, "bob's first only"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("bob's first only")
	if err := bob2.c.SendText(ctx, g, "me too?"); !errors.Is(err, ErrNoGroup) {
		t.Fatalf("removed device sending: %v", err)
	}
}
