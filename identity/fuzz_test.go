package identity

import (
	"bytes"
	"testing"
)

// Each decoder must never panic, and whatever it accepts must re-encode to
// exactly the input (the encodings are canonical).

func FuzzDecodeDeviceCertificate(f *testing.F) {
	root := newRoot(f, 1)
	cert, _ := newDevice(f, root, "alice", 10)
	f.Add(cert.Encode())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeDeviceCertificate(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Encode(), b) {
			t.Fatalf("not canonical: %x re-encodes to %x", b, c.Encode())
		}
		_ = c.Verify(root.Public(), t0)
	})
}

func FuzzDecodeSigned(f *testing.F) {
	root := newRoot(f, 1)
	r := detRand(3)
	w, _ := dirOf(f, root).SignWipeCommand(DeviceID{1}, t0, &r)
	dk, _ := GenerateDistributorKey(&r)
	dc := &DistributorCertificate{Name: "d", Key: dk.Public(), Quota: 3}
	_ = root.SignDistributorCertificate(dc)
	code, _ := NewActivationCode(&r)
	batch := &CodeBatch{Distributor: "d", Months: 1, Expires: t0, Hashes: [][CodeHashSize]byte{code.Hash()}}
	_ = dk.SignCodeBatch(batch)
	f.Add(uint8(0), dirOf(f, root).SignRevocation(DeviceID{2}, t0).Encode())
	f.Add(uint8(1), w.Encode())
	f.Add(uint8(2), dc.Encode())
	f.Add(uint8(3), batch.Encode())
	f.Fuzz(func(t *testing.T, kind uint8, b []byte) {
		var enc []byte
		switch kind % 4 {
		case 0:
			v, err := DecodeRevocation(b)
			if err != nil {
				return
			}
			enc = v.Encode()
			_ = v.Verify(root.Public())
		case 1:
			v, err := DecodeWipeCommand(b)
			if err != nil {
				return
			}
			enc = v.Encode()
			_ = v.Verify(root.Public(), DeviceID{1})
		case 2:
			v, err := DecodeDistributorCertificate(b)
			if err != nil {
				return
			}
			enc = v.Encode()
		case 3:
			v, err := DecodeCodeBatch(b)
			if err != nil {
				return
			}
			enc = v.Encode()
			_ = v.Verify(root.Public(), dc)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("kind %d not canonical: %x re-encodes to %x", kind%4, b, enc)
		}
	})
}

func FuzzParseActivationCode(f *testing.F) {
	f.Add("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseActivationCode(s)
		if err != nil {
			return
		}
		if c2, err := ParseActivationCode(c.String()); err != nil || c2 != c {
			t.Fatalf("String of %q does not parse back: %v", s, err)
		}
	})
}
