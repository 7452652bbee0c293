package chatui

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"anom/client"
	"anom/identity"
)

// TestSessionApprovePairingCode: /approve takes the short code a new
// device shows (fetched from the server, its fingerprint shown for the
// user to compare), and still the long one; an unknown code says so.
func TestSessionApprovePairingCode(t *testing.T) {
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t, root, nil)
	alice := n.user("alice")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	newDevice := func(name string) *client.Client {
		c, err := client.Create(client.Config{Dir: filepath.Join(t.TempDir(), name), KDF: testKDF, KeyPackages: 4}, "314159", "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	mustContain(t, alice.do("/approve 0000-0000-00"), "error: ", "no pairing request under 0000-0000-00")
	mustContain(t, alice.do("/approve 0000-0000"), "error: ", "not a pairing code")
	mustContain(t, alice.do("/approve confirm"), "nothing to confirm")

	a2 := newDevice("alice2")
	p, err := a2.PublishPairing(ctx, n.net, "alice")
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, alice.do("/approve "+strings.ToLower(p.Code)), "    Fingerprint: "+p.Request.Fingerprint(), "/approve confirm")
	mustContain(t, alice.do("/approve confirm"), "* approved: the new device can now activate as alice")
	if err := a2.Activate(ctx, n.net, n.code(), "alice"); err != nil {
		t.Fatal(err)
	}
	alice.wait("is active (you approved it from this device)")

	a3 := newDevice("alice3")
	req, err := a3.BeginPairing("alice")
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, alice.do("/approve "+req.Code()), "    Fingerprint: "+req.Fingerprint())
	mustContain(t, alice.do("/approve confirm"), "* approved")
	if err := a3.Activate(ctx, n.net, n.code(), "alice"); err != nil {
		t.Fatalf("activating with the long code: %v", err)
	}
}
