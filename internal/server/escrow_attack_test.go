package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"anom/escrow"
	"anom/identity"
	"anom/internal/archive"
	"anom/internal/audit"
	"anom/internal/custodian"
	"anom/internal/escrowtest"
	"anom/internal/store/pebble"
	"anom/internal/translog"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// attackNet is a real server (TLS on loopback, Pebble) under an escrow
// policy whose custodians and issuer come from escrowtest, under the same
// root, so that real custodians can be started. The server countersigns
// with its own root-certified key and logs it; custodians and the archive
// take it, and the senders' certificates, from the server's log.
type attackNet struct {
	*network
	esc *escrowtest.Network
}

func newAttackNet(t *testing.T) *attackNet {
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := &attackNet{esc: escrowtest.NewWithRoot(t, root, 11, 2, 3)}
	a.network = newNetworkWithRoot(t, root, func(c *Config) {
		b, err := a.esc.Policy.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		c.EscrowPolicy = b
		c.ArchiveToken = "archive-secret"
		c.AlertDir = filepath.Join(t.TempDir(), "alerts")
	})
	return a
}

// source is the server's escrow outbox and log proofs over HTTPS, as the
// archive reaches them.
func (a *attackNet) source() *archive.HTTPSource {
	src := &archive.HTTPSource{URL: "https://" + a.addr, Client: a.httpClient()}
	src.Client.Transport = bearerTransport{token: "archive-secret", base: src.Client.Transport}
	return src
}

// logged finds the server's log entry of kind with payload: its index and
// the encoded entry.
func (a *attackNet) logged(t *testing.T, kind translog.Kind, payload []byte) (uint64, []byte) {
	t.Helper()
	es, err := a.srv.tlog.Entries(context.Background(), 0, a.srv.tlog.Size())
	if err != nil {
		t.Fatal(err)
	}
	for i, raw := range es {
		e, err := translog.DecodeEntry(raw)
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind == kind && bytes.Equal(e.Payload, payload) {
			return uint64(i), raw
		}
	}
	t.Fatalf("no %v entry in the server's log", kind)
	return 0, nil
}

// loggedItem is the archive item of a logged entry, as the outbox
// forwards it.
func (a *attackNet) loggedItem(t *testing.T, ik archive.Kind, kind translog.Kind, payload []byte) archive.Item {
	idx, raw := a.logged(t, kind, payload)
	return archive.Item{Kind: ik, Data: append(binary.BigEndian.AppendUint64(nil, idx), raw...)}
}

// envelope wraps req with the server's log evidence for the entries of
// kind and payload (the senders' certificates, the countersigning key):
// inclusion proofs in the server's current tree head, and the consistency
// proof from the head of size tracked.
func (a *attackNet) envelope(t *testing.T, req *escrow.Request, tracked uint64, payloads map[translog.Kind][][]byte) *custodian.Envelope {
	t.Helper()
	var idx []uint64
	var raws [][]byte
	for kind, ps := range payloads {
		for _, p := range ps {
			i, raw := a.logged(t, kind, p)
			idx, raws = append(idx, i), append(raws, raw)
		}
	}
	p, err := a.source().ProveLog(context.Background(), idx, []uint64{tracked})
	if err != nil {
		t.Fatal(err)
	}
	env := &custodian.Envelope{Request: req}
	if err := env.TreeHead.UnmarshalBinary(p.TreeHead); err != nil {
		t.Fatal(err)
	}
	if err := env.Consistency.UnmarshalBinary(p.Consistency[0]); err != nil {
		t.Fatal(err)
	}
	for i, raw := range raws {
		l := custodian.LoggedEntry{Entry: raw}
		if err := l.Proof.UnmarshalBinary(p.Inclusion[i]); err != nil {
			t.Fatal(err)
		}
		env.Logged = append(env.Logged, l)
	}
	return env
}

// warrantFor is a warrant scoped to username, for messages from an hour
// before from to an hour after now, valid for a day.
func (a *attackNet) warrantFor(t *testing.T, id, username string, from time.Time) *escrow.SignedWarrant {
	t.Helper()
	now := a.clock.Now()
	return a.esc.Warrant(t, escrow.Warrant{ID: id, Scope: escrow.Scope{Usernames: []string{username}},
		From: from.Add(-time.Hour), To: now.Add(time.Hour), Issued: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour)})
}

