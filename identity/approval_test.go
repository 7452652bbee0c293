package identity

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

func newPairing(t testing.TB, name string, seed byte) *PairingRequest {
	t.Helper()
	r := detRand(seed)
	pub, _, err := ed25519.GenerateKey(&r)
	if err != nil {
		t.Fatal(err)
	}
	req, err := NewPairingRequest(name, pub, &r)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestPairingCode(t *testing.T) {
	req := newPairing(t, "Alice", 40)
	if req.Username != "alice" {
		t.Fatalf("username not folded: %q", req.Username)
	}
	code := req.Code()
	for _, in := range []string{code, strings.ToLower(code), strings.ReplaceAll(code, "-", " ")} {
		got, err := ParsePairingCode(in)
		if err != nil {
			t.Fatalf("parsing %q: %v", in, err)
		}
		if got.Username != req.Username || !bytes.Equal(got.Key, req.Key) || got.Nonce != req.Nonce {
			t.Fatalf("round trip: %+v, want %+v", got, req)
		}
		if got.Fingerprint() != req.Fingerprint() {
			t.Fatal("fingerprint changed in the round trip")
		}
	}
	fp := req.Fingerprint()
	if len(fp) != 6*5+5 {
		t.Fatalf("fingerprint %q", fp)
	}
	other := newPairing(t, "alice", 41)
	if other.Fingerprint() == fp {
		t.Fatal("two requests share a fingerprint")
	}
	bad := []string{"", "!!!!", code[:len(code)-5], code + "AAAA"}
	for _, s := range bad {
		if _, err := ParsePairingCode(s); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("parsing %q: %v, want ErrMalformed", s, err)
		}
	}
	if _, err := NewPairingRequest("x", req.Key, new(detRand)); !errors.Is(err, ErrInvalidUsername) {
		t.Fatalf("short username: %v", err)
	}
}

func TestDeviceApproval(t *testing.T) {
	root := newRoot(t, 1)
	alice, alicePriv := newDevice(t, root, "alice", 10)
	bob, bobPriv := newDevice(t, root, "bob", 20)
	req := newPairing(t, "alice", 30)

	a, err := ApproveDevice(alicePriv, alice, req, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Matches(req) || a.Kind != ApproverDevice || a.Approver != alice.DeviceID {
		t.Fatalf("approval %+v", a)
	}
	got, err := DecodeDeviceApproval(a.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Encode(), a.Encode()) || !got.IssuedAt.Equal(t0) {
		t.Fatal("round trip changed the approval")
	}
	if len(a.Encode()) > MaxDeviceApprovalSize {
		t.Fatalf("encoding of %d bytes over the maximum %d", len(a.Encode()), MaxDeviceApprovalSize)
	}
	adm, err := dirOf(t, root).ApproveDevice(req, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ApproveDevice(bobPriv, bob, req, t0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bob approving alice's device: %v", err)
	}
	if _, err := ApproveDevice(bobPriv, alice, req, t0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("approving with another device's key: %v", err)
	}
	tampered := func(mod func(*DeviceApproval)) *DeviceApproval {
		c, _ := DecodeDeviceApproval(a.Encode())
		mod(c)
		return c
	}
	// bob's signature over an approval naming bob as approver of alice.
	forged := tampered(func(c *DeviceApproval) { c.Approver = bob.DeviceID })
	forged.Signature = ed25519.Sign(bobPriv, labelled(labelApproval, forged.tbs()))
	otherRoot := newRoot(t, 2)
	tests := []struct {
		name     string
		a        *DeviceApproval
		root     RootPublicKey
		approver *DeviceCertificate
		want     error
	}{
		{"device", a, root.Public(), alice, nil},
		{"admin", adm, root.Public(), nil, nil},
		{"admin, other network", adm, otherRoot.Public(), nil, ErrBadSignature},
		{"no approver", a, root.Public(), nil, ErrInvalid},
		{"other approver", a, root.Public(), bob, ErrInvalid},
		{"approver of another user", forged, root.Public(), bob, ErrInvalid},
		{"other key", tampered(func(c *DeviceApproval) { c.Key = bob.Key }), root.Public(), alice, ErrBadSignature},
		{"other nonce", tampered(func(c *DeviceApproval) { c.Nonce[0] ^= 1 }), root.Public(), alice, ErrBadSignature},
		{"other time", tampered(func(c *DeviceApproval) { c.IssuedAt = c.IssuedAt.Add(1e9) }), root.Public(), alice, ErrBadSignature},
		{"device approval posing as admin", tampered(func(c *DeviceApproval) { c.Kind, c.Approver = ApproverRoot, DeviceID{} }), root.Public(), nil, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.a.Verify(tt.root, tt.approver)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	// Decoding refuses unknown approver kinds and a root approval naming
	// a device.
	for _, mod := range []func(*DeviceApproval){
		func(c *DeviceApproval) { c.Kind = 3 },
		func(c *DeviceApproval) { c.Kind = ApproverRoot },
	} {
		if _, err := DecodeDeviceApproval(tampered(mod).Encode()); !errors.Is(err, ErrMalformed) {
			t.Errorf("decoding: %v, want ErrMalformed", err)
		}
	}
}

func FuzzDecodeDeviceApproval(f *testing.F) {
	root := newRoot(f, 1)
	alice, priv := newDevice(f, root, "alice", 10)
	req := newPairing(f, "alice", 30)
	a, _ := ApproveDevice(priv, alice, req, t0)
	adm, _ := dirOf(f, root).ApproveDevice(req, t0)
	f.Add(a.Encode())
	f.Add(adm.Encode())
	f.Add([]byte{1, 3, 'a', 'b', 'c'})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeDeviceApproval(b)
		if err != nil {
			return
		}
		if !bytes.Equal(v.Encode(), b) {
			t.Fatalf("not canonical: %x re-encodes to %x", b, v.Encode())
		}
		_ = v.Verify(root.Public(), alice)
	})
}

func FuzzParsePairingCode(f *testing.F) {
	f.Add(newPairing(f, "alice", 30).Code())
	f.Add("AAAA-BBBB")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParsePairingCode(s)
		if err != nil {
			return
		}
		again, err := ParsePairingCode(r.Code())
		if err != nil || !bytes.Equal(again.encode(), r.encode()) {
			t.Fatalf("code %q does not round-trip: %v", r.Code(), err)
		}
		_ = r.Fingerprint()
	})
}
