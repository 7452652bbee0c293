package archive_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
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
	"anom/internal/store"
	"anom/internal/store/pebble"
)

// What an operator who can write a service's store does to its audit log,
// with the log's own format (entries "e/<seq>", head "head" = seq and
// hash): cut it short and rewrite the head, or rebuild it without some
// entries with every hash valid.

func auditEntries(t *testing.T, kv store.KV, bucket string) []*audit.Entry {
	t.Helper()
	var all []*audit.Entry
	for after := uint64(0); ; {
		es, err := audit.Entries(context.Background(), kv, bucket, after, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			return all
		}
		all = append(all, es...)
		after = es[len(es)-1].Seq
	}
}

func entryKey(seq uint64) string { return fmt.Sprintf("e/%020d", seq) }

func writeHead(t *testing.T, kv store.KV, bucket string, h audit.Head) {
	t.Helper()
	v := binary.BigEndian.AppendUint64(nil, h.Seq)
	if _, err := kv.Put(context.Background(), bucket, "head", append(v, h.Hash[:]...)); err != nil {
		t.Fatal(err)
	}
}

func entryHash(t *testing.T, e *audit.Entry) [32]byte {
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return audit.Hash(b)
}

// truncateLog keeps entries 1..keep and rewrites the head to match.
func truncateLog(t *testing.T, kv store.KV, bucket string, keep uint64) {
	t.Helper()
	var head audit.Head
	for _, e := range auditEntries(t, kv, bucket) {
		if e.Seq <= keep {
			head = audit.Head{Seq: e.Seq, Hash: entryHash(t, e)}
			continue
		}
		if err := kv.Delete(context.Background(), bucket, entryKey(e.Seq), 0); err != nil {
			t.Fatal(err)
		}
	}
	writeHead(t, kv, bucket, head)
}

// rechainLog rebuilds the log without the entries drop selects, renumbered
// and re-linked with valid hashes, and rewrites the head.
func rechainLog(t *testing.T, kv store.KV, bucket string, drop func(*audit.Entry) bool) int {
	t.Helper()
	ctx := context.Background()
	all := auditEntries(t, kv, bucket)
	for _, e := range all {
		if err := kv.Delete(ctx, bucket, entryKey(e.Seq), 0); err != nil {
			t.Fatal(err)
		}
	}
	var cur audit.Head
	dropped := 0
	for _, e := range all {
		if drop(e) {
			dropped++
			continue
		}
		e.Seq, e.Prev = cur.Seq+1, cur.Hash
		b, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, bucket, entryKey(e.Seq), b); err != nil {
			t.Fatal(err)
		}
		cur = audit.Head{Seq: e.Seq, Hash: audit.Hash(b)}
	}
	writeHead(t, kv, bucket, cur)
	return dropped
}

func warrantOf(e *audit.Entry) string {
	var b struct {
		ID string `json:"warrant_id"`
	}
	_ = json.Unmarshal(e.Body, &b)
	return b.ID
}

