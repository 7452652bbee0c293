package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"anom/identity"
)

// pairDevice makes a further device of username: it begins pairing, has
// approve approve its request (parsed from the code it shows, with the
// same fingerprint), and activates.
func (n *testNet) pairDevice(name, username string, approve func(*identity.PairingRequest)) *device {
	n.t.Helper()
	d := &device{t: n.t, name: name, events: make(chan Event, 1000)}
	d.cfg = Config{Dir: filepath.Join(n.t.TempDir(), name), KDF: testKDF, Now: n.clock.Now, KeyPackages: 4,
		OnEvent: func(e Event) { d.events <- e }}
	c, err := Create(d.cfg, testPIN, "")
	if err != nil {
		n.t.Fatal(err)
	}
	d.c = c
	n.t.Cleanup(func() { d.c.Close() })
	req, err := c.BeginPairing(username)
	if err != nil {
		n.t.Fatal(err)
	}
	shown, err := identity.ParsePairingCode(req.Code())
	if err != nil {
		n.t.Fatal(err)
	}
	if shown.Fingerprint() != req.Fingerprint() {
		n.t.Fatal("the approving side shows another fingerprint")
	}
	approve(shown)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Activate(ctx, n.net, n.code(12), username); err != nil {
		n.t.Fatalf("activating %s: %v", name, err)
	}
	return d
}

// noEvent fails if an event of type typ is waiting.
func (d *device) noEvent(typ EventType) {
	d.t.Helper()
	for {
		select {
		case e := <-d.events:
			if e.Type == typ {
				d.t.Fatalf("%s: unexpected event %d: %s", d.name, typ, e.Text)
			}
		default:
			return
		}
	}
}

func usernames(ms []Member) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		out[m.Username]++
	}
	return out
}

// A second device of alice, approved by her first: it is added to her
// groups, contacts see it, and messages reach both devices.
func TestSecondDeviceApproved(t *testing.T) {
	n := newTestNet(t)
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)

	// Without pairing, the username is taken.
	stray, _ := Create(Config{Dir: filepath.Join(t.TempDir(), "stray"), KDF: testKDF}, testPIN, "")
	defer stray.Close()
	if err := stray.Activate(ctx, n.net, n.code(1), "alice"); err == nil {
		t.Fatal("a second device activated under alice without approval")
	}
	// Bob cannot approve a device of alice.
	alice2 := n.pairDevice("alice2", "alice", func(req *identity.PairingRequest) {
		if err := bob.c.ApproveDevice(ctx, req); !errors.Is(err, ErrPairing) {
			t.Fatalf("bob approving alice's device: %v", err)
		}
		if err := alice.c.ApproveDevice(ctx, req); err != nil {
			t.Fatal(err)
		}
	})
	a2, _ := alice2.c.Identity()
	e := alice.wait(EventNewOwnDevice)
	if e.Device.DeviceID != a2.DeviceID || e.Approval == nil || e.Approval.Kind != identity.ApproverDevice {
		t.Fatalf("alert %+v", e)
	}
	a1, _ := alice.c.Identity()
	if e.Approval.Approver != a1.DeviceID {
		t.Fatalf("approved by %s, want %s", e.Approval.Approver, a1.DeviceID)
	}
	// Alice's first device adds the new one to her groups.
	if j := alice2.wait(EventJoined); !bytes.Equal(j.Group, g) {
		t.Fatalf("alice2 joined %x", j.Group)
	}
	bob.wait(EventMembers)
	ms, err := bob.c.Members(g)
	if err != nil {
		t.Fatal(err)
	}
	if u := usernames(ms); u["alice"] != 2 || u["bob"] != 1 {
		t.Fatalf("bob sees members %v", u)
	}
	if err := bob.c.SendText(ctx, g, "to both"); err != nil {
		t.Fatal(err)
	}
	alice.waitText("to both")
	alice2.waitText("to both")
	if err := alice2.c.SendText(ctx, g, "from the second"); err != nil {
		t.Fatal(err)
	}
	if m := bob.waitText("from the second"); m.Username != "alice" || m.From != a2.DeviceID {
		t.Fatalf("from %s %s", m.Username, m.From)
	}
	alice.waitText("from the second")
	// A group made afterwards by a contact has both devices.
	g2, err := bob.c.CreateGroup(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	alice2.wait(EventJoined)
	if ms, _ := bob.c.Members(g2); usernames(ms)["alice"] != 2 {
		t.Fatalf("new group members %v", usernames(ms))
	}
	// The new device was told of no other device: the first was there
	// before it.
	alice2.noEvent(EventNewOwnDevice)
}

