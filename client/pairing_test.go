package client

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/server"
	"anom/internal/store"
)

// unpaired is a new device that is not activated yet.
func (n *testNet) unpaired(name string) *device {
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
	return d
}

// newTestNetStore is newTestNet that also returns the server's store.
func newTestNetStore(t *testing.T) (*testNet, store.Store) {
	var st store.Store
	n := newTestNetWith(t, func(cfg *server.Config, _ *identity.RootKey) { st = cfg.Store })
	return n, st
}

// A new device publishes its pairing request; the user types the short
// code on their first device, which fetches the request and shows the
// same fingerprint; once approved, the new device activates and joins.
func TestPairingShortCode(t *testing.T) {
	n := newTestNet(t)
	alice := n.newDevice("alice")
	ctx := ctxT(t)

	nd := n.unpaired("alice2")
	p, err := nd.c.PublishPairing(ctx, n.net, "Alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Code) != 12 || p.Request.ShortCode() != p.Code || p.Request.Username != "alice" {
		t.Fatalf("published code %q for %+v", p.Code, p.Request)
	}
	if d := p.Expires.Sub(n.clock.Now()); d < 9*time.Minute || d > 11*time.Minute {
		t.Fatalf("the code expires in %v", d)
	}
	t.Logf("the new device shows %s and fingerprint %s (instead of %d characters)", p.Code, p.Request.Fingerprint(), len(p.Request.Code()))

	// The user types it in lower case, without dashes.
	typed := strings.ToLower(strings.ReplaceAll(p.Code, "-", ""))
	req, err := alice.c.LookupPairing(ctx, typed)
	if err != nil {
		t.Fatal(err)
	}
	if req.Fingerprint() != p.Request.Fingerprint() || !bytes.Equal(req.Encode(), p.Request.Encode()) {
		t.Fatalf("the approving device shows fingerprint %s, the new device %s", req.Fingerprint(), p.Request.Fingerprint())
	}
	if err := alice.c.ApproveDevice(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := nd.c.Activate(ctx, n.net, n.code(12), "alice"); err != nil {
		t.Fatalf("activating the paired device: %v", err)
	}
	id, _ := nd.c.Identity()
	e := alice.wait(EventNewOwnDevice)
	if e.Device.DeviceID != id.DeviceID || e.Approval == nil || e.Approval.Kind != identity.ApproverDevice {
		t.Fatalf("alert %+v", e)
	}

	// The long form still works alongside.
	nd3 := n.unpaired("alice3")
	req3, err := nd3.c.BeginPairing("alice")
	if err != nil {
		t.Fatal(err)
	}
	shown, err := identity.ParsePairingCode(req3.Code())
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.c.ApproveDevice(ctx, shown); err != nil {
		t.Fatal(err)
	}
	if err := nd3.c.Activate(ctx, n.net, n.code(12), "alice"); err != nil {
		t.Fatalf("activating with the long pairing code: %v", err)
	}

	// Bob cannot fetch alice's pairing: it is as unknown to him.
	bob := n.newDevice("bob")
	nd4 := n.unpaired("alice4")
	p4, err := nd4.c.PublishPairing(ctx, n.net, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.LookupPairing(ctx, p4.Code); !errors.Is(err, ErrPairingCode) || !IsCode(err, CodeNotFound) {
		t.Fatalf("bob fetching alice's pairing code: %v", err)
	}
}

// A code past its ten minutes is refused with a clear error, before and
// after the server sweeps it; an unknown or mistyped code too.
func TestPairingCodeExpiredOrUnknown(t *testing.T) {
	n := newTestNet(t)
	alice := n.newDevice("alice")
	ctx := ctxT(t)

	if _, err := alice.c.LookupPairing(ctx, "0000-0000-00"); !errors.Is(err, ErrPairingCode) || !IsCode(err, CodeNotFound) {
		t.Fatalf("unknown code: %v", err)
	} else {
		t.Logf("unknown code: %v", err)
	}
	for _, bad := range []string{"0000-0000", "UUUU-UUUU-UU", ""} {
		if _, err := alice.c.LookupPairing(ctx, bad); !errors.Is(err, identity.ErrMalformed) {
			t.Fatalf("malformed code %q: %v", bad, err)
		}
	}

	nd := n.unpaired("alice2")
	p, err := nd.c.PublishPairing(ctx, n.net, "alice")
	if err != nil {
		t.Fatal(err)
	}
	n.clock.Advance(10*time.Minute + time.Second)
	_, err = alice.c.LookupPairing(ctx, p.Code)
	if !errors.Is(err, ErrPairingCode) || !IsCode(err, CodeExpired) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired code: %v", err)
	}
	t.Logf("expired code: %v", err)
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.LookupPairing(ctx, p.Code); !errors.Is(err, ErrPairingCode) || !IsCode(err, CodeNotFound) {
		t.Fatalf("swept code: %v", err)
	}
	// The new device publishes again: a new code, which works.
	p2, err := nd.c.PublishPairing(ctx, n.net, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if p2.Code == p.Code {
		t.Fatal("a new publication reused the code")
	}
	if _, err := alice.c.LookupPairing(ctx, p2.Code); err != nil {
		t.Fatal(err)
	}
}

// TestAttackPairingCodeSubstituted: someone who saw the short code (or a
// malicious server) tries to have the user approve another device in
// place of the new one. The server takes no second request under a code
// in use; a server that answers the code with another request is caught
// by the approving device (the code is derived from the request), and
// its fingerprint differs from the one the new device shows; an approval
// of the substituted request does not let the real device in.
func TestAttackPairingCodeSubstituted(t *testing.T) {
	n, st := newTestNetStore(t)
	alice := n.newDevice("alice")
	ctx := ctxT(t)

	nd := n.unpaired("alice2")
	p, err := nd.c.PublishPairing(ctx, n.net, "alice")
	if err != nil {
		t.Fatal(err)
	}
	// The same request published again (the only way to its code) is
	// refused, on a connection of the attacker's.
	if _, err := publishPairing(ctx, DefaultTransport(), n.net, p.Request); !IsCode(err, CodeExists) {
		t.Fatalf("publishing a second request under a code in use: %v", err)
	}
	// The attacker's own request gets a code of its own.
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	evil, err := identity.NewPairingRequest("alice", pub, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if ep, err := publishPairing(ctx, DefaultTransport(), n.net, evil); err != nil || ep.Code == p.Code {
		t.Fatalf("attacker's publication: %v, code %v", err, ep)
	}

	// A malicious server answers the real code with the attacker's
	// request.
	rec, _ := json.Marshal(map[string]any{"request": evil.Encode(), "expires_ms": n.clock.Now().Add(5 * time.Minute).UnixMilli()})
	if _, err := st.Put(ctx, "pairings", p.Code, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.LookupPairing(ctx, p.Code); !errors.Is(err, ErrPairing) {
		t.Fatalf("a substituted request was accepted: %v", err)
	}
	// Had the user been shown it anyway, its fingerprint is not the one
	// on the new device's screen...
	if evil.Fingerprint() == p.Request.Fingerprint() {
		t.Fatal("the substituted request shows the new device's fingerprint")
	}
	// ...and approving it does not let the real device activate.
	if err := alice.c.ApproveDevice(ctx, evil); err != nil {
		t.Fatal(err)
	}
	if err := nd.c.Activate(ctx, n.net, n.code(12), "alice"); !IsCode(err, CodeUsernameTaken) {
		t.Fatalf("the real device with an approval of the substituted request: %v", err)
	}
}

// Fetches of unknown codes are rate-limited per device, so a device
// cannot guess at codes; the limit lifts with time.
func TestAttackPairingCodeGuessing(t *testing.T) {
	n := newTestNet(t)
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	ctx := ctxT(t)
	nd := n.unpaired("alice2")
	p, err := nd.c.PublishPairing(ctx, n.net, "alice")
	if err != nil {
		t.Fatal(err)
	}

	guesses := 0
	for ; guesses < 100; guesses++ {
		guess := fmt.Sprintf("%010d", guesses) // all digits: of the alphabet
		_, err := alice.c.LookupPairing(ctx, guess)
		if IsCode(err, CodeRateLimited) {
			break
		}
		if !errors.Is(err, ErrPairingCode) {
			t.Fatalf("guess %d: %v", guesses, err)
		}
	}
	if guesses != 10 {
		t.Fatalf("%d unknown codes fetched before the limit, want 10", guesses)
	}
	// Limited, the device cannot fetch even the right code...
	if _, err := alice.c.LookupPairing(ctx, p.Code); !IsCode(err, CodeRateLimited) {
		t.Fatalf("fetching while limited: %v", err)
	}
	// ...while another device is not held up by it.
	if _, err := bob.c.LookupPairing(ctx, "0000-0000-00"); !errors.Is(err, ErrPairingCode) {
		t.Fatalf("bob: %v", err)
	}
	// Six misses a minute come back.
	n.clock.Advance(11 * time.Second)
	if _, err := alice.c.LookupPairing(ctx, p.Code); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
	if _, err := alice.c.LookupPairing(ctx, "0000-0000-01"); !errors.Is(err, ErrPairingCode) {
		t.Fatalf("one guess after the wait: %v", err)
	}
	if _, err := alice.c.LookupPairing(ctx, "0000-0000-02"); !IsCode(err, CodeRateLimited) {
		t.Fatalf("a second guess after the wait: %v", err)
	}
}
