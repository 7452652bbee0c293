package escrowtest

import (
	"crypto/ed25519"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"anom/escrow"
)

// Signature contexts of the escrow encodings (escrow/escrow.go), needed to
// sign records of the retired format, which the escrow package no longer
// makes.
const (
	ctxDeviceSig = "anom/escrow/v1 device record signature\x00"
	ctxServerSig = "anom/escrow/v1 server countersignature\x00"
)

// LegacyMessage is Message in the retired record format version 1 (without
// the proof π), signed by dev and countersigned as a server did before the
// cut-over to version 2: the encoded ServerRecord, which the escrow package
// now refuses to decode (escrow.ErrRetiredRecord). It returns the record's
// slot too.
func (n *Network) LegacyMessage(t testing.TB, dev *Device, group []byte, at time.Time, plaintext []byte) ([]byte, [32]byte) {
	t.Helper()
	rec, err := n.Seal(dev, group, at, plaintext)
	if err != nil {
		t.Fatal(err)
	}
	slot, err := rec.Metadata.Slot()
	if err != nil {
		t.Fatal(err)
	}
	signed := LegacySigned(t, rec, dev.Key)
	n.mu.Lock()
	n.seq++
	seq := n.seq
	n.mu.Unlock()
	cb := cryptobyte.NewBuilder(nil)
	cb.AddUint8(1)
	cb.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(signed) })
	cb.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(n.ServerID)) })
	cb.AddUint64(uint64(at.UnixMilli()))
	cb.AddUint64(seq)
	body := cb.BytesOrPanic()
	return append(body, ed25519.Sign(n.ServerKey, append([]byte(ctxServerSig), body...))...), slot
}

// LegacySigned is rec in the retired record format version 1 (its proof
// left out), signed by a device key: an encoded SignedRecord as a device
// sent it before the cut-over.
func LegacySigned(t testing.TB, rec *escrow.Record, key ed25519.PrivateKey) []byte {
	t.Helper()
	b, err := rec.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	v1 := append([]byte{1}, b[1:len(b)-escrow.RecordProofSize]...)
	sb := cryptobyte.NewBuilder(nil)
	sb.AddUint8(1)
	sb.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(v1) })
	sb.AddBytes(ed25519.Sign(key, append([]byte(ctxDeviceSig), v1...)))
	return sb.BytesOrPanic()
}