// startCustodians starts the policy's three custodians on the network's
// clock.
func (a *attackNet) startCustodians(t *testing.T) ([]custodian.Endpoint, []*escrowtest.Custodian) {
	t.Helper()
	var eps []custodian.Endpoint
	var custs []*escrowtest.Custodian
	for i := range 3 {
		c := a.esc.StartCustodian(t, i, a.clock.Now)
		custs = append(custs, c)
		eps = append(eps, c.Endpoint)
	}
	return eps, custs
}

// sendText seals and sends a text as m in group g, as a client would.
func (a *attackNet) sendText(t *testing.T, m *member, g []byte, text string) {
	t.Helper()
	msg, rec := sealed(t, a.network, m, []byte(text), a.clock.Now())
	m.must(sendRecord(g, msg, signRec(t, rec, m.priv)))
}

// archive makes an archive on its own store under the network's policy.
func (a *attackNet) archive(t *testing.T) (*archive.Archive, *pebble.Store) {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	arch, err := archive.New(context.Background(), archive.Config{Store: st, Policy: a.esc.Policy, Root: a.root.Public(),
		Log: a.source(), Now: a.clock.Now, Key: a.esc.ArchiveKey, ClientCertificate: &a.esc.ArchiveCert})
	if err != nil {
		t.Fatal(err)
	}
	return arch, st
}

