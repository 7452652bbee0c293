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

// TestSessionContactDevices: a contact's new device is alerted in the
// chat; /safety USER verify DEVICE marks a device verified, /safety shows
// the mark, and a verified device that is gone or re-keyed is shown
// loudly.
func TestSessionContactDevices(t *testing.T) {
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t, root, nil)
	alice, bob := n.user("alice"), n.user("bob")
	alice.do("/chat bob")
	bob.wait("* you were added to chat 1 alice")
	mustContain(t, alice.do("/group team bob"), "* group chat 2 team made")
	bob.wait(`alice named the chat "team"`)
	bobID, err := bob.c.Identity()
	if err != nil {
		t.Fatal(err)
	}
	dev := bobID.DeviceID.String()

	mustContain(t, alice.do("/safety bob verify nope"), "error: /safety: ")
	mustContain(t, alice.do("/safety bob verify "+dev[:8]), "* bob's device "+dev+" is now marked verified on this device")
	mustContain(t, alice.do("/safety bob"), "  device "+dev+" (until ", ") VERIFIED:")

	// bob pairs a second device; his first adds it to the chat, and alice
	// is told.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bob2, err := client.Create(client.Config{Dir: filepath.Join(t.TempDir(), "bob2"), KDF: testKDF, KeyPackages: 4}, "314159", "")
	if err != nil {
		t.Fatal(err)
	}
	defer bob2.Close()
	req, err := bob2.BeginPairing("bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.c.ApproveDevice(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := bob2.Activate(ctx, n.net, n.code(), "bob"); err != nil {
		t.Fatal(err)
	}
	id2, _ := bob2.Identity()
	bob.wait("is active (you approved it from this device)")
	// The device that added it to the group sent it the group's name.
	team := alice.s.chats[1].id
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if name, err := bob2.GroupName(team); err == nil && name == "team" {
			break
		}
		if time.Now().After(deadline) {
			name, err := bob2.GroupName(team)
			t.Fatalf("bob's new device has the group name %q, %v", name, err)
		}
	}
	alice.wait("!!! bob has a new device " + id2.DeviceID.String() + ": compare its safety number (/safety bob) !!!")
	scr := alice.do("/safety bob")
	if !strings.Contains(scr, "device "+dev) || !strings.Contains(scr, "device "+id2.DeviceID.String()+" (until ") ||
		strings.Count(scr, "VERIFIED") != 1 {
		t.Fatalf("/safety bob:\n%s", scr)
	}

	// A verified device that leaves or changes key cannot go unnoticed.
	out := alice.s.deviceChangeText(&client.DeviceChange{Username: "bob", Removed: []string{dev}, VerifiedLost: []string{dev}})
	want := "!!! WARNING: bob's VERIFIED device " + dev + " is no longer in your chats with bob !!!"
	if len(out) != 1 || out[0] != want {
		t.Fatalf("verified device removed: %q, want %q", out, want)
	}
	out = alice.s.deviceChangeText(&client.DeviceChange{Username: "bob", Rekeyed: []string{dev}, VerifiedLost: []string{dev}})
	want = "!!! WARNING: bob's VERIFIED device " + dev + " HAS A NEW KEY: it is not the device you verified; compare safety numbers again (/safety bob) !!!"
	if len(out) != 1 || out[0] != want {
		t.Fatalf("verified device re-keyed: %q, want %q", out, want)
	}
}
