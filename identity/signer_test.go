package identity

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"anom/internal/translog"
)

func newDirectorySigner(t testing.TB, root *RootKey, seed byte, nb time.Time, validity time.Duration, serial uint64) *DirectorySigner {
	t.Helper()
	r := detRand(seed)
	k, err := GenerateDirectoryKey(&r)
	if err != nil {
		t.Fatal(err)
	}
	c, err := root.CertifyOnlineKey(RoleDirectory, "server", k.Public(), nb, validity, serial)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewDirectorySigner(k, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDirectoryChain(t *testing.T) {
	root := newRoot(t, 1)
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	// The directory key is certified for [t0, t0+30d).
	dir := newDirectorySigner(t, root, 40, t0, 30*24*time.Hour, 1)
	mk := func(nb time.Time) *DeviceCertificate {
		c := &DeviceCertificate{Username: "alice", Key: pub, NotBefore: nb, NotAfter: nb.Add(365 * 24 * time.Hour)}
		if err := dir.SignDeviceCertificate(c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// A certificate issued while the directory key was valid stays valid
	// after the directory key's certificate expired.
	if err := mk(t0.Add(time.Hour)).Verify(root.Public(), t0.Add(200*24*time.Hour)); err != nil {
		t.Fatalf("certificate issued inside the directory key's validity: %v", err)
	}
	// One issued (or backdated) outside it is refused.
	if err := mk(t0.Add(-time.Hour)).Verify(root.Public(), t0.Add(time.Hour)); !errors.Is(err, ErrNotYetValid) {
		t.Fatalf("issued before the directory key: %v, want ErrNotYetValid", err)
	}
	if err := mk(t0.Add(31*24*time.Hour)).Verify(root.Public(), t0.Add(32*24*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("issued after the directory key expired: %v, want ErrExpired", err)
	}
	// A directory key certified by another root.
	other := newDirectorySigner(t, newRoot(t, 2), 41, t0, 30*24*time.Hour, 1)
	c := &DeviceCertificate{Username: "alice", Key: pub, NotBefore: t0, NotAfter: t0.Add(time.Hour)}
	if err := other.SignDeviceCertificate(c); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(root.Public(), t0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("directory key of another root: %v, want ErrBadSignature", err)
	}
	// Swapping in another (valid) directory certificate breaks the signature.
	c2 := mk(t0)
	c2.Signer = newDirectorySigner(t, root, 42, t0, time.Hour, 2).Certificate()
	if err := c2.Verify(root.Public(), t0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("swapped signer: %v, want ErrBadSignature", err)
	}
	// Revocations, wipe commands and admin approvals follow the same chain.
	rv := other.SignRevocation(DeviceID{1}, t0)
	if err := rv.Verify(root.Public()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("revocation by another root's directory key: %v", err)
	}
	if err := dir.SignRevocation(DeviceID{1}, t0).Verify(root.Public()); err != nil {
		t.Fatal(err)
	}
	r := detRand(5)
	w, _ := dir.SignWipeCommand(DeviceID{1}, t0.Add(-time.Hour), &r)
	if err := w.Verify(root.Public(), DeviceID{1}); !errors.Is(err, ErrNotYetValid) {
		t.Fatalf("wipe command before the directory key: %v", err)
	}
}

// TestAttackOnlineKeyWrongRole: the escrow countersigning key (or an admin
// key) presented as the directory key is refused, for device certificates
// and for tree heads.
func TestAttackOnlineKeyWrongRole(t *testing.T) {
	root := newRoot(t, 1)
	r := detRand(50)
	ck, err := GenerateCountersignKey(&r)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := root.CertifyOnlineKey(RoleCountersign, "server", ck.Public(), t0, 365*24*time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewDirectorySigner(&DirectoryKey{ck.onlineKey}, cc); !errors.Is(err, ErrWrongRole) {
		t.Fatalf("NewDirectorySigner with a countersign certificate: %v, want ErrWrongRole", err)
	}
	// The attacker, holding the countersigning key, builds a certificate
	// by hand that embeds the countersign key's (root-signed) certificate.
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	c := &DeviceCertificate{Username: "alice", Key: pub, NotBefore: t0, NotAfter: t0.Add(time.Hour), Signer: cc}
	c.Signature = ck.Sign(labelDevice, c.tbs())
	dec, err := DecodeDeviceCertificate(c.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if err := dec.Verify(root.Public(), t0); !errors.Is(err, ErrWrongRole) {
		t.Fatalf("device certificate signed by the countersigning key: %v, want ErrWrongRole", err)
	}
	// And a tree head signed by it, with its certificate logged.
	ctx := context.Background()
	l, err := translog.Open(ctx, translog.Config{Storage: &translog.MemoryStorage{}, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := l.Append(ctx, translog.Entry{Kind: translog.KindOnlineKey, Payload: cc.Encode()})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetSigner(ctx, ck.Signer(), idx); err != nil {
		t.Fatal(err)
	}
	sth, err := l.SignedTreeHead()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyTreeHead(root.Public(), sth, translog.SignedTreeHead{}); !errors.Is(err, ErrWrongRole) {
		t.Fatalf("tree head signed by the countersigning key: %v, want ErrWrongRole", err)
	}
}

func TestVerifyTreeHeadRotation(t *testing.T) {
	root := newRoot(t, 1)
	ctx := context.Background()
	now := t0
	l, err := translog.Open(ctx, translog.Config{Storage: &translog.MemoryStorage{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	old := newDirectorySigner(t, root, 60, t0, 365*24*time.Hour, 1)
	i1, _ := l.Append(ctx, translog.Entry{Kind: translog.KindOnlineKey, Payload: old.Certificate().Encode()})
	if err := l.SetSigner(ctx, old.Key().Signer(), i1); err != nil {
		t.Fatal(err)
	}
	h1, err := l.SignedTreeHead()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyTreeHead(root.Public(), h1, translog.SignedTreeHead{}); err != nil {
		t.Fatal(err)
	}
	// Encoding round trip keeps the signer.
	b, _ := h1.MarshalBinary()
	var back translog.SignedTreeHead
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyTreeHead(root.Public(), back, translog.SignedTreeHead{}); err != nil {
		t.Fatal(err)
	}
	// A bare head (no signer) is refused.
	bare := h1
	bare.Signer = nil
	if _, err := VerifyTreeHead(root.Public(), bare, translog.SignedTreeHead{}); !errors.Is(err, ErrNotLogged) {
		t.Fatalf("bare head: %v, want ErrNotLogged", err)
	}
	// A head whose signer entry is not in its tree is refused.
	fake := h1
	fake.Signer = &translog.HeadSigner{Entry: append([]byte(nil), h1.Signer.Entry...), Proof: h1.Signer.Proof}
	fake.Signer.Entry[len(fake.Signer.Entry)-1] ^= 1
	if _, err := VerifyTreeHead(root.Public(), fake, translog.SignedTreeHead{}); !errors.Is(err, ErrNotLogged) {
		t.Fatalf("signer entry not in tree: %v, want ErrNotLogged", err)
	}

	// Rotation: the new key is logged and signs from now on.
	now = t0.Add(time.Hour)
	rotated := newDirectorySigner(t, root, 61, now, 365*24*time.Hour, 2)
	i2, _ := l.Append(ctx, translog.Entry{Kind: translog.KindOnlineKey, Payload: rotated.Certificate().Encode()})
	if err := l.SetSigner(ctx, rotated.Key().Signer(), i2); err != nil {
		t.Fatal(err)
	}
	h2, _ := l.SignedTreeHead()
	if _, err := VerifyTreeHead(root.Public(), h2, h1); err != nil {
		t.Fatalf("head under the rotated key: %v", err)
	}
	// The old key, stolen, signs a later head: refused by whoever saw h2.
	if err := l.SetSigner(ctx, old.Key().Signer(), i1); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(2 * time.Hour)
	h3, _ := l.SignedTreeHead()
	if _, err := VerifyTreeHead(root.Public(), h3, h2); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("head by the retired key after the rotation: %v, want ErrRolledBack", err)
	}
}

// BenchmarkDeviceCertificateVerify: the chain root → directory key
// certificate → device certificate, as every credential check runs it.
func BenchmarkDeviceCertificateVerify(b *testing.B) {
	root := newRoot(b, 1)
	c, _ := newDevice(b, root, "alice", 10)
	pub := root.Public()
	for b.Loop() {
		if err := c.Verify(pub, t0.Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
}