func ingest(t *testing.T, arch *archive.Archive, src archive.Source) {
	t.Helper()
	for {
		n, err := arch.IngestOnce(context.Background(), src, 100)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// TestAttackTransplantedRThroughServer replays the reported attack against a
// real server, archive and custodians. Bob and carol exchange messages;
// their records are archived. Mallory, a real device in a group of her own,
// then sends messages whose escrow records carry the R and ciphertext copied
// from bob's and carol's archived records, under her own metadata and
// correctly signed by her device, with every proof she can get (the
// victim's, her own honest record's) or in the old format without one.
//
//   - The server refuses to countersign every one of them (and alerts the
//     administrator); her honest message goes through.
//   - An insider server operator countersigns them anyway, with the server's
//     key. The archive refuses them at ingest (their R is bob's and
//     carol's) and notes it in its audit log; a fresh archive that never saw
//     bob's records refuses them for their proofs.
//   - Asked straight under a warrant scoped to mallory (as a colluding
//     archive operator would), every custodian refuses the request, naming
//     the transplanted record, and logs the refusal; no partial comes back.
//   - The archive opens mallory's warrant: only her own messages come out,
//     nothing of bob's or carol's.
//
// The test first shows what was at stake: two custodians' partials for
// bob's R open bob's archived record.
func TestAttackTransplantedRThroughServer(t *testing.T) {
	ctx := context.Background()
	a := newAttackNet(t)
	start := a.clock.Now()
	victims := gid("bob-carol")
	bob, carol := setupGroupOf(t, a.network, victims, "bob", "carol")
	secrets := []string{"bob: the vault code is 4711", "carol: wire it to account 99-1234", "bob: burn this after reading"}
	a.sendText(t, bob, victims, secrets[0])
	a.sendText(t, carol, victims, secrets[1])
	a.sendText(t, bob, victims, secrets[2])

	mallory := &member{client: a.activate("mallory", a.codes(1, 1)[0])}
	own := gid("mallory-own")
	mallory.bundle = mallory.keyPackage(a.network)
	var err error
	if mallory.group, err = mls.CreateGroup(mallory.mlsConfig(a.network), own, mallory.bundle, mls.GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	mallory.must(&anomv1.Frame{Body: &anomv1.Frame_CreateGroup{CreateGroup: &anomv1.CreateGroup{GroupId: own}}})
	a.sendText(t, mallory, own, "mallory: hello me")

	// The archive pulls the server's outbox over HTTPS.
	arch, archStore := a.archive(t)
	src := a.source()
	ingest(t, arch, src)
	var stolen []*escrow.ServerRecord
	for _, u := range []string{"bob", "carol"} {
		found, err := arch.Find(ctx, archive.Query{Usernames: []string{u}})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range found {
			sr, err := arch.Record(ctx, f.Slot)
			if err != nil {
				t.Fatal(err)
			}
			stolen = append(stolen, sr)
		}
	}
	if len(stolen) != 3 {
		t.Fatalf("archived %d records of bob and carol, want 3", len(stolen))
	}

	// What was at stake: partials for bob's R open bob's record.
	var parts []*escrow.Partial
	for _, sec := range a.esc.Secrets[:2] {
		p, err := sec.Share.Decrypt(rand.Reader, stolen[0].Signed.Record.R)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p)
	}
	if pt, err := escrow.Combine(a.esc.Policy.Policy, stolen[0].Signed.Record, parts); err != nil || !strings.HasPrefix(string(pt), "bob: ") {
		t.Fatalf("control: partials for bob's R do not open bob's record: %q %v", pt, err)
	}

	// From mallory's seat: her next message, with records that carry a
	// victim's R and ciphertext.
	msg, honest := sealed(t, a.network, mallory, []byte("mallory: nothing to see"), a.clock.Now())
	forge := func(victim *escrow.ServerRecord, proof *escrow.RecordProof) *escrow.Record {
		f := *honest
		f.R, f.Ciphertext, f.Proof = victim.Signed.Record.R, victim.Signed.Record.Ciphertext, proof
		return &f
	}
	var forged []*escrow.Record
	for _, v := range stolen {
		for name, proof := range map[string]*escrow.RecordProof{"victim's proof": v.Signed.Record.Proof, "her own proof": honest.Proof} {
			f := forge(v, proof)
			forged = append(forged, f)
			r := mallory.call(sendRecord(own, msg, signRec(t, f, mallory.priv)))
			if code(r) != anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD || !strings.Contains(r.GetError().GetMessage(), "proof") {
				t.Fatalf("server countersigned a transplanted R (%s): %v", name, r)
			}
		}
		// The old format, which had no proof: refused as retired.
		r := mallory.call(sendRecord(own, msg, escrowtest.LegacySigned(t, forge(v, honest.Proof), mallory.priv)))
		if code(r) != anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD || !strings.Contains(r.GetError().GetMessage(), "retired") {
			t.Fatalf("server took a version 1 record: %v", r)
		}
	}
	mallory.must(sendRecord(own, msg, signRec(t, honest, mallory.priv))) // her honest record goes through
	alerts, err := a.srv.Alerts(ctx, 1)
	if err != nil || len(alerts) != 1 || alerts[0].Kind != AlertKindBadProof || alerts[0].Sender != mallory.devHexOf() {
		t.Fatalf("alerts %+v, %v; want one bad-proof alert naming mallory's device", alerts, err)
	}
	ingest(t, arch, src)
	if found, _ := arch.Find(ctx, archive.Query{}); len(found) != 5 {
		t.Fatalf("archive holds %d records, want bob's and carol's 3 and mallory's 2", len(found))
	}

	// From an insider server operator's seat: the same records, each in a
	// slot of its own (mallory's later generations), countersigned with
	// the server's key.
	serverID := EscrowServerID(a.cfg.CountersignCert)
	var insider []*escrow.ServerRecord
	for i, f := range forged {
		f.Metadata.Generation = 1000 + uint32(i)
		signed, err := escrow.SignRecord(f, mallory.priv)
		if err != nil {
			t.Fatal(err)
		}
		sr, err := escrow.Countersign(signed, []byte(serverID), a.clock.Now(), 1<<40+uint64(i), a.cfg.Countersign.Signer())
		if err != nil {
			t.Fatal(err)
		}
		insider = append(insider, sr)
	}
	// Slipped into the archive after what it pulled: refused, R seen.
	slip := &archive.MemSource{}
	for range arch.Cursor() {
		slip.Add(archive.Item{})
	}
	if err := slip.Ack(ctx, arch.Cursor()); err != nil {
		t.Fatal(err)
	}
	for _, sr := range insider {
		b, _ := sr.MarshalBinary()
		slip.Add(archive.Item{Kind: archive.KindRecord, Data: b})
	}
	head := arch.AuditHead().Seq
	ingest(t, arch, slip)
	if got := archiveRejections(t, archStore, head); len(got) != len(insider) || !allContain(got, "reuses the R") {
		t.Fatalf("archive rejections of the insider's records: %q", got)
	}
	// A fresh archive that never saw bob's and carol's records: refused
	// for their proofs.
	fresh, freshStore := a.archive(t)
	freshSrc := &archive.MemSource{}
	freshSrc.Add(a.loggedItem(t, archive.KindOnlineKey, translog.KindOnlineKey, a.cfg.CountersignCert.Encode()),
		a.loggedItem(t, archive.KindCertificate, translog.KindDeviceCertificate, mallory.cert.Encode()))
	for _, sr := range insider {
		b, _ := sr.MarshalBinary()
		freshSrc.Add(archive.Item{Kind: archive.KindRecord, Data: b})
	}
	ingest(t, fresh, freshSrc)
	if got := archiveRejections(t, freshStore, 0); len(got) != len(insider) || !allContain(got, "record proof does not verify") {
		t.Fatalf("fresh archive rejections: %q", got)
	}
	if found, _ := fresh.Find(ctx, archive.Query{}); len(found) != 0 {
		t.Fatalf("fresh archive kept %d of the insider's records", len(found))
	}

	// Straight to the custodians under a warrant scoped to mallory.
	w := a.warrantFor(t, "W-mallory", "mallory", start)
	eps, custs := a.startCustodians(t)
	ownRecs, err := arch.Find(ctx, archive.Query{Usernames: []string{"mallory"}})
	if err != nil || len(ownRecs) != 2 {
		t.Fatalf("mallory's archived records: %d, %v", len(ownRecs), err)
	}
	genuine, err := arch.Record(ctx, ownRecs[0].Slot)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range custs {
		cl, err := custodian.NewClient(c.Endpoint, a.esc.ArchiveCert, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, sr := range insider {
			before := c.Service.AuditHead().Seq
			// With the log evidence the custodian requires, so that it
			// gets to the records.
			tracked, err := cl.TrackedSize(ctx)
			if err != nil {
				t.Fatal(err)
			}
			env := a.envelope(t, &escrow.Request{Warrant: w, Records: []*escrow.ServerRecord{genuine, sr}}, tracked,
				map[translog.Kind][][]byte{translog.KindDeviceCertificate: {mallory.cert.Encode()}, translog.KindOnlineKey: {a.cfg.CountersignCert.Encode()}})
			resp, err := cl.Ask(ctx, env)
			var re *custodian.RefusedError
			if resp != nil || !errors.As(err, &re) || re.Code != custodian.CodeBadRecordProof || re.Record != 1 || !errors.Is(err, escrow.ErrRecordProof) {
				t.Fatalf("custodian %s answered insider record %d: %v, %v", c.Service.Name(), i, resp, err)
			}
			es, err := audit.Entries(ctx, c.Store, custodian.AuditBucket, before, 0)
			if err != nil || len(es) != 2 || es[0].Kind != "request" || es[1].Kind != "refusal" ||
				!strings.Contains(string(es[1].Body), `"code":"bad_record_proof"`) || !strings.Contains(string(es[1].Body), `"record":1`) {
				t.Fatalf("custodian %s audit of the refusal: %v %v", c.Service.Name(), es, err)
			}
		}
		cl.Close()
	}

	// The archive opens mallory's warrant: her own two messages only.
	out := filepath.Join(t.TempDir(), "opened")
	rep, err := arch.Open(ctx, w, eps, out, archive.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Records) != 2 || len(rep.Failed) != 0 {
		t.Fatalf("opened %d records, %d failed; want mallory's 2", len(rep.Records), len(rep.Failed))
	}
	var opened []string
	err = filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds a victim's message: %q", path, s)
			}
		}
		if strings.HasSuffix(path, ".msg") {
			opened = append(opened, string(b))
		}
		return nil
	})
	if err != nil || len(opened) != 2 || !strings.HasPrefix(opened[0], "mallory: ") || !strings.HasPrefix(opened[1], "mallory: ") {
		t.Fatalf("opened %q, %v", opened, err)
	}
	for _, c := range custs {
		if _, err := audit.Verify(ctx, c.Store, custodian.AuditBucket); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := arch.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
}

