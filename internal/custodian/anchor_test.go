package custodian_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"anom/internal/audit"
	"anom/internal/custodian"
	"anom/internal/escrowtest"
	"anom/internal/store/pebble"
)

func TestAnchorAndCounts(t *testing.T) {
	ctx := context.Background()
	n := escrowtest.New(t, 3, 2, 3)
	clock := func() time.Time { return rightNow }
	c := n.StartCustodian(t, 0, clock)
	cl, err := custodian.NewClient(c.Endpoint, n.ArchiveCert, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	aPub := n.Policy.Policy.Custodians[0].Key
	archiveHead := func(seq uint64, hash byte, key ed25519.PrivateKey) *audit.SignedHead {
		sh, err := audit.SignHead(key, custodian.ArchiveService, audit.Head{Seq: seq, Hash: [32]byte{hash}}, rightNow)
		if err != nil {
			t.Fatal(err)
		}
		return sh
	}

	mine, err := cl.Anchor(ctx, archiveHead(5, 5, n.ArchiveKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := mine.Verify(aPub); err != nil || mine.Service != "custodian/A" || mine.Head != c.Service.AuditHead() || mine.Head.Seq != 1 {
		t.Fatalf("custodian's head %+v (%v), log head %v", mine, err, c.Service.AuditHead())
	}
	// A retry of the same head adds nothing.
	if again, err := cl.Anchor(ctx, archiveHead(5, 5, n.ArchiveKey)); err != nil || again.Head.Seq != 1 {
		t.Fatalf("retry: %+v, %v", again, err)
	}
	if mine, err = cl.Anchor(ctx, archiveHead(7, 7, n.ArchiveKey)); err != nil || mine.Head.Seq != 2 {
		t.Fatalf("next head: %+v, %v", mine, err)
	}
	refusals := []struct {
		name string
		head *audit.SignedHead
		want error
	}{
		{"the archive's log went back", archiveHead(6, 6, n.ArchiveKey), custodian.ErrAnchorConflict},
		{"two heads at one entry", archiveHead(7, 8, n.ArchiveKey), custodian.ErrAnchorConflict},
		{"not the archive's key", archiveHead(9, 9, ed25519.NewKeyFromSeed(make([]byte, 32))), custodian.ErrRefused},
	}
	for _, r := range refusals {
		if _, err := cl.Anchor(ctx, r.head); !errors.Is(err, r.want) {
			t.Errorf("%s: %v, want %v", r.name, err, r.want)
		}
	}
	other, _ := audit.SignHead(n.ArchiveKey, "custodian/B", audit.Head{Seq: 10}, rightNow)
	var re *custodian.RefusedError
	if _, err := cl.Anchor(ctx, other); !errors.As(err, &re) || re.Code != custodian.CodeMalformed {
		t.Errorf("a head of another service: %v", err)
	}

	counts, err := cl.AuditCounts(ctx, [32]byte{42})
	if err != nil {
		t.Fatal(err)
	}
	if err := counts.Verify(aPub); err != nil || counts.Nonce != [32]byte{42} || counts.Head != c.Service.AuditHead() {
		t.Fatalf("counts %+v: %v", counts, err)
	}
	// Two anchors and the two conflicts, kept as evidence; the bad
	// signature and the wrong service left no entry.
	if counts.Kinds[audit.KindAnchor] != 2 || counts.Kinds[audit.KindAnchorConflict] != 2 || counts.Head.Seq != 4 {
		t.Fatalf("counts %v at %v", counts.Kinds, counts.Head)
	}
	if len(counts.Anchors) != 1 || counts.Anchors[0].Head.Seq != 7 || counts.Anchors[0].Verify(n.ArchiveKey.Public().(ed25519.PublicKey)) != nil {
		t.Fatalf("the archive's latest head in the counts: %+v", counts.Anchors)
	}

	// After a restart the custodian still knows the archive's last head.
	c.Close()
	c = n.StartCustodianIn(t, 0, clock, c.Dir)
	cl2, err := custodian.NewClient(c.Endpoint, n.ArchiveCert, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	if _, err := cl2.Anchor(ctx, archiveHead(6, 6, n.ArchiveKey)); !errors.Is(err, custodian.ErrAnchorConflict) {
		t.Fatalf("after restart, an older archive head: %v", err)
	}

	// A custodian without the archive's key takes no heads.
	f := newFixture(t)
	if _, err := f.cust[0].svc.Anchor(ctx, "test", archiveHead(1, 1, n.ArchiveKey)); !errors.Is(err, custodian.ErrNoArchiveKey) {
		t.Fatalf("no archive key: %v", err)
	}
}

// A custodian does not start on an audit log whose chain is broken.
func TestNewRefusesBrokenAuditLog(t *testing.T) {
	ctx := context.Background()
	n := escrowtest.New(t, 4, 2, 3)
	c := n.StartCustodian(t, 1, func() time.Time { return rightNow })
	cl, err := custodian.NewClient(c.Endpoint, n.ArchiveCert, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 3 {
		sh, _ := audit.SignHead(n.ArchiveKey, custodian.ArchiveService, audit.Head{Seq: uint64(i + 1)}, rightNow)
		if _, err := cl.Anchor(ctx, sh); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	st, err := pebble.Open(c.StoreDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, custodian.AuditBucket, fmt.Sprintf("e/%020d", 2), 0); err != nil {
		t.Fatal(err)
	}
	_, err = custodian.New(ctx, custodian.Config{Secret: n.Secrets[1], Policy: n.Policy, Root: n.Root.Public(), Store: st, ArchivePins: n.ArchivePins()})
	st.Close()
	if !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("start on a broken log: %v", err)
	}
}
