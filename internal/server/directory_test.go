package server

import (
	"anom/identity"
	"bytes"
	"testing"

	"anom/internal/translog"
	anomv1 "anom/proto/anom/v1"
)

// A directory entry carries the logged entry itself, so a client checks
// inclusion without another round trip.
func TestLookupCarriesLogEntry(t *testing.T) {
	n := newNetwork(t, nil)
	codes := n.codes(2, 1)
	alice := n.activate("alice", codes[0])
	n.activate("bob", codes[1])
	dir := alice.must(&anomv1.Frame{Body: &anomv1.Frame_Lookup{Lookup: &anomv1.Lookup{Username: "bob"}}}).GetDirectory()
	if len(dir.GetDevices()) != 1 {
		t.Fatalf("bob has %d devices", len(dir.GetDevices()))
	}
	var sth translog.SignedTreeHead
	if err := sth.UnmarshalBinary(dir.GetTreeHead()); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.VerifyTreeHead(n.root.Public(), sth, translog.SignedTreeHead{}); err != nil {
		t.Fatal(err)
	}
	d := dir.GetDevices()[0]
	e, err := translog.DecodeEntry(d.GetLogEntry())
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != translog.KindDeviceCertificate || !bytes.Equal(e.Payload, d.GetCertificate()) {
		t.Fatalf("log entry is %v, not the certificate", e.Kind)
	}
	var proof translog.InclusionProof
	if err := proof.UnmarshalBinary(d.GetInclusionProof()); err != nil {
		t.Fatal(err)
	}
	if proof.Index != d.GetLogIndex() || proof.TreeSize != sth.Size {
		t.Fatalf("proof for %d of %d, entry %d, head %d", proof.Index, proof.TreeSize, d.GetLogIndex(), sth.Size)
	}
	if err := proof.Verify(translog.HashLeaf(d.GetLogEntry()), sth.Root); err != nil {
		t.Fatalf("inclusion of the carried entry: %v", err)
	}
	// Another entry does not verify against the proof.
	other := append([]byte(nil), d.GetLogEntry()...)
	other[len(other)-1] ^= 1
	if err := proof.Verify(translog.HashLeaf(other), sth.Root); err == nil {
		t.Fatal("a changed entry verified")
	}
}
