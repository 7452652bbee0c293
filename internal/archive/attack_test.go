package archive_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"anom/escrow"
	"anom/internal/archive"
	"anom/internal/audit"
	"anom/internal/custodian"
)

// continueSource is a source whose cursor starts after the archive's.
func continueSource(t *testing.T, e *env) *archive.MemSource {
	t.Helper()
	src := &archive.MemSource{}
	for range e.arch.Cursor() {
		src.Add(archive.Item{})
	}
	if err := src.Ack(context.Background(), e.arch.Cursor()); err != nil {
		t.Fatal(err)
	}
	return src
}

func ingestFrom(t *testing.T, e *env, src archive.Source) {
	t.Helper()
	for {
		n, err := e.arch.IngestOnce(context.Background(), src, 50)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// rejections returns the error of every "rejected" audit entry after seq.
func rejections(t *testing.T, e *env, after uint64) []string {
	t.Helper()
	es, err := audit.Entries(context.Background(), e.st, archive.AuditBucket, after, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, en := range es {
		if en.Kind != "rejected" {
			continue
		}
		var body struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(en.Body, &body); err != nil {
			t.Fatal(err)
		}
		out = append(out, body.Error)
	}
	return out
}

// TestAttackArchiveRefusesSeenR: the archive keeps one record per R. A
// record that carries the R of a record it holds (bob's, copied under
// mallory's metadata and countersigned by an insider server, with bob's
// proof or with mallory's own), or the R of another record of the same
// batch, is refused at ingest and noted in the audit log; so is a record
// with a fresh R whose proof does not hold. Mallory's honest record is
// kept, and a query for her finds only it.
func TestAttackArchiveRefusesSeenR(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ingestAll(t)
	mallory := e.net.Device(t, "mallory")
	bobs, err := e.arch.Find(ctx, archive.Query{Usernames: []string{"bob"}})
	if err != nil || len(bobs) == 0 {
		t.Fatalf("bob's records: %d, %v", len(bobs), err)
	}
	bob, err := e.arch.Record(ctx, bobs[0].Slot)
	if err != nil {
		t.Fatal(err)
	}
	honest := e.record(t, "mallory", grpCD, t0.Add(time.Minute), []byte("mallory's own message"), 1)
	other := e.record(t, "mallory", grpCD, t0.Add(2*time.Minute), []byte("another of hers"), 1)
	// transplant signs, as mallory, a record of her next slot that carries
	// R (and the ciphertext and proof given), countersigned by the server.
	transplant := func(R *escrow.Record, proof *escrow.RecordProof) *escrow.ServerRecord {
		own, err := e.net.Seal(mallory, grpCD, t0.Add(3*time.Minute), []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		own.R, own.Ciphertext, own.Proof = R.R, R.Ciphertext, proof
		sr, err := e.net.Sign(mallory, own, t0.Add(3*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		return sr
	}
	b := bob.Signed.Record
	badFresh := *other.Signed.Record
	badFresh.Proof = honest.Signed.Record.Proof // a fresh R, another record's proof
	badFreshSR, err := e.net.Sign(mallory, &badFresh, t0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}

	src := continueSource(t, e)
	src.Add(e.net.CertificateItem(t, mallory))
	src.Add(item(t, transplant(b, b.Proof)), // bob's R with bob's proof
		item(t, transplant(b, honest.Signed.Record.Proof)), // bob's R with mallory's proof
		item(t, honest),
		item(t, transplant(honest.Signed.Record, honest.Signed.Record.Proof)), // her own R again, same batch
		item(t, badFreshSR))
	head := e.arch.AuditHead().Seq
	ingestFrom(t, e, src)

	got := rejections(t, e, head)
	want := []string{"reuses the R", "reuses the R", "reuses the R", "record proof does not verify"}
	if len(got) != len(want) {
		t.Fatalf("rejections %q, want %d", got, len(want))
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Fatalf("rejection %d is %q, want one saying %q", i, got[i], w)
		}
	}
	if !strings.Contains(got[0], hex.EncodeToString(bobs[0].Slot[:])) {
		t.Fatalf("rejection does not name bob's slot: %q", got[0])
	}
	found, err := e.arch.Find(ctx, archive.Query{Usernames: []string{"mallory"}})
	if err != nil || len(found) != 1 {
		t.Fatalf("mallory's archived records: %d, %v; want her honest one", len(found), err)
	}
	if kept, err := e.arch.Record(ctx, found[0].Slot); err != nil || !kept.Signed.Record.R.IsEqual(honest.Signed.Record.R) {
		t.Fatalf("kept %v, %v", kept, err)
	}
	if _, err := e.arch.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
	// Redelivering bob's own record is still a duplicate, not a reuse.
	src2 := continueSource(t, e)
	src2.Add(item(t, bob))
	head = e.arch.AuditHead().Seq
	ingestFrom(t, e, src2)
	if r := rejections(t, e, head); len(r) != 0 {
		t.Fatalf("redelivery rejected: %q", r)
	}
}

// TestOpenRetiredRecords: an archive from before the cut-over holds a
// record of the retired format version 1 (without a proof). A warrant that
// covers it opens the other records and lists it as failed with
// ErrRetiredRecord; it is never sent to the custodians. The archive also
// refuses such records at ingest.
func TestOpenRetiredRecords(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ingestAll(t)
	alice := e.net.Device(t, "alice")
	old, slot := e.net.LegacyMessage(t, alice, grpAB, t0.Add(30*time.Second), []byte("before the cut-over"))
	if _, err := escrow.ParseServerRecord(old); !errors.Is(err, escrow.ErrRetiredRecord) {
		t.Fatalf("legacy fixture: %v", err)
	}
	// Refused at ingest, with an audit note.
	src := continueSource(t, e)
	src.Add(archive.Item{Kind: archive.KindRecord, Data: old})
	head := e.arch.AuditHead().Seq
	ingestFrom(t, e, src)
	if r := rejections(t, e, head); len(r) != 1 || !strings.Contains(r[0], "retired") {
		t.Fatalf("rejections of a version 1 record: %q", r)
	}
	// As an archive of an earlier version stored it (records bucket and
	// the three indexes).
	sh := hex.EncodeToString(slot[:])
	ms := fmt.Sprintf("%016x", t0.Add(30*time.Second).UnixMilli())
	gsum := sha256.Sum256(grpAB)
	gh := hex.EncodeToString(gsum[:])
	for _, kv := range [][3]string{
		{"archive-records", "r/" + sh, "\x00" + string(old)},
		{"archive-index", "d/" + hex.EncodeToString(alice.Cert.DeviceID[:]) + "/" + ms + "/" + sh, ""},
		{"archive-index", "g/" + gh + "/" + ms + "/" + sh, ""},
		{"archive-index", "t/" + ms + "/" + sh, ""},
	} {
		if _, err := e.st.Put(ctx, kv[0], kv[1], []byte(kv[2])); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.arch.Record(ctx, slot); !errors.Is(err, escrow.ErrRetiredRecord) {
		t.Fatalf("loading the stored version 1 record: %v", err)
	}
	eps := e.startCustodians(t)
	w := e.net.Warrant(t, escrow.Warrant{ID: "W-cut", Scope: escrow.Scope{Usernames: []string{"alice"}}, From: t0, To: t0.Add(time.Hour)})
	rep, err := e.arch.Open(ctx, w, eps, filepath.Join(t.TempDir(), "out"), archive.OpenOptions{})
	if !errors.Is(err, escrow.ErrRetiredRecord) || rep == nil {
		t.Fatalf("Open over a version 1 record = %v", err)
	}
	if len(rep.Records) != len(e.inPts) || len(rep.Failed) != 1 || rep.Failed[0].Slot != sh || !strings.Contains(rep.Failed[0].Error, "retired") {
		t.Fatalf("opened %d (want %d), failed %+v", len(rep.Records), len(e.inPts), rep.Failed)
	}
	for _, c := range e.cust {
		es, err := audit.Entries(ctx, c.Store, custodian.AuditBucket, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range es {
			if strings.Contains(string(en.Body), sh) {
				t.Fatalf("custodian %s was sent the version 1 record: %s", c.Service.Name(), en.Body)
			}
		}
	}
}
