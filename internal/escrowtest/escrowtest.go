// Package escrowtest builds deterministic escrow fixtures for the tests of
// the custodian and archive services: a network root, a dealt and signed
// policy, custodian secrets, a warrant issuer, a countersigning server
// (its key certified by the root), a transparency log with a directory key,
// logged device certificates, and sealed, signed and countersigned records.
package escrowtest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"anom/escrow"
	"anom/identity"
	"anom/internal/custodian"
	"anom/internal/translog"
)

// NetworkID is the network id in every fixture record.
var NetworkID = []byte("anom-test-net")

// Network is a fixture network.
type Network struct {
	Rand       *rand.ChaCha8
	Root       *identity.RootKey
	Policy     *escrow.SignedPolicy
	Secrets    []*custodian.ShareFile // custodian i+1's secret
	IssuerName string
	IssuerKey  ed25519.PrivateKey
	ServerID   string // EscrowServerID of CountersignCert: "server-1/1"
	ServerKey  ed25519.PrivateKey
	// Countersign is ServerKey as the root-certified countersigning key.
	Countersign     *identity.CountersignKey
	CountersignCert *identity.OnlineKeyCertificate
	// Directory signs device certificates and the log's tree heads.
	Directory *identity.DirectorySigner
	// Log is the network's transparency log (in memory): the directory
	// and countersigning keys' certificates, then every device's.
	Log *translog.Log

	csIdx   uint64                       // log index of CountersignCert
	certIdx map[identity.DeviceID]uint64 // log index of each device certificate
	// ArchiveKey signs the archive's audit heads; the custodians take its
	// public half.
	ArchiveKey ed25519.PrivateKey
	// ArchiveCert is the archive's client certificate, which the
	// custodians pin (ArchivePins).
	ArchiveCert tls.Certificate

	mu      sync.Mutex
	devices map[string]*Device
	seq     uint64
	gen     map[string]uint32
}

// Device is a certified device.
type Device struct {
	Cert *identity.DeviceCertificate
	Key  ed25519.PrivateKey
	Leaf uint32
}

// New deals a k-of-n escrow key and signs its policy. The seed makes every
// key deterministic.
func New(t testing.TB, seed byte, k, n int) *Network {
	t.Helper()
	return NewWithRoot(t, nil, seed, k, n)
}

// NewWithRoot is New under a given network root (nil: one made from the
// seed), for a server that made its own.
func NewWithRoot(t testing.TB, root *identity.RootKey, seed byte, k, n int) *Network {
	t.Helper()
	var s [32]byte
	s[0] = seed
	r := rand.NewChaCha8(s)
	var err error
	if root == nil {
		if root, err = identity.GenerateRootKey(r); err != nil {
			t.Fatal(err)
		}
	}
	d, err := escrow.Deal(r, k, n)
	if err != nil {
		t.Fatal(err)
	}
	net := &Network{Rand: r, Root: root, IssuerName: "Court", ServerID: "server-1/1",
		devices: map[string]*Device{}, gen: map[string]uint32{}, certIdx: map[identity.DeviceID]uint64{}}
	p := &escrow.Policy{Version: 1, EscrowKey: d.PublicKey, Threshold: uint16(k),
		Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	for i, sh := range d.Shares {
		_, key, err := ed25519.GenerateKey(r)
		if err != nil {
			t.Fatal(err)
		}
		name := string(rune('A' + i))
		net.Secrets = append(net.Secrets, &custodian.ShareFile{Name: name, Share: sh, Key: key})
		p.Custodians = append(p.Custodians, escrow.Custodian{Name: name, Key: key.Public().(ed25519.PublicKey),
			Index: sh.Index, VerificationShare: d.VerificationShares[i]})
	}
	if _, net.IssuerKey, err = ed25519.GenerateKey(r); err != nil {
		t.Fatal(err)
	}
	if net.Countersign, err = identity.GenerateCountersignKey(r); err != nil {
		t.Fatal(err)
	}
	net.ServerKey = net.Countersign.Signer()
	net.initLog(t)
	// Derived apart from r, so the other fixtures stay as they were.
	ak := sha256.Sum256(append([]byte("escrowtest archive key"), seed))
	net.ArchiveKey = ed25519.NewKeyFromSeed(ak[:])
	p.Issuers = []escrow.Issuer{{Name: net.IssuerName, Key: net.IssuerKey.Public().(ed25519.PublicKey)}}
	if net.Policy, err = escrow.SignPolicy(p, root.Signer()); err != nil {
		t.Fatal(err)
	}
	if net.ArchiveCert, err = custodian.LoadOrCreateClientCertificate(t.TempDir(), p.Created); err != nil {
		t.Fatal(err)
	}
	return net
}

// ArchivePins is the custodians' archive configuration: the pin of
// ArchiveCert.
func (n *Network) ArchivePins() [][32]byte {
	return [][32]byte{custodian.Pin(n.ArchiveCert)}
}

// Device returns the device of username, certifying it on first use for
// 2026-01-01 to 2028-01-01.
func (n *Network) Device(t testing.TB, username string) *Device {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if d, ok := n.devices[username]; ok {
		return d
	}
	id, err := identity.NewDeviceID(n.Rand)
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(n.Rand)
	if err != nil {
		t.Fatal(err)
	}
	c := &identity.DeviceCertificate{DeviceID: id, Username: username, Key: key.Public().(ed25519.PublicKey),
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC),
		Serial: uint64(len(n.devices) + 1)}
	if err := n.Directory.SignDeviceCertificate(c); err != nil {
		t.Fatal(err)
	}
	idx, err := n.Log.Append(context.Background(), translog.Entry{Kind: translog.KindDeviceCertificate, Payload: c.Encode()})
	if err != nil {
		t.Fatal(err)
	}
	n.certIdx[c.DeviceID] = idx
	d := &Device{Cert: c, Key: key, Leaf: uint32(len(n.devices))}
	n.devices[username] = d
	return d
}

