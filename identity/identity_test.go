package identity

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"anom/mls"
)

// detRand is a deterministic reader for reproducible keys.
type detRand byte

func (r *detRand) Read(p []byte) (int, error) {
	for i := range p {
		*r++
		p[i] = byte(*r)
	}
	return len(p), nil
}

var t0 = time.Unix(1_700_000_000, 0)

func newRoot(t testing.TB, seed byte) *RootKey {
	t.Helper()
	r := detRand(seed)
	k, err := GenerateRootKey(&r)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// dirOf returns a directory signer certified by root (key derived from the
// root's seed, so fixtures stay reproducible).
func dirOf(t testing.TB, root *RootKey) *DirectorySigner {
	t.Helper()
	k, err := DirectoryKeyFromSeed(root.Public()[:32])
	if err != nil {
		t.Fatal(err)
	}
	c, err := root.CertifyOnlineKey(RoleDirectory, "server", k.Public(), t0.Add(-24*time.Hour), 10*365*24*time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewDirectorySigner(k, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newDevice(t testing.TB, root *RootKey, name string, seed byte) (*DeviceCertificate, ed25519.PrivateKey) {
	t.Helper()
	r := detRand(seed)
	pub, priv, err := ed25519.GenerateKey(&r)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := NewDeviceID(&r)
	c := &DeviceCertificate{DeviceID: id, Username: name, Key: pub, NotBefore: t0, NotAfter: t0.Add(30 * 24 * time.Hour), Serial: 7}
	if err := dirOf(t, root).SignDeviceCertificate(c); err != nil {
		t.Fatal(err)
	}
	return c, priv
}

func TestCanonicalUsername(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"alice", "alice", true},
		{"Alice.B_c-9", "alice.b_c-9", true},
		{"abc", "abc", true},
		{"ab", "", false},
		{"a234567890123456789012345678901x", "a234567890123456789012345678901x", true},
		{"a2345678901234567890123456789012x", "", false},
		{"al ice", "", false},
		{"alicé", "", false},
		{"al@ce", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := CanonicalUsername(tt.in)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("CanonicalUsername(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidUsername) {
			t.Errorf("CanonicalUsername(%q): error %v does not match ErrInvalidUsername", tt.in, err)
		}
	}
}

func TestDeviceCertificateVerify(t *testing.T) {
	root := newRoot(t, 1)
	other := newRoot(t, 2)
	cert, _ := newDevice(t, root, "alice", 10)
	tampered := *cert
	tampered.Username = "mallory"
	tests := []struct {
		name string
		c    *DeviceCertificate
		root RootPublicKey
		now  time.Time
		want error
	}{
		{"valid", cert, root.Public(), t0.Add(time.Hour), nil},
		{"at not-before", cert, root.Public(), t0, nil},
		{"before", cert, root.Public(), t0.Add(-time.Second), ErrNotYetValid},
		{"at not-after", cert, root.Public(), cert.NotAfter, ErrExpired},
		{"after", cert, root.Public(), cert.NotAfter.Add(time.Hour), ErrExpired},
		{"other root", cert, other.Public(), t0.Add(time.Hour), ErrBadSignature},
		{"tampered", &tampered, root.Public(), t0.Add(time.Hour), ErrBadSignature},
		{"short root key", cert, root.Public()[:5], t0.Add(time.Hour), ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Verify(tt.root, tt.now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDeviceCertificateRoundTrip(t *testing.T) {
	root := newRoot(t, 1)
	cert, _ := newDevice(t, root, "bob.smith", 20)
	enc := cert.Encode()
	if len(enc) > MaxDeviceCertificateSize {
		t.Fatalf("encoding is %d bytes, more than MaxDeviceCertificateSize %d", len(enc), MaxDeviceCertificateSize)
	}
	got, err := DecodeDeviceCertificate(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Encode(), enc) || got.Username != "bob.smith" || got.DeviceID != cert.DeviceID || !got.NotAfter.Equal(cert.NotAfter) {
		t.Fatalf("round trip changed the certificate: %+v", got)
	}
	if err := got.Verify(root.Public(), t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Strictness: trailing data, truncation, wrong version, non-folded
	// username are all refused.
	bad := map[string][]byte{
		"trailing":  append(append([]byte(nil), enc...), 0),
		"truncated": enc[:len(enc)-1],
		"version":   append([]byte{1}, enc[1:]...),
		"empty":     nil,
	}
	upper := append([]byte(nil), enc...)
	upper[1+DeviceIDSize+1] = 'B'
	bad["uppercase username"] = upper
	for name, b := range bad {
		if _, err := DecodeDeviceCertificate(b); err == nil {
			t.Errorf("%s: decoded", name)
		} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("%s: error %v matches neither ErrMalformed nor ErrUnknownVersion", name, err)
		}
	}
}

func TestSignDeviceCertificateRejects(t *testing.T) {
	root := newRoot(t, 1)
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	tests := map[string]DeviceCertificate{
		"bad username":  {Username: "A", Key: pub, NotBefore: t0, NotAfter: t0.Add(time.Hour)},
		"short key":     {Username: "alice", Key: pub[:3], NotBefore: t0, NotAfter: t0.Add(time.Hour)},
		"empty period":  {Username: "alice", Key: pub, NotBefore: t0, NotAfter: t0},
		"upper in name": {Username: "Alice", Key: pub, NotBefore: t0, NotAfter: t0.Add(time.Hour)},
	}
	for name, c := range tests {
		if err := dirOf(t, root).SignDeviceCertificate(&c); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}

func TestAuthResponse(t *testing.T) {
	root := newRoot(t, 1)
	cert, priv := newDevice(t, root, "alice", 10)
	ch := []byte("0123456789abcdef0123456789abcdef")
	sig := SignAuthResponse(priv, "anom.example", ch)
	if err := cert.VerifyAuthResponse("anom.example", ch, sig); err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyAuthResponse("other.example", ch, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other server: %v", err)
	}
	if err := cert.VerifyAuthResponse("anom.example", ch[1:], sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other challenge: %v", err)
	}
}

func TestCredentialValidator(t *testing.T) {
	root := newRoot(t, 1)
	cert, priv := newDevice(t, root, "alice", 10)
	other, _ := newDevice(t, root, "bob", 30)
	suite, err := mls.Suite(mls.CipherSuiteID(1))
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	revoked := map[DeviceID]bool{}
	v := NewCredentialValidator(ValidatorConfig{Root: root.Public(), Now: func() time.Time { return now }, Revoked: func(id DeviceID) bool { return revoked[id] }})

	// A real key package whose credential is the device certificate.
	r := detRand(99)
	kp, err := mls.NewKeyPackage(suite, cert.Credential(), mls.SignaturePrivateKey(priv.Seed()), mls.KeyPackageOptions{}, &r, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := mls.ValidateKeyPackage(suite, kp.KeyPackage, now, v); err != nil {
		t.Fatalf("valid key package refused: %v", err)
	}

	otherCred := other.Credential()
	tests := []struct {
		name string
		cred *mls.Credential
		key  []byte
		now  time.Time
		rev  bool
		want error
	}{
		{"valid", ptr(cert.Credential()), cert.Key, now, false, nil},
		{"key mismatch", &otherCred, cert.Key, now, false, ErrInvalidCredential},
		{"x509", &mls.Credential{Type: mls.CredentialX509}, cert.Key, now, false, ErrInvalidCredential},
		{"garbage identity", &mls.Credential{Type: mls.CredentialBasic, Identity: []byte("alice")}, cert.Key, now, false, ErrInvalidCredential},
		{"expired", ptr(cert.Credential()), cert.Key, cert.NotAfter, false, ErrExpired},
		{"revoked", ptr(cert.Credential()), cert.Key, now, true, ErrRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = tt.now
			revoked[cert.DeviceID] = tt.rev
			err := v(tt.cred, tt.key)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("validator = %v, want %v", err, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestRevocation(t *testing.T) {
	root := newRoot(t, 1)
	cert, _ := newDevice(t, root, "alice", 10)
	r := dirOf(t, root).SignRevocation(cert.DeviceID, t0)
	got, err := DecodeRevocation(r.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(root.Public()); err != nil {
		t.Fatal(err)
	}
	if got.DeviceID != cert.DeviceID || !got.RevokedAt.Equal(t0) {
		t.Fatalf("round trip: %+v", got)
	}
	if err := got.Verify(newRoot(t, 2).Public()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other root: %v", err)
	}
}

func TestWipe(t *testing.T) {
	root := newRoot(t, 1)
	cert, priv := newDevice(t, root, "alice", 10)
	other, _ := newDevice(t, root, "bob", 30)
	r := detRand(5)
	w, err := dirOf(t, root).SignWipeCommand(cert.DeviceID, t0, &r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeWipeCommand(w.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(root.Public(), cert.DeviceID); err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(root.Public(), other.DeviceID); !errors.Is(err, ErrInvalid) {
		t.Fatalf("wrong device: %v", err)
	}
	if err := got.Verify(newRoot(t, 2).Public(), cert.DeviceID); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other root: %v", err)
	}
	conf := ConfirmWipe(priv, got)
	if err := conf.Verify(cert, w); err != nil {
		t.Fatal(err)
	}
	if err := conf.Verify(other, w); err == nil {
		t.Fatal("confirmation accepted for another device")
	}
	w2, _ := dirOf(t, root).SignWipeCommand(cert.DeviceID, t0, &r)
	if err := conf.Verify(cert, w2); !errors.Is(err, ErrInvalid) {
		t.Fatalf("confirmation of another command: %v", err)
	}
}

func TestDistributorAndCodes(t *testing.T) {
	root := newRoot(t, 1)
	r := detRand(40)
	dk, err := GenerateDistributorKey(&r)
	if err != nil {
		t.Fatal(err)
	}
	dc := &DistributorCertificate{Name: "shop-1", Key: dk.Public(), Quota: 100, Serial: 1}
	if err := root.SignDistributorCertificate(dc); err != nil {
		t.Fatal(err)
	}
	dc2, err := DecodeDistributorCertificate(dc.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if err := dc2.Verify(root.Public()); err != nil {
		t.Fatal(err)
	}
	code, err := NewActivationCode(&r)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseActivationCode(" " + lower(code.String()) + " ")
	if err != nil || parsed != code {
		t.Fatalf("parse of %q = %v, %v", code, parsed, err)
	}
	if _, err := ParseActivationCode("AAAA-BBBB"); !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("short code: %v", err)
	}
	b := &CodeBatch{Distributor: "shop-1", Months: 12, Expires: t0.Add(time.Hour), Hashes: [][CodeHashSize]byte{code.Hash()}}
	if err := dk.SignCodeBatch(b); err != nil {
		t.Fatal(err)
	}
	b2, err := DecodeCodeBatch(b.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.Verify(root.Public(), dc2); err != nil {
		t.Fatal(err)
	}
	if b2.Hashes[0] != code.Hash() || b2.Months != 12 {
		t.Fatalf("round trip: %+v", b2)
	}
	// Signed by another distributor key: refused.
	dk2, _ := GenerateDistributorKey(&r)
	_ = dk2.SignCodeBatch(b2)
	if err := b2.Verify(root.Public(), dc2); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("foreign key: %v", err)
	}
	for name, bad := range map[string]*CodeBatch{
		"no codes": {Distributor: "shop-1", Months: 1},
		"0 months": {Distributor: "shop-1", Hashes: b.Hashes},
		"bad name": {Distributor: "Shop", Months: 1, Hashes: b.Hashes},
		"too long": {Distributor: "shop-1", Months: MaxCodeMonths + 1, Hashes: b.Hashes},
		"too many": {Distributor: "shop-1", Months: 1, Hashes: make([][CodeHashSize]byte, MaxBatchCodes+1)},
	} {
		if err := dk.SignCodeBatch(bad); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}

func lower(s string) string { return string(bytes.ToLower([]byte(s))) }
