package client

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
)

func member(user, id string, key byte) Member {
	return Member{DeviceInfo: DeviceInfo{DeviceID: id, Username: user}, SignatureKey: []byte{key, key, key}}
}

// TestContactDeviceChanges: a contact's new, gone and re-keyed devices
// are reported once; a verified device that goes or changes key is
// reported as lost, and its mark does not survive; marks and the record
// last across a restart.
func TestContactDeviceChanges(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	cfg := Config{Dir: dir, KDF: KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}}
	c, err := Create(cfg, "314159", "")
	if err != nil {
		t.Fatal(err)
	}
	note := func(ms ...Member) *DeviceChange {
		t.Helper()
		ch, err := c.NoteContactDevices("bob", append(ms, member("carol", "cccc0001", 9)))
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	if ch := note(member("bob", "b0b00001", 1)); !ch.First || ch.Changed() {
		t.Fatalf("first sight: %+v", ch)
	}
	if ch := note(member("bob", "b0b00001", 1)); ch.Changed() || ch.First {
		t.Fatalf("no change: %+v", ch)
	}
	if _, err := c.VerifyDevice("bob", "b0b0", []byte{2, 2, 2}); err == nil {
		t.Fatal("verified against another key")
	}
	if _, err := c.VerifyDevice("bob", "dead", nil); !errors.Is(err, ErrUnknownDevice) {
		t.Fatalf("unknown device: %v", err)
	}
	if id, err := c.VerifyDevice("bob", "b0b0", []byte{1, 1, 1}); err != nil || id != "b0b00001" {
		t.Fatalf("VerifyDevice = %q, %v", id, err)
	}
	ch := note(member("bob", "b0b00001", 1), member("bob", "b0b00002", 2))
	if !slices.Equal(ch.Added, []string{"b0b00002"}) || len(ch.Removed)+len(ch.VerifiedLost) != 0 {
		t.Fatalf("added: %+v", ch)
	}
	if _, err := c.VerifyDevice("bob", "b0b0", nil); err == nil {
		t.Fatal("an ambiguous prefix was accepted")
	}

	// A restart keeps the record and the mark.
	c.Close()
	if c, err = Open(cfg, "314159"); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	devs, err := c.ContactDevices("bob")
	if err != nil || len(devs) != 2 || !devs[0].Verified || devs[1].Verified {
		t.Fatalf("after a restart: %+v, %v", devs, err)
	}

	// The verified device comes back with another key: loud, unmarked.
	ch = note(member("bob", "b0b00001", 7), member("bob", "b0b00002", 2))
	if !slices.Equal(ch.Rekeyed, []string{"b0b00001"}) || !slices.Equal(ch.VerifiedLost, []string{"b0b00001"}) {
		t.Fatalf("re-keyed: %+v", ch)
	}
	if devs, _ := c.ContactDevices("bob"); devs[0].Verified {
		t.Fatal("the mark survived a new key")
	}
	if _, err := c.VerifyDevice("bob", "b0b00002", nil); err != nil {
		t.Fatal(err)
	}
	ch = note(member("bob", "b0b00001", 7))
	if !slices.Equal(ch.Removed, []string{"b0b00002"}) || !slices.Equal(ch.VerifiedLost, []string{"b0b00002"}) {
		t.Fatalf("removed: %+v", ch)
	}
}

func FuzzDecodeContact(f *testing.F) {
	f.Add(encodeContact([]ContactDevice{{DeviceID: "b0b00001", SignatureKey: []byte{1}, Verified: true}, {DeviceID: "x"}}))
	f.Add([]byte{recordVersion, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		devs, err := decodeContact(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if len(devs) > maxContactDevices {
			t.Fatalf("%d devices", len(devs))
		}
	})
}