// Certificates returns the certificates of every device made so far.
func (n *Network) Certificates() []*identity.DeviceCertificate {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*identity.DeviceCertificate
	for _, d := range n.devices {
		out = append(out, d.Cert)
	}
	return out
}

// Exporter is the fixture's stand-in for a group's MLS exporter secret.
func Exporter(group []byte, epoch uint64) []byte {
	h := sha256.Sum256(binary.BigEndian.AppendUint64(append([]byte("exporter "), group...), epoch))
	return h[:]
}

// Message seals plaintext as a message of dev in group sent at at, signs it
// with the device key and countersigns it with the server key at the same
// time and the next server sequence.
func (n *Network) Message(t testing.TB, dev *Device, group []byte, at time.Time, plaintext []byte) *escrow.ServerRecord {
	t.Helper()
	rec, err := n.Seal(dev, group, at, plaintext)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := n.Sign(dev, rec, at)
	if err != nil {
		t.Fatal(err)
	}
	return sr
}

// Seal seals a record of the next generation of dev in group.
func (n *Network) Seal(dev *Device, group []byte, at time.Time, plaintext []byte) (*escrow.Record, error) {
	n.mu.Lock()
	k := fmt.Sprintf("%x/%d", group, dev.Leaf)
	gen := n.gen[k]
	n.gen[k]++
	n.mu.Unlock()
	m := escrow.Metadata{NetworkID: NetworkID, GroupID: group, Epoch: 1, SenderLeaf: dev.Leaf, Generation: gen,
		SenderDevice: dev.Cert.DeviceID[:], ContentType: 1, SentAt: at}
	return escrow.Seal(n.Policy.Policy.EscrowKey, Exporter(group, 1), m, plaintext)
}

// Sign signs rec with dev's key and countersigns it at time at.
func (n *Network) Sign(dev *Device, rec *escrow.Record, at time.Time) (*escrow.ServerRecord, error) {
	signed, err := escrow.SignRecord(rec, dev.Key)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.seq++
	seq := n.seq
	n.mu.Unlock()
	return escrow.Countersign(signed, []byte(n.ServerID), at, seq, n.ServerKey)
}

// SignBatch signs each of recs with dev's key and countersigns them in one
// batch at time at, as a server countersigns concurrent sends.
func (n *Network) SignBatch(dev *Device, recs []*escrow.Record, at time.Time) ([]*escrow.ServerRecord, error) {
	signed := make([]*escrow.SignedRecord, len(recs))
	for i, rec := range recs {
		var err error
		if signed[i], err = escrow.SignRecord(rec, dev.Key); err != nil {
			return nil, err
		}
	}
	n.mu.Lock()
	first := n.seq + 1
	n.seq += uint64(len(recs))
	n.mu.Unlock()
	return escrow.CountersignBatch(signed, []byte(n.ServerID), at, first, n.ServerKey)
}

// Warrant signs w with the issuer key, filling in Issuer and, if zero,
// Issued (2026-01-01), NotAfter (2027-01-01), Reason and ID.
func (n *Network) Warrant(t testing.TB, w escrow.Warrant) *escrow.SignedWarrant {
	t.Helper()
	w.Issuer = n.IssuerName
	if w.ID == "" {
		w.ID = "W-1"
	}
	if w.Issued.IsZero() {
		w.Issued = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if w.NotAfter.IsZero() {
		w.NotAfter = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if w.Reason == "" {
		w.Reason = "test investigation"
	}
	sw, err := escrow.SignWarrant(&w, n.IssuerKey)
	if err != nil {
		t.Fatal(err)
	}
	return sw
}
