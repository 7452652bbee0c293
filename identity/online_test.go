package identity

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func newOnlineCert(t testing.TB, root *RootKey, role KeyRole, seed byte) (*OnlineKeyCertificate, *AdminKey) {
	t.Helper()
	r := detRand(seed)
	k, err := GenerateAdminKey(&r)
	if err != nil {
		t.Fatal(err)
	}
	c := &OnlineKeyCertificate{Role: role, Name: "ops-1", Key: k.Public(), NotBefore: t0, NotAfter: t0.Add(90 * 24 * time.Hour), Serial: 3}
	if err := root.SignOnlineKeyCertificate(c); err != nil {
		t.Fatal(err)
	}
	return c, k
}

func TestOnlineKeyCertificate(t *testing.T) {
	root := newRoot(t, 1)
	c, k := newOnlineCert(t, root, RoleAdmin, 9)
	got, err := DecodeOnlineKeyCertificate(c.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Encode(), c.Encode()) {
		t.Fatal("round trip changed the certificate")
	}
	if err := got.Verify(root.Public(), RoleAdmin, t0.Add(time.Hour)); err != nil {
		t.Fatalf("valid certificate refused: %v", err)
	}
	sig := k.Sign("anom/v1 test", []byte("hello"))
	if err := got.VerifySigned("anom/v1 test", []byte("hello"), sig); err != nil {
		t.Fatalf("signature of the certified key refused: %v", err)
	}
	if err := got.VerifySigned("anom/v1 other", []byte("hello"), sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("signature under another label: %v, want ErrBadSignature", err)
	}

	other := newRoot(t, 2)
	cases := []struct {
		name string
		root RootPublicKey
		role KeyRole
		at   time.Time
		want error
	}{
		{"wrong role", root.Public(), RoleDirectory, t0.Add(time.Hour), ErrWrongRole},
		{"other root", other.Public(), RoleAdmin, t0.Add(time.Hour), ErrBadSignature},
		{"before", root.Public(), RoleAdmin, t0.Add(-time.Second), ErrNotYetValid},
		{"at not-after", root.Public(), RoleAdmin, c.NotAfter, ErrExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := got.Verify(tc.root, tc.role, tc.at); !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}

	// An edited field breaks the root signature.
	edited := *got
	edited.Role = RoleDirectory
	if err := edited.Verify(root.Public(), RoleDirectory, t0.Add(time.Hour)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("role relabelled: %v, want ErrBadSignature", err)
	}
}

func TestOnlineKeyCertificateRefusesBadFields(t *testing.T) {
	root := newRoot(t, 1)
	for _, c := range []*OnlineKeyCertificate{
		{Role: 0, Name: "x", Key: make([]byte, 32), NotBefore: t0, NotAfter: t0.Add(time.Hour)},
		{Role: RoleAdmin, Name: "", Key: make([]byte, 32), NotBefore: t0, NotAfter: t0.Add(time.Hour)},
		{Role: RoleAdmin, Name: "Bad Name", Key: make([]byte, 32), NotBefore: t0, NotAfter: t0.Add(time.Hour)},
		{Role: RoleAdmin, Name: "x", Key: make([]byte, 31), NotBefore: t0, NotAfter: t0.Add(time.Hour)},
		{Role: RoleAdmin, Name: "x", Key: make([]byte, 32), NotBefore: t0, NotAfter: t0},
	} {
		if err := root.SignOnlineKeyCertificate(c); err == nil {
			t.Errorf("signed a bad certificate %+v", c)
		}
	}
}

func FuzzDecodeOnlineKeyCertificate(f *testing.F) {
	root := newRoot(f, 1)
	c, _ := newOnlineCert(f, root, RoleDirectory, 4)
	f.Add(c.Encode())
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeOnlineKeyCertificate(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Encode(), b) {
			t.Fatalf("not canonical: %x re-encodes to %x", b, c.Encode())
		}
		_ = c.Verify(root.Public(), c.Role, t0)
	})
}