// openWarrant opens a warrant for alice's window through the archive.
func openWarrant(t *testing.T, e *env, id string, eps []custodian.Endpoint) *archive.OpenReport {
	t.Helper()
	w := e.net.Warrant(t, escrow.Warrant{ID: id, Scope: escrow.Scope{Usernames: []string{"alice"}}, From: t0, To: t0.Add(time.Hour)})
	rep, err := e.arch.Open(context.Background(), w, eps, filepath.Join(t.TempDir(), "out"), archive.OpenOptions{Chunk: 5})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// anchoredIn returns the heads of service anchored in a log.
func anchoredIn(t *testing.T, kv store.KV, bucket, service string) []*audit.SignedHead {
	t.Helper()
	sum, err := audit.Check(context.Background(), kv, bucket, audit.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*audit.SignedHead
	for _, h := range sum.Anchored {
		if h.Service == service {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no head of %s anchored in %s", service, bucket)
	}
	return out
}

func wantAnchoredTamper(t *testing.T, what string, err error) {
	t.Helper()
	var te *audit.TamperError
	if !errors.As(err, &te) || !errors.Is(err, audit.ErrTampered) || !te.Anchored {
		t.Fatalf("%s: %v, want the anchored head to expose the tampering", what, err)
	}
}

func report(t *testing.T, e *env, eps []custodian.Endpoint) *archive.TransparencyReport {
	t.Helper()
	rep, err := e.arch.Report(context.Background(), archive.Period{}, archive.ReportOptions{Custodians: eps})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func wantDiscrepancy(t *testing.T, rep *archive.TransparencyReport, substr string) {
	t.Helper()
	for _, d := range rep.Discrepancies {
		if strings.Contains(d, substr) {
			if !strings.Contains(rep.Text(), "DISCREPANCIES") || !strings.Contains(rep.Text(), d) {
				t.Fatalf("the report's text does not show the discrepancy:\n%s", rep.Text())
			}
			return
		}
	}
	t.Fatalf("no discrepancy mentions %q; report:\n%s", substr, rep.Text())
}

// TestAttackTruncateCustodianAudit: custodian A's operator cuts the last
// opening's requests and answers out of A's audit log and rewrites its head
// so the chain verifies. The heads of A's log anchored in the archive's
// log, and a head of A's that someone kept, expose it; so do the archive's
// next anchoring and its report, once A runs again on the cut log.
func TestAttackTruncateCustodianAudit(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ingestAll(t)
	eps := e.startCustodians(t)
	openWarrant(t, e, "W-1", eps)
	a := e.cust[0]
	before := a.Service.AuditHead() // where the operator will cut back to
	openWarrant(t, e, "W-2", eps)
	kept, err := a.Service.SignedAuditHead() // an auditor asked A for its head
	if err != nil {
		t.Fatal(err)
	}
	if rep := report(t, e, eps); len(rep.Discrepancies) != 0 {
		t.Fatalf("honest logs have discrepancies: %v", rep.Discrepancies)
	}
	aKey := e.net.Policy.Policy.Custodians[0].Key
	anchorsOfA := anchoredIn(t, e.st, archive.AuditBucket, "custodian/A") // `anom archive anchors`

	// The attack, from the custodian operator's seat.
	a.Close()
	st, err := pebble.Open(a.StoreDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	truncateLog(t, st, custodian.AuditBucket, before.Seq)
	if h, err := audit.Verify(ctx, st, custodian.AuditBucket); err != nil || h.Seq != before.Seq {
		t.Fatalf("the cut log should still verify on its own (the weakness): %v, %v", h, err)
	}
	// verify-audit with the archive's anchors, and with the kept head.
	_, err = audit.CheckSigned(ctx, st, custodian.AuditBucket, "custodian/A", aKey, anchorsOfA)
	wantAnchoredTamper(t, "custodian A's log against the archive's anchors", err)
	_, err = audit.CheckSigned(ctx, st, custodian.AuditBucket, "custodian/A", aKey, []*audit.SignedHead{kept})
	wantAnchoredTamper(t, "custodian A's log against a kept head", err)
	// A forged "kept head" does not pass for one.
	forged, _ := audit.SignHead(e.net.ArchiveKey, "custodian/A", kept.Head, rightNow)
	if _, err := audit.CheckSigned(ctx, st, custodian.AuditBucket, "custodian/A", aKey, []*audit.SignedHead{forged}); !errors.Is(err, audit.ErrBadSignature) {
		t.Fatalf("a head not signed by A: %v", err)
	}
	st.Close()

	// A runs again on the cut log: the archive sees its log went back.
	e.cust[0] = e.net.StartCustodianIn(t, 0, clock, a.Dir)
	eps[0] = e.cust[0].Endpoint
	rep := report(t, e, eps)
	wantDiscrepancy(t, rep, "custodian A: its log went back")
	res, err := e.arch.Anchor(ctx, eps, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, custodian.ErrAnchorConflict) || res[1].Err != nil || res[2].Err != nil {
		t.Fatalf("anchoring with the cut log: %+v", res)
	}
}

// TestAttackRechainArchiveAudit: the archive's operator hides the second
// opening from the transparency report, by cutting the archive's log back
// and rewriting its head, or by rebuilding the whole log without that
// opening's entries with valid hashes. The archive's heads anchored in
// the custodians' logs, and the signed head printed in an earlier
// published report, expose both; so do the custodians, at the next
// anchoring and in the report.
func TestAttackRechainArchiveAudit(t *testing.T) {
	attacks := []struct {
		name   string
		tamper func(t *testing.T, kv store.KV)
	}{
		{"truncate and rewrite the head", func(t *testing.T, kv store.KV) {
			for _, en := range auditEntries(t, kv, archive.AuditBucket) {
				if en.Kind == "warrant" && warrantOf(en) == "W-2" {
					truncateLog(t, kv, archive.AuditBucket, en.Seq-1)
					return
				}
			}
			t.Fatal("no entry of W-2")
		}},
		{"re-chain without the opening", func(t *testing.T, kv store.KV) {
			n := rechainLog(t, kv, archive.AuditBucket, func(en *audit.Entry) bool { return warrantOf(en) == "W-2" })
			if n < 4 {
				t.Fatalf("dropped %d entries of W-2", n)
			}
		}},
	}
	for _, at := range attacks {
		t.Run(at.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			e.ingestAll(t)
			eps := e.startCustodians(t)
			openWarrant(t, e, "W-1", eps)
			openWarrant(t, e, "W-2", eps)
			published := report(t, e, eps)
			if len(published.Discrepancies) != 0 || len(published.Warrants) != 2 {
				t.Fatalf("honest report: %+v", published)
			}
			kept, err := audit.ParseSignedHeadText(published.SignedHead)
			if err != nil {
				t.Fatal(err)
			}

			// The attack, from the archive operator's seat.
			e.st.Close()
			st, err := pebble.Open(e.dir, pebble.Options{})
			if err != nil {
				t.Fatal(err)
			}
			at.tamper(t, st)
			st.Close()
			openArchive(t, e)
			if _, err := e.arch.VerifyAudit(ctx); err != nil {
				t.Fatalf("the rewritten log should still verify on its own (the weakness): %v", err)
			}
			if r, err := e.arch.Report(ctx, archive.Period{}, archive.ReportOptions{}); err != nil || len(r.Warrants) != 1 {
				t.Fatalf("the report without the custodians should now show one warrant: %+v, %v", r, err)
			}

			// verify-audit with each custodian's anchors (`anom custodian
			// anchors`), and with the head of the published report.
			for i, c := range e.cust {
				_, err := e.arch.VerifyAuditAgainst(ctx, anchoredIn(t, c.Store, custodian.AuditBucket, custodian.ArchiveService))
				wantAnchoredTamper(t, fmt.Sprintf("the archive's log against custodian %d's anchors", i), err)
			}
			_, err = e.arch.VerifyAuditAgainst(ctx, []*audit.SignedHead{kept})
			wantAnchoredTamper(t, "the archive's log against the published head", err)

			// The custodians, asked for their counts, hold a later head of
			// the archive's log than it now has.
			rep := report(t, e, eps)
			wantDiscrepancy(t, rep, "custodian A holds the archive's signed head")
			wantDiscrepancy(t, rep, "custodian C holds the archive's signed head")
			// And they refuse its head at the next anchoring.
			res, err := e.arch.Anchor(ctx, eps, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if !errors.Is(r.Err, custodian.ErrAnchorConflict) {
					t.Errorf("custodian %d took the rewritten log's head: %v", i, r.Err)
				}
			}
		})
	}
}

// TestAttackBypassArchive: someone with a valid warrant (and the records)
// asks custodians A and B directly, not through the archive: they answer,
// and the archive's log knows nothing of it. The archive's report, from the
// custodians' signed counts, shows the requests that did not come from it;
// the regular traffic (answers, a refusal, a custodian down for a while)
// shows none.
func TestAttackBypassArchive(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ingestAll(t)
	eps := e.startCustodians(t)
	openWarrant(t, e, "W-1", eps)
	// A refusal: W-2 is revoked at C, so C refuses and another answers.
	if err := e.cust[2].Revoked.Revoke("W-2", "withdrawn"); err != nil {
		t.Fatal(err)
	}
	w2 := e.net.Warrant(t, escrow.Warrant{ID: "W-2", Scope: escrow.Scope{Groups: [][]byte{grpCD}}, From: t0, To: t0.Add(time.Hour)})
	if _, err := e.arch.Open(ctx, w2, []custodian.Endpoint{eps[2], eps[0], eps[1]}, filepath.Join(t.TempDir(), "o"), archive.OpenOptions{}); err != nil {
		t.Fatal(err)
	}
	// B down for one opening: asked, never reached.
	e.cust[1].Close()
	openWarrant(t, e, "W-3", eps)
	e.cust[1] = e.net.StartCustodianIn(t, 1, clock, e.cust[1].Dir)
	eps[1] = e.cust[1].Endpoint
	rep := report(t, e, eps)
	if len(rep.Discrepancies) != 0 {
		t.Fatalf("regular traffic shows discrepancies:\n%s", rep.Text())
	}
	for _, c := range rep.Custodians {
		if c.Error != "" || c.Requests == 0 || c.Statement == "" {
			t.Fatalf("custodian line %+v", c)
		}
	}

	// The attack: a request straight to A and B, with a valid warrant.
	w := e.net.Warrant(t, escrow.Warrant{ID: "W-side", Scope: escrow.Scope{Usernames: []string{"alice"}}, From: t0, To: t0.Add(time.Hour)})
	found, err := e.arch.Find(ctx, archive.Query{Usernames: []string{"alice"}, From: t0, To: t0.Add(time.Hour)})
	if err != nil || len(found) == 0 {
		t.Fatal(err)
	}
	sr, err := e.arch.Record(ctx, found[0].Slot)
	if err != nil {
		t.Fatal(err)
	}
	req := &escrow.Request{Warrant: w, Records: []*escrow.ServerRecord{sr}}
	askDirect(t, e, req, eps[:2])

	rep = report(t, e, eps)
	wantDiscrepancy(t, rep, "custodian A logged")
	wantDiscrepancy(t, rep, "custodian B logged")
	for _, d := range rep.Discrepancies {
		if strings.Contains(d, "custodian C") {
			t.Errorf("C was not asked, but: %s", d)
		}
	}
	if !strings.Contains(strings.Join(rep.Discrepancies, "\n"), "1 did not come through this archive") {
		t.Fatalf("discrepancies %q", rep.Discrepancies)
	}
	// The statements in the report verify under the custodians' keys.
	for _, c := range rep.Custodians {
		counts := parseStatement(t, c.Statement)
		key := e.net.Policy.Policy.Custodians[int(c.Name[0]-'A')].Key
		if err := counts.Verify(ed25519.PublicKey(key)); err != nil || counts.Kinds["request"] != c.Requests {
			t.Fatalf("statement of %s: %v", c.Name, err)
		}
	}
}

// askDirect sends req straight to the custodians at eps, as an archive
// operator bypassing the archive's log would.
func askDirect(t *testing.T, e *env, req *escrow.Request, eps []custodian.Endpoint) {
	t.Helper()
	ctx := context.Background()
	for _, ep := range eps {
		cl, err := custodian.NewClient(ep, e.net.ArchiveCert, 0)
		if err != nil {
			t.Fatal(err)
		}
		// With the log evidence, from the head the custodian tracks.
		tracked, err := cl.TrackedSize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Ask(ctx, e.net.Envelope(t, req, tracked)); err != nil {
			t.Fatalf("the custodian should answer a valid warrant (the bypass is detected, not prevented): %v", err)
		}
		cl.Close()
	}
}

// padArchiveLog appends, as whoever can write the archive's store, an ask
// and an answer for each named custodian, under the warrant of hash wh.
func padArchiveLog(t *testing.T, e *env, wh string, eps []custodian.Endpoint, names ...string) {
	t.Helper()
	ctx := context.Background()
	e.st.Close()
	st, err := pebble.Open(e.dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(ctx, st, archive.AuditBucket, clock)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		ev := map[string]any{"request_hash": fmt.Sprintf("%064x", i+1), "warrant_hash": wh, "custodian": eps[i].String(), "name": name}
		for _, kind := range []string{"ask", "answer"} {
			if err := l.AppendJSON(ctx, kind, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	st.Close()
	openArchive(t, e)
}

// TestAttackBypassArchivePadded: the archive's operator asks custodians
// directly under a warrant it wants hidden, then pads the archive's log
// with asks and answers so that every custodian's totals match. The
// custodians' counts per warrant still show the requests that did not come
// through the archive, and a warrant its log never names.
func TestAttackBypassArchivePadded(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ingestAll(t)
	eps := e.startCustodians(t)
	w1 := openWarrant(t, e, "W-1", eps)
	if rep := report(t, e, eps); len(rep.Discrepancies) != 0 {
		t.Fatalf("regular traffic shows discrepancies:\n%s", rep.Text())
	}

	hidden := e.net.Warrant(t, escrow.Warrant{ID: "W-hidden", Scope: escrow.Scope{Usernames: []string{"alice"}}, From: t0, To: t0.Add(time.Hour)})
	hh, err := hidden.Hash()
	if err != nil {
		t.Fatal(err)
	}
	found, err := e.arch.Find(ctx, archive.Query{Usernames: []string{"alice"}, From: t0, To: t0.Add(time.Hour)})
	if err != nil || len(found) == 0 {
		t.Fatal(err)
	}
	sr, err := e.arch.Record(ctx, found[0].Slot)
	if err != nil {
		t.Fatal(err)
	}
	askDirect(t, e, &escrow.Request{Warrant: hidden, Records: []*escrow.ServerRecord{sr}}, eps[:2])

	// Padding under a warrant the archive did log: the totals match.
	padArchiveLog(t, e, w1.WarrantHash, eps, "A", "B")
	rep := report(t, e, eps)
	all := strings.Join(rep.Discrepancies, "\n")
	if strings.Contains(all, "requests, the archive sent it") {
		t.Fatalf("the padding should have evened the totals (the attack's premise):\n%s", all)
	}
	for _, name := range []string{"A", "B"} {
		wantDiscrepancy(t, rep, fmt.Sprintf("custodian %s logged 1 requests under warrant hash %x, which the archive's log never names, the archive sent it 0", name, hh))
	}
	if strings.Contains(all, "custodian C") {
		t.Errorf("C was not asked, but:\n%s", all)
	}

	// Padding under the hidden warrant itself: its counts match, but the
	// archive's log never names the warrant.
	padArchiveLog(t, e, fmt.Sprintf("%x", hh), eps, "A", "B")
	rep = report(t, e, eps)
	for _, name := range []string{"A", "B"} {
		wantDiscrepancy(t, rep, fmt.Sprintf("custodian %s logged 1 requests under warrant hash %x, which the archive's log never names", name, hh))
	}
}

func parseStatement(t *testing.T, s string) *audit.Counts {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	c, err := audit.ParseCounts(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestOpenInterruptedIsLogged: an opening cut off midway (its context
// cancelled after the first records were written out) still logs the
// records it opened, so the report counts them.
func TestOpenInterruptedIsLogged(t *testing.T) {
	e := newEnv(t)
	e.ingestAll(t)
	eps := e.startCustodians(t)
	w := e.net.Warrant(t, escrow.Warrant{ID: "W-cut", Scope: escrow.Scope{Usernames: []string{"alice"}}, From: t0, To: t0.Add(time.Hour)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var total int
	progress := func(opened, failed, n int) {
		total = n
		if opened > 0 {
			cancel()
		}
	}
	rep, err := e.arch.Open(ctx, w, eps, filepath.Join(t.TempDir(), "out"), archive.OpenOptions{Chunk: 1, Progress: progress})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("an opening cancelled midway: %v", err)
	}
	if rep == nil || len(rep.Records) == 0 || len(rep.Records) >= total {
		t.Fatalf("opened %v of %d before the cut, want some but not all", rep, total)
	}
	r, err := e.arch.Report(context.Background(), archive.Period{}, archive.ReportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Warrants) != 1 || r.Warrants[0].Opens != 1 || r.Warrants[0].Records != len(rep.Records) {
		t.Fatalf("the report does not count the %d records opened before the cut: %+v", len(rep.Records), r.Warrants)
	}
}

// TestReportFlagsLogFork: a custodian shown a tree head it cannot see
// extend the one it tracks (here a broken consistency proof; a split view
// of the log looks the same to it) keeps the evidence, and the archive's
// report shows it as a discrepancy.
func TestReportFlagsLogFork(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ingestAll(t)
	eps := e.startCustodians(t)
	openWarrant(t, e, "W-1", eps)
	e.net.Device(t, "zoe-new") // the log grows past what the custodians track
	w := e.net.Warrant(t, escrow.Warrant{ID: "W-2", Scope: escrow.Scope{Usernames: []string{"alice"}}, From: t0, To: t0.Add(time.Hour)})
	found, err := e.arch.Find(ctx, archive.Query{Usernames: []string{"alice"}, From: t0, To: t0.Add(time.Hour)})
	if err != nil || len(found) == 0 {
		t.Fatal(err)
	}
	sr, err := e.arch.Record(ctx, found[0].Slot)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := custodian.NewClient(eps[0], e.net.ArchiveCert, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tracked, err := cl.TrackedSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	env := e.net.Envelope(t, &escrow.Request{Warrant: w, Records: []*escrow.ServerRecord{sr}}, tracked)
	if len(env.Consistency.Path) == 0 {
		t.Fatalf("no consistency path from %d to %d", tracked, env.TreeHead.Size)
	}
	env.Consistency.Path[0][0] ^= 1
	if _, err := cl.Ask(ctx, env); !errors.Is(err, custodian.ErrLogEvidence) {
		t.Fatalf("a head not shown to extend the tracked one: %v", err)
	}
	rep := report(t, e, eps)
	wantDiscrepancy(t, rep, "custodian A was shown 1 tree heads, signed by the network's directory key, that do not extend the one it tracks")
	for _, c := range rep.Custodians {
		if (c.Name == "A") != (c.LogForks == 1) {
			t.Fatalf("custodian line %+v", c)
		}
	}
}