// A device added behind the user's back, by the admin, raises the alert
// on the user's other devices, online at once and offline when they come
// back; it is not added to their groups unless the user says so.
func TestGhostDeviceAlert(t *testing.T) {
	n := newTestNet(t)
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	ctx := ctxT(t)
	alice2 := n.pairDevice("alice2", "alice", func(req *identity.PairingRequest) {
		if err := alice.c.ApproveDevice(ctx, req); err != nil {
			t.Fatal(err)
		}
	})
	alice.wait(EventNewOwnDevice)
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	alice2.wait(EventJoined)
	bob.wait(EventJoined)
	alice2.c.Close()

	ghost := n.pairDevice("ghost", "alice", func(req *identity.PairingRequest) {
		if _, err := n.srv.ApproveDevice(context.Background(), req, time.Now()); err != nil {
			t.Fatal(err)
		}
	})
	gid, _ := ghost.c.Identity()
	e := alice.wait(EventNewOwnDevice)
	if e.Device.DeviceID != gid.DeviceID || e.Approval == nil || e.Approval.Kind != identity.ApproverRoot {
		t.Fatalf("online alert %+v", e)
	}
	alice2.reopen(ctx)
	e = alice2.wait(EventNewOwnDevice)
	if e.Device.DeviceID != gid.DeviceID || e.Approval == nil || e.Approval.Kind != identity.ApproverRoot {
		t.Fatalf("alert after reconnecting %+v", e)
	}
	// The ghost is in no group of alice's.
	if err := alice.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if ms, _ := alice.c.Members(g); usernames(ms)["alice"] != 2 {
		t.Fatalf("the admin-approved device was added on its own: %v", usernames(ms))
	}
	if gs := ghost.c.Groups(); len(gs) != 0 {
		t.Fatalf("ghost in %d groups", len(gs))
	}
	// Once the user confirms, it is added.
	if err := alice.c.AddOwnDevices(ctx); err != nil {
		t.Fatal(err)
	}
	ghost.wait(EventJoined)
	if ms, _ := bob.c.Members(g); usernames(ms)["alice"] != 3 {
		bob.wait(EventMembers)
		if ms, _ := bob.c.Members(g); usernames(ms)["alice"] != 3 {
			t.Fatalf("bob sees %v", usernames(ms))
		}
	}
}

func TestPairingRecord(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	req, err := identity.NewPairingRequest("alice", pub, bytes.NewReader(make([]byte, 16)))
	if err != nil {
		t.Fatal(err)
	}
	b := encodePairing(seed, req)
	s, r, err := decodePairing(b)
	if err != nil || !bytes.Equal(s, seed) || r.Code() != req.Code() {
		t.Fatalf("round trip: %v", err)
	}
	other := encodePairing(bytes.Repeat([]byte{8}, 32), req) // seed not matching the key
	for _, bad := range [][]byte{nil, {2}, b[:20], append(b, 0), other} {
		if _, _, err := decodePairing(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("bad pairing record %x: %v", bad, err)
		}
	}
}

func FuzzPairingRecord(f *testing.F) {
	seed := bytes.Repeat([]byte{7}, 32)
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	req, _ := identity.NewPairingRequest("alice", pub, bytes.NewReader(make([]byte, 16)))
	f.Add(encodePairing(seed, req))
	f.Add([]byte{1, 0, 0, 0, 32})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, r, err := decodePairing(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		if _, _, err := decodePairing(encodePairing(s, r)); err != nil {
			t.Fatalf("accepted record does not round-trip: %v", err)
		}
	})
}

func TestPairingFitsActivation(t *testing.T) {
	n := newTestNet(t)
	c, err := Create(Config{Dir: filepath.Join(t.TempDir(), "d"), KDF: testKDF}, testPIN, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.BeginPairing("alice"); err != nil {
		t.Fatal(err)
	}
	if err := c.Activate(ctxT(t), n.net, n.code(1), "bob"); !errors.Is(err, ErrPairing) {
		t.Fatalf("activating as another user than paired: %v", err)
	}
	// A pairing for a user that does not exist yet just makes the user,
	// with the paired key.
	req, err := c.BeginPairing("Carol")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Activate(ctxT(t), n.net, n.code(1), "carol"); err != nil {
		t.Fatal(err)
	}
	id, _ := c.Identity()
	if !bytes.Equal(id.Certificate.Key, req.Key) {
		t.Fatal("activated with another key than the paired one")
	}
	if _, err := c.BeginPairing("carol"); err == nil {
		t.Fatal("pairing an activated device")
	}
}