func (c *client) devHexOf() string { return hex.EncodeToString(c.cert.DeviceID[:]) }

// archiveRejections returns the errors of an archive's "rejected" audit
// entries after seq.
func archiveRejections(t *testing.T, st *pebble.Store, after uint64) []string {
	t.Helper()
	es, err := audit.Entries(context.Background(), st, archive.AuditBucket, after, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if e.Kind != "rejected" {
			continue
		}
		var body struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(e.Body, &body); err != nil {
			t.Fatal(err)
		}
		out = append(out, body.Error)
	}
	return out
}

func allContain(ss []string, sub string) bool {
	for _, s := range ss {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestAttackBatchMateOutOfScope: a real server countersigns alice's and
// bob's concurrent messages in one batch, under one signature. The
// archive ingests both, each checked on its own; a warrant scoped to bob
// (an archive operator holding it, custodians answering it) opens bob's
// message and nothing of alice's, though her record shares his record's
// countersignature; and custodians asked to open her record under bob's
// warrant refuse it.
func TestAttackBatchMateOutOfScope(t *testing.T) {
	ctx := context.Background()
	a := newAttackNet(t)
	start := a.clock.Now()
	g := gid("alice-bob")
	alice, bob := setupGroupOf(t, a.network, g, "alice", "bob")

	// The test holds every lead of the proof batcher, so both sends queue;
	// then it hands the lead to one of them, which checks and countersigns
	// both at once.
	b := a.srv.esc.proofs
	b.mu.Lock()
	b.leaders = b.maxLeaders
	b.mu.Unlock()
	msgA, recA := sealed(t, a.network, alice, []byte("alice: not bob's business"), a.clock.Now())
	msgB, recB := sealed(t, a.network, bob, []byte("bob: under the warrant"), a.clock.Now())
	frameA, frameB := sendRecord(g, msgA, signRec(t, recA, alice.priv)), sendRecord(g, msgB, signRec(t, recB, bob.priv))
	var sentA, sentB *anomv1.Frame
	done := make(chan struct{}, 2)
	go func() { sentA = alice.call(frameA); done <- struct{}{} }()
	go func() { sentB = bob.call(frameB); done <- struct{}{} }()
	waitQueued(t, b, 2)
	b.mu.Lock()
	first := b.pending[0]
	first.leading = true
	close(first.lead)
	b.leaders = 1
	b.mu.Unlock()
	<-done
	<-done
	if sentA.GetSent() == nil || sentB.GetSent() == nil {
		t.Fatalf("sends: %v, %v", sentA, sentB)
	}

	arch, _ := a.archive(t)
	ingest(t, arch, a.source())
	found, err := arch.Find(ctx, archive.Query{})
	if err != nil || len(found) != 2 {
		t.Fatalf("archived %d records, %v; want both", len(found), err)
	}
	var recs []*escrow.ServerRecord
	for _, f := range found {
		sr, err := arch.Record(ctx, f.Slot)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, sr)
	}
	if recs[0].Batch == nil || recs[0].Batch.Size != 2 || recs[1].Batch == nil || recs[1].Batch.Size != 2 || !bytes.Equal(recs[0].Signature, recs[1].Signature) {
		t.Fatal("the two records were not countersigned in one batch")
	}
	var aliceRec *escrow.ServerRecord
	for _, sr := range recs {
		if bytes.Equal(sr.Signed.Record.Metadata.SenderDevice, alice.cert.DeviceID[:]) {
			aliceRec = sr
		}
	}

	w := a.warrantFor(t, "W-bob", "bob", start)
	eps, custs := a.startCustodians(t)
	out := filepath.Join(t.TempDir(), "opened")
	rep, err := arch.Open(ctx, w, eps, out, archive.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Records) != 1 || len(rep.Failed) != 0 || rep.Records[0].Username != "bob" {
		t.Fatalf("opened %d records (%d failed); want bob's one", len(rep.Records), len(rep.Failed))
	}
	got, err := os.ReadFile(filepath.Join(out, rep.Records[0].File))
	if err != nil || string(got) != "bob: under the warrant" {
		t.Fatalf("opened %q, %v", got, err)
	}

	// Straight to a custodian: alice's batch-mate under bob's warrant.
	cl, err := custodian.NewClient(custs[0].Endpoint, a.esc.ArchiveCert, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tracked, err := cl.TrackedSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	env := a.envelope(t, &escrow.Request{Warrant: w, Records: []*escrow.ServerRecord{aliceRec}}, tracked,
		map[translog.Kind][][]byte{translog.KindDeviceCertificate: {alice.cert.Encode()}, translog.KindOnlineKey: {a.cfg.CountersignCert.Encode()}})
	resp, err := cl.Ask(ctx, env)
	var re *custodian.RefusedError
	if resp != nil || !errors.As(err, &re) || re.Code != custodian.CodeOutOfScope {
		t.Fatalf("custodian answered alice's record under bob's warrant: %v, %v", resp, err)
	}
}
