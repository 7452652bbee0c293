package identity

import (
	"errors"
	"strings"
	"testing"
)

func TestBlobAuth(t *testing.T) {
	root := newRoot(t, 1)
	cert, priv := newDevice(t, root, "alice", 10)
	other, otherPriv := newDevice(t, root, "bob", 11)
	h := SignBlobRequest(priv, cert.DeviceID, "GET", "00112233445566778899aabbccddeeff", t0)
	a, err := ParseBlobAuth(h)
	if err != nil {
		t.Fatal(err)
	}
	if a.Device != cert.DeviceID || !a.At.Equal(t0) {
		t.Fatalf("parsed %v at %v", a.Device, a.At)
	}
	if err := cert.VerifyBlobRequest(a, "GET", "00112233445566778899aabbccddeeff"); err != nil {
		t.Fatal(err)
	}
	bad := func(what string, c *DeviceCertificate, header, method, id string) {
		t.Helper()
		a, err := ParseBlobAuth(header)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := c.VerifyBlobRequest(a, method, id); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", what, err)
		}
	}
	bad("other method", cert, h, "PUT", "00112233445566778899aabbccddeeff")
	bad("other blob", cert, h, "GET", "ffffffffffffffffffffffffffffffff")
	bad("other device's certificate", other, h, "GET", "00112233445566778899aabbccddeeff")
	bad("signed by another key", cert, SignBlobRequest(otherPriv, cert.DeviceID, "GET", "00112233445566778899aabbccddeeff", t0), "GET", "00112233445566778899aabbccddeeff")
	parts := strings.Split(h, " ")
	bad("other time", cert, parts[0]+" "+"2"+parts[1][1:]+" "+parts[2], "GET", "00112233445566778899aabbccddeeff")
	if _, err := ParseBlobAuth(h + " x"); !errors.Is(err, ErrMalformed) {
		t.Errorf("four fields: %v", err)
	}
}

func FuzzParseBlobAuth(f *testing.F) {
	root := newRoot(f, 1)
	cert, priv := newDevice(f, root, "alice", 10)
	f.Add(SignBlobRequest(priv, cert.DeviceID, "GET", "00112233445566778899aabbccddeeff", t0))
	f.Add("00 1 AA")
	f.Add("")
	f.Add("00112233445566778899aabbccddeeff -1 " + strings.Repeat("A", 86))
	f.Fuzz(func(t *testing.T, v string) {
		a, err := ParseBlobAuth(v)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if len(a.Signature) != 64 {
			t.Fatalf("accepted a %d-byte signature", len(a.Signature))
		}
		_ = cert.VerifyBlobRequest(a, "GET", "x")
	})
}
