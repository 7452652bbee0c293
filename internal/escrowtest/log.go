package escrowtest

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"anom/escrow"
	"anom/identity"
	"anom/internal/archive"
	"anom/internal/custodian"
	"anom/internal/translog"
)

// LogTime is the fixture log's clock: tree heads are stamped with it.
var LogTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// online key validity of the fixture: 2025-01-01 to 2030-01-01.
var (
	onlineFrom     = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	onlineValidity = 5 * 365 * 24 * time.Hour
)

// initLog certifies the directory and countersigning keys with the root
// and starts the log with their certificates.
func (n *Network) initLog(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	dk, err := identity.GenerateDirectoryKey(n.Rand)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := n.Root.CertifyOnlineKey(identity.RoleDirectory, "server-1", dk.Public(), onlineFrom, onlineValidity, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n.Directory, err = identity.NewDirectorySigner(dk, dc); err != nil {
		t.Fatal(err)
	}
	if n.CountersignCert, err = n.Root.CertifyOnlineKey(identity.RoleCountersign, "server-1", n.Countersign.Public(), onlineFrom, onlineValidity, 1); err != nil {
		t.Fatal(err)
	}
	if n.Log, err = translog.Open(ctx, translog.Config{Storage: &translog.MemoryStorage{}, Now: func() time.Time { return LogTime }}); err != nil {
		t.Fatal(err)
	}
	di, err := n.Log.Append(ctx, translog.Entry{Kind: translog.KindOnlineKey, Payload: dc.Encode()})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Log.SetSigner(ctx, dk.Signer(), di); err != nil {
		t.Fatal(err)
	}
	if n.csIdx, err = n.Log.Append(ctx, translog.Entry{Kind: translog.KindOnlineKey, Payload: n.CountersignCert.Encode()}); err != nil {
		t.Fatal(err)
	}
}

// CertificateIndex is the log index of a device's certificate.
func (n *Network) CertificateIndex(d *Device) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.certIdx[d.Cert.DeviceID]
}

// loggedItem is the archive item payload of the entry at index: index
// (uint64) and the encoded entry.
func (n *Network) loggedItem(t testing.TB, index uint64) []byte {
	t.Helper()
	raw, err := n.Log.Entries(context.Background(), index, index+1)
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.BigEndian.AppendUint64(nil, index), raw[0]...)
}

// CertificateItem is the archive item of a device's logged certificate, as
// the server's outbox forwards it.
func (n *Network) CertificateItem(t testing.TB, d *Device) archive.Item {
	return archive.Item{Kind: archive.KindCertificate, Data: n.loggedItem(t, n.CertificateIndex(d))}
}

// CountersignItem is the archive item of the countersigning key's logged
// certificate.
func (n *Network) CountersignItem(t testing.TB) archive.Item {
	return archive.Item{Kind: archive.KindOnlineKey, Data: n.loggedItem(t, n.csIdx)}
}

// ProveLog implements archive.LogProver over the fixture log, as the
// server does over HTTP.
func (n *Network) ProveLog(ctx context.Context, indexes, from []uint64) (*archive.LogProofs, error) {
	sth, err := n.Log.SignedTreeHead()
	if err != nil {
		return nil, err
	}
	return archive.BuildLogProofs(n.Log, sth, indexes, from)
}

// Envelope wraps req with the log evidence of every device certificate
// made so far and the countersigning key, against the current tree head,
// with a consistency proof from size from (the custodian's tracked size).
func (n *Network) Envelope(t testing.TB, req *escrow.Request, from uint64) *custodian.Envelope {
	t.Helper()
	n.mu.Lock()
	idx := []uint64{n.csIdx}
	for _, i := range n.certIdx {
		idx = append(idx, i)
	}
	n.mu.Unlock()
	env, err := n.EnvelopeFor(req, idx, from)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// EnvelopeFor wraps req with the log evidence of the entries at indexes.
func (n *Network) EnvelopeFor(req *escrow.Request, indexes []uint64, from uint64) (*custodian.Envelope, error) {
	ctx := context.Background()
	p, err := n.ProveLog(ctx, indexes, []uint64{from})
	if err != nil {
		return nil, err
	}
	env := &custodian.Envelope{Request: req}
	if err := env.TreeHead.UnmarshalBinary(p.TreeHead); err != nil {
		return nil, err
	}
	if err := env.Consistency.UnmarshalBinary(p.Consistency[0]); err != nil {
		return nil, err
	}
	for i, ix := range indexes {
		raw, err := n.Log.Entries(ctx, ix, ix+1)
		if err != nil {
			return nil, err
		}
		l := custodian.LoggedEntry{Entry: raw[0]}
		if err := l.Proof.UnmarshalBinary(p.Inclusion[i]); err != nil {
			return nil, fmt.Errorf("inclusion proof %d: %w", i, err)
		}
		env.Logged = append(env.Logged, l)
	}
	return env, nil
}

// RotateDirectory certifies a new directory key (the next serial), logs
// its certificate and makes it sign the log's tree heads, as `anom admin
// rotate --role directory` and a server restart do. It returns the old
// signer (a thief's copy, in the attack tests) and its log index.
func (n *Network) RotateDirectory(t testing.TB) (*identity.DirectorySigner, uint64) {
	t.Helper()
	ctx := context.Background()
	old := n.Directory
	oldIdx, err := n.entryIndex(old.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	dk, err := identity.GenerateDirectoryKey(n.Rand)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := n.Root.CertifyOnlineKey(identity.RoleDirectory, "server-1", dk.Public(), onlineFrom, onlineValidity, old.Certificate().Serial+1)
	if err != nil {
		t.Fatal(err)
	}
	if n.Directory, err = identity.NewDirectorySigner(dk, dc); err != nil {
		t.Fatal(err)
	}
	idx, err := n.Log.Append(ctx, translog.Entry{Kind: translog.KindOnlineKey, Payload: dc.Encode()})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Log.SetSigner(ctx, dk.Signer(), idx); err != nil {
		t.Fatal(err)
	}
	return old, oldIdx
}

// entryIndex finds the log index of an online key certificate.
func (n *Network) entryIndex(c *identity.OnlineKeyCertificate) (uint64, error) {
	want := c.Encode()
	raw, err := n.Log.Entries(context.Background(), 0, n.Log.Size())
	if err != nil {
		return 0, err
	}
	for i, r := range raw {
		if e, err := translog.DecodeEntry(r); err == nil && e.Kind == translog.KindOnlineKey && string(e.Payload) == string(want) {
			return uint64(i), nil
		}
	}
	return 0, fmt.Errorf("online key certificate not in the log")
}
