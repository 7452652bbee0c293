package archive_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"anom/escrow"
	"anom/internal/archive"
	"anom/internal/custodian"
	"anom/internal/escrowtest"
	"anom/internal/store"
	"anom/internal/store/pebble"
)

var (
	t0       = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	grpAB    = []byte("group-alice-bob")
	grpCD    = []byte("group-carol-dave")
	rightNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	clock    = func() time.Time { return rightNow }
)

// sealedAttachments is the test's content format: a plaintext
// "ATT <blob id> <hex key>" (content type 2) refers to a blob that is the
// attachment sealed with AES-GCM under key and a zero nonce.
type sealedAttachments struct{}

func (sealedAttachments) Attachments(ct uint16, pt []byte) ([]archive.Attachment, error) {
	if ct != 2 {
		return nil, nil
	}
	f := strings.Fields(string(pt))
	if len(f) != 3 || f[0] != "ATT" {
		return nil, fmt.Errorf("bad attachment reference")
	}
	key, err := hex.DecodeString(f[2])
	if err != nil {
		return nil, err
	}
	return []archive.Attachment{{BlobID: f[1], Open: func(dst io.Writer, src io.Reader) error {
		sealed, err := io.ReadAll(src)
		if err != nil {
			return err
		}
		pt, err := gcm(key).Open(nil, make([]byte, 12), sealed, nil)
		if err != nil {
			return err
		}
		_, err = dst.Write(pt)
		return err
	}}}, nil
}

func gcm(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return a
}

type env struct {
	net   *escrowtest.Network
	src   *archive.MemSource
	dir   string
	st    store.Store
	arch  *archive.Archive
	cust  []*escrowtest.Custodian
	inPts map[string][]byte // file content expected, by slot hex
	allPt [][]byte          // every plaintext sealed, for the at-rest scan
}

func openArchive(t *testing.T, e *env) {
	t.Helper()
	st, err := pebble.Open(e.dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	e.arch, err = archive.New(context.Background(), archive.Config{Store: st, Policy: e.net.Policy, Root: e.net.Root.Public(),
		Log: e.net, Attachments: sealedAttachments{}, Now: clock, Key: e.net.ArchiveKey, ClientCertificate: &e.net.ArchiveCert})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) record(t *testing.T, user string, group []byte, at time.Time, pt []byte, ct uint16) *escrow.ServerRecord {
	dev := e.net.Device(t, user)
	rec, err := e.net.Seal(dev, group, at, pt)
	if err != nil {
		t.Fatal(err)
	}
	rec.Metadata.ContentType = ct
	// Re-seal with the content type (Seal fixed ContentType 1).
	rec, err = escrow.Seal(e.net.Policy.Policy.EscrowKey, escrowtest.Exporter(group, 1), rec.Metadata, pt)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := e.net.Sign(dev, rec, at)
	if err != nil {
		t.Fatal(err)
	}
	e.allPt = append(e.allPt, pt)
	return sr
}

func item(t *testing.T, sr *escrow.ServerRecord) archive.Item {
	b, err := sr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return archive.Item{Kind: archive.KindRecord, Data: b}
}

func slotHex(t *testing.T, sr *escrow.ServerRecord) string {
	s, err := sr.Signed.Record.Metadata.Slot()
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(s[:])
}

// newEnv fills a source with alice's, bob's, carol's and dave's messages,
// some inside alice's warrant window, and an attachment.
func newEnv(t *testing.T) *env {
	e := &env{net: escrowtest.New(t, 7, 2, 3), src: &archive.MemSource{}, dir: t.TempDir(), inPts: map[string][]byte{}}
	e.src.Add(e.net.CountersignItem(t))
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		e.src.Add(e.net.CertificateItem(t, e.net.Device(t, u)))
	}
	attKey := bytes.Repeat([]byte{0x42}, 16)
	attPlain := []byte("PHOTO-BYTES: a picture of the harbour at dawn")
	e.allPt = append(e.allPt, attPlain)
	e.src.Add(archive.Item{Kind: archive.KindBlob, BlobID: "blob-1", Data: gcm(attKey).Seal(nil, make([]byte, 12), attPlain, nil)})
	for i := range 30 {
		at := t0.Add(time.Duration(i-10) * 5 * time.Minute) // from t0-50m to t0+95m
		for _, u := range []string{"alice", "bob", "carol"} {
			g := grpAB
			if u == "carol" {
				g = grpCD
			}
			pt := []byte(fmt.Sprintf("message %d from %s: secret-%s-%d", i, u, u, i))
			ct := uint16(1)
			if u == "alice" && i == 12 {
				pt = []byte("ATT blob-1 " + hex.EncodeToString(attKey))
				ct = 2
			}
			sr := e.record(t, u, g, at, pt, ct)
			if u == "alice" && !at.Before(t0) && at.Before(t0.Add(time.Hour)) {
				e.inPts[slotHex(t, sr)] = pt
			}
			e.src.Add(item(t, sr))
		}
	}
	openArchive(t, e)
	t.Cleanup(func() { e.st.Close() })
	return e
}

func (e *env) ingestAll(t *testing.T) {
	t.Helper()
	for {
		n, err := e.arch.IngestOnce(context.Background(), e.src, 7)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func (e *env) startCustodians(t *testing.T) []custodian.Endpoint {
	var eps []custodian.Endpoint
	for i := range 3 {
		c := e.net.StartCustodian(t, i, clock)
		e.cust = append(e.cust, c)
		eps = append(eps, c.Endpoint)
	}
	return eps
}

func TestIngestQueryAndResume(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	// Half, then "crash" (reopen on the same store), then the rest.
	for range 5 {
		if _, err := e.arch.IngestOnce(ctx, e.src, 7); err != nil {
			t.Fatal(err)
		}
	}
	if e.src.Acked() != e.arch.Cursor() || e.arch.Cursor() != 35 {
		t.Fatalf("acked %d, archive cursor %d, want 35", e.src.Acked(), e.arch.Cursor())
	}
	e.st.Close()
	openArchive(t, e)
	if e.arch.Cursor() != 35 {
		t.Fatalf("cursor after reopen %d", e.arch.Cursor())
	}
	e.ingestAll(t)
	if e.src.Acked() != 96 {
		t.Fatalf("acked %d, want 96 (the countersigning key, 4 certificates, a blob, 90 records)", e.src.Acked())
	}
	alice := e.net.Device(t, "alice").Cert.DeviceID[:]
	tests := []struct {
		name string
		q    archive.Query
		want int
	}{
		{"all", archive.Query{}, 90},
		{"alice by username", archive.Query{Usernames: []string{"alice"}}, 30},
		{"alice by device", archive.Query{Devices: [][]byte{alice}}, 30},
		{"alice in window", archive.Query{Usernames: []string{"alice"}, From: t0, To: t0.Add(time.Hour)}, 12},
		{"group ab", archive.Query{Groups: [][]byte{grpAB}}, 60},
		{"group cd or alice", archive.Query{Groups: [][]byte{grpCD}, Usernames: []string{"alice"}}, 60},
		{"time only", archive.Query{From: t0, To: t0.Add(10 * time.Minute)}, 6},
		{"nobody", archive.Query{Usernames: []string{"mallory"}}, 0},
	}
	for _, tc := range tests {
		got, err := e.arch.Find(ctx, tc.q)
		if err != nil || len(got) != tc.want {
			t.Errorf("%s: %d records (%v), want %d", tc.name, len(got), err, tc.want)
		}
	}
}

func TestIngestDuplicatesAndBadItems(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ingestAll(t)
	before, _ := e.arch.Find(ctx, archive.Query{})
	head := e.arch.AuditHead().Seq
	// Redeliver every record (a source that lost its acknowledgements),
	// plus a forged second record for an archived slot and garbage.
	// The source continues after the archive's cursor.
	src := &archive.MemSource{}
	for range e.arch.Cursor() {
		src.Add(archive.Item{})
	}
	if err := src.Ack(ctx, e.arch.Cursor()); err != nil {
		t.Fatal(err)
	}
	for _, f := range before {
		sr, err := e.arch.Record(ctx, f.Slot)
		if err != nil {
			t.Fatal(err)
		}
		src.Add(item(t, sr))
	}
	first, _ := e.arch.Record(ctx, before[0].Slot)
	forged := *first.Signed.Record
	forged.Ciphertext = append([]byte{}, forged.Ciphertext...)
	forged.Ciphertext[0] ^= 1
	fsr, err := e.net.Sign(e.net.Device(t, "alice"), &forged, first.ServerTime)
	if err != nil {
		t.Fatal(err)
	}
	src.Add(item(t, fsr), archive.Item{Kind: archive.KindRecord, Data: []byte("garbage")},
		archive.Item{Kind: 99, Data: []byte("x")})
	a2, err := archive.New(ctx, archive.Config{Store: e.st, Policy: e.net.Policy, Root: e.net.Root.Public(), Log: e.net, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	for {
		n, err := a2.IngestOnce(ctx, src, 50)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	after, _ := a2.Find(ctx, archive.Query{})
	if len(after) != len(before) {
		t.Fatalf("%d records after redelivery, want %d", len(after), len(before))
	}
	if got, _ := a2.Record(ctx, before[0].Slot); !bytes.Equal(got.Signed.Record.Ciphertext, first.Signed.Record.Ciphertext) {
		t.Fatal("a second record for a slot replaced the first")
	}
	if a2.AuditHead().Seq != head+3 {
		t.Fatalf("audit grew by %d entries, want 3 rejections", a2.AuditHead().Seq-head)
	}
	if _, err := a2.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
	// Items out of order are refused.
	bad := &badOrder{}
	if _, err := a2.IngestOnce(ctx, bad, 10); !errors.Is(err, archive.ErrCursor) {
		t.Fatalf("out-of-order items: %v", err)
	}
}

type badOrder struct{}

func (badOrder) Pull(ctx context.Context, after uint64, max int) ([]archive.Item, error) {
	return []archive.Item{{Cursor: after + 2, Kind: 99}, {Cursor: after + 1, Kind: 99}}, nil
}
func (badOrder) Ack(ctx context.Context, upTo uint64) error { return nil }

func TestOpenWarrant(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ingestAll(t)
	eps := e.startCustodians(t)
	e.cust[1].Stop() // one custodian down: 2 of 3 still open
	w := e.net.Warrant(t, escrow.Warrant{ID: "W-alice", Scope: escrow.Scope{Usernames: []string{"alice"}},
		From: t0, To: t0.Add(time.Hour), CaseRef: "CASE-7"})
	out := filepath.Join(t.TempDir(), "out")
	rep, err := e.arch.Open(ctx, w, eps, out, archive.OpenOptions{Chunk: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Records) != len(e.inPts) || len(e.inPts) != 12 {
		t.Fatalf("opened %d records, want %d", len(rep.Records), len(e.inPts))
	}
	files := 0
	for _, r := range rep.Records {
		want, ok := e.inPts[r.Slot]
		if !ok {
			t.Fatalf("opened a record outside the warrant: %+v", r)
		}
		got, err := os.ReadFile(filepath.Join(out, r.File))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %q, want %q (%v)", r.File, got, want, err)
		}
		files++
		for _, a := range r.Attachments {
			got, err := os.ReadFile(filepath.Join(out, a))
			if err != nil || string(got) != "PHOTO-BYTES: a picture of the harbour at dawn" {
				t.Fatalf("attachment %s: %q, %v", a, got, err)
			}
			files++
		}
		if r.Username != "alice" || len(r.Custodians) != 2 || len(r.Errors) != 0 {
			t.Fatalf("record report %+v", r)
		}
	}
	if files != 13 {
		t.Fatalf("%d message and attachment files, want 13", files)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != files+2 {
		t.Fatalf("output has %d files, want %d plus two reports", len(ents), files)
	}
	var js archive.OpenReport
	b, _ := os.ReadFile(filepath.Join(out, "report.json"))
	if err := json.Unmarshal(b, &js); err != nil || js.WarrantID != "W-alice" || len(js.Records) != 12 {
		t.Fatalf("report.json: %v, %+v", err, js)
	}
	if c := rep.Custodians[1]; c.Unavailable == 0 || c.Answered != 0 {
		t.Fatalf("down custodian reported as %+v", c)
	}
	txt, _ := os.ReadFile(filepath.Join(out, "report.txt"))
	if !strings.Contains(string(txt), "W-alice") || !strings.Contains(string(txt), "unavailable") {
		t.Fatalf("report.txt:\n%s", txt)
	}

	// The transparency report counts it.
	tr, err := e.arch.Report(ctx, archive.Period{}, archive.ReportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Warrants) != 1 || tr.Warrants[0].Records != 12 || len(tr.Months) != 1 || tr.Months[0].Month != "2026-06" || tr.Months[0].Records != 12 {
		t.Fatalf("transparency report %+v", tr)
	}
	if !strings.Contains(tr.Text(), "W-alice") {
		t.Fatalf("report text:\n%s", tr.Text())
	}
	if tr2, _ := e.arch.Report(ctx, archive.Period{From: rightNow.AddDate(0, 1, 0)}, archive.ReportOptions{}); len(tr2.Warrants) != 0 {
		t.Fatalf("report of a later period lists %+v", tr2.Warrants)
	}

	// With a second custodian down, k-1 = 1 answer cannot open anything.
	e.cust[2].Stop()
	out2 := filepath.Join(t.TempDir(), "out2")
	rep, err = e.arch.Open(ctx, w, eps, out2, archive.OpenOptions{})
	if !errors.Is(err, archive.ErrNotEnoughCustodians) || len(rep.Records) != 0 || len(rep.Failed) != 12 {
		t.Fatalf("open with one custodian: %v", err)
	}
	msgs, _ := filepath.Glob(filepath.Join(out2, "*.msg"))
	if len(msgs) != 0 {
		t.Fatalf("wrote %d messages with one custodian", len(msgs))
	}
	// An existing output directory is refused.
	if _, err := e.arch.Open(ctx, w, eps, out, archive.OpenOptions{}); !errors.Is(err, archive.ErrOutputExists) {
		t.Fatalf("open into a full directory: %v", err)
	}
	assertNoPlaintext(t, e)
}

func TestOpenRefusedWarrants(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ingestAll(t)
	eps := e.startCustodians(t)
	// Revoked at two custodians: only one answers, nothing opens.
	for _, c := range e.cust[:2] {
		if err := c.Revoked.Revoke("W-2", "withdrawn"); err != nil {
			t.Fatal(err)
		}
	}
	w := e.net.Warrant(t, escrow.Warrant{ID: "W-2", Scope: escrow.Scope{Groups: [][]byte{grpCD}}, From: t0, To: t0.Add(time.Hour)})
	rep, err := e.arch.Open(ctx, w, eps, filepath.Join(t.TempDir(), "o"), archive.OpenOptions{})
	if !errors.Is(err, archive.ErrNotEnoughCustodians) || rep.Custodians[0].Refused != 1 || rep.Custodians[2].Answered != 0 {
		t.Fatalf("revoked warrant: %v %+v", err, rep)
	}
	// Expired: the archive refuses before asking anyone.
	old := e.net.Warrant(t, escrow.Warrant{ID: "W-3", Scope: escrow.Scope{Groups: [][]byte{grpCD}}, From: t0, To: t0.Add(time.Hour),
		NotAfter: rightNow.Add(-time.Hour)})
	if _, err := e.arch.Open(ctx, old, eps, filepath.Join(t.TempDir(), "o"), archive.OpenOptions{}); !errors.Is(err, escrow.ErrWarrantExpired) {
		t.Fatalf("expired warrant: %v", err)
	}
	tr, err := e.arch.Report(ctx, archive.Period{}, archive.ReportOptions{})
	if err != nil || tr.Refused != 1 || len(tr.Warrants) != 1 || tr.Warrants[0].Failed != 12 {
		t.Fatalf("report %+v, %v", tr, err)
	}
	assertNoPlaintext(t, e)
}

// assertNoPlaintext scans the archive's store, through its API and as raw
// files, for any plaintext sealed in the test.
func assertNoPlaintext(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	for _, bucket := range []string{"archive-meta", "archive-records", "archive-index", "archive-devices", "archive-users", archive.AuditBucket} {
		opts := store.ListOptions{}
		for {
			page, more, err := e.st.List(ctx, bucket, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, ent := range page {
				for _, pt := range e.allPt {
					if bytes.Contains(ent.Value, pt) || strings.Contains(ent.Key, string(pt)) {
						t.Fatalf("plaintext %q found in %s/%s", pt, bucket, ent.Key)
					}
				}
			}
			if !more {
				break
			}
			opts.After = page[len(page)-1].Key
		}
	}
	err := filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, pt := range e.allPt {
			if bytes.Contains(b, pt) {
				t.Fatalf("plaintext %q found in store file %s", pt, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	b, err := archive.EncodeBatch([]archive.Item{{Cursor: 1, Kind: archive.KindRecord, Data: []byte("r")},
		{Cursor: 2, Kind: archive.KindBlob, BlobID: "blob-1", Data: []byte("blob")}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := archive.DecodeBatch(data)
		if err != nil {
			if !errors.Is(err, archive.ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		again, err := archive.EncodeBatch(items)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzIngestLoggedItem: certificate and countersigning-key items (a log
// index and a log entry, from the server) are decoded strictly; a bad one
// is noted and skipped, never a panic, and only a root-chained certificate
// or key is kept.
func FuzzIngestLoggedItem(f *testing.F) {
	net := escrowtest.New(f, 11, 2, 3)
	st, err := pebble.Open(f.TempDir(), pebble.Options{InMemory: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	a, err := archive.New(context.Background(), archive.Config{Store: st, Policy: net.Policy, Root: net.Root.Public(), Now: clock})
	if err != nil {
		f.Fatal(err)
	}
	cert, cs := net.CertificateItem(f, net.Device(f, "alice")), net.CountersignItem(f)
	f.Add(uint8(cert.Kind), cert.Data)
	f.Add(uint8(cs.Kind), cs.Data)
	f.Add(uint8(archive.KindCertificate), cs.Data)
	f.Add(uint8(archive.KindOnlineKey), cert.Data[:20])
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		if kind != uint8(archive.KindCertificate) && kind != uint8(archive.KindOnlineKey) {
			return
		}
		src := &archive.MemSource{}
		for range a.Cursor() {
			src.Add(archive.Item{})
		}
		if err := src.Ack(context.Background(), a.Cursor()); err != nil {
			t.Fatal(err)
		}
		src.Add(archive.Item{Kind: archive.Kind(kind), Data: data})
		if _, err := a.IngestOnce(context.Background(), src, 1); err != nil {
			t.Fatalf("ingesting a bad item failed instead of skipping it: %v", err)
		}
	})
}

// growingLog is the fixture's log prover, with a device joining (the log
// growing) before every proof.
type growingLog struct {
	t   *testing.T
	net *escrowtest.Network
	n   int
}

func (g *growingLog) ProveLog(ctx context.Context, indexes, from []uint64) (*archive.LogProofs, error) {
	g.n++
	g.net.Device(g.t, fmt.Sprintf("late-%d", g.n))
	return g.net.ProveLog(ctx, indexes, from)
}

// TestOpenFollowsGrowingLog: the log grows between chunks, and custodians
// (one of them down for a while) get consistency proofs from the head each
// tracks.
func TestOpenFollowsGrowingLog(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ingestAll(t)
	eps := e.startCustodians(t)
	g := &growingLog{t: t, net: e.net}
	a, err := archive.New(ctx, archive.Config{Store: e.st, Policy: e.net.Policy, Root: e.net.Root.Public(), Log: g, Now: clock, ClientCertificate: &e.net.ArchiveCert})
	if err != nil {
		t.Fatal(err)
	}
	w := e.net.Warrant(t, escrow.Warrant{ID: "W-grow", Scope: escrow.Scope{Usernames: []string{"alice"}}, From: t0, To: t0.Add(time.Hour)})
	rep, err := a.Open(ctx, w, eps, filepath.Join(t.TempDir(), "out"), archive.OpenOptions{Chunk: 3})
	if err != nil || len(rep.Records) != 12 || g.n != 4 {
		t.Fatalf("opened %d records in %d chunks: %v", len(rep.Records), g.n, err)
	}
	// k custodians were asked; each tracks the head of the last chunk, the
	// one not asked tracks none.
	var asked, idle []int
	for i, c := range e.cust {
		switch c.Service.TrackedHead().Size {
		case e.net.Log.Size():
			asked = append(asked, i)
		case 0:
			idle = append(idle, i)
		default:
			t.Fatalf("custodian %d tracks a head of size %d, log has %d", i, c.Service.TrackedHead().Size, e.net.Log.Size())
		}
	}
	if len(asked) != 2 || len(idle) != 1 {
		t.Fatalf("custodians asked %v, idle %v", asked, idle)
	}
	// One of them goes down: the idle one is brought in from the empty
	// tree, the other from its own head.
	e.cust[asked[0]].Stop()
	rep, err = a.Open(ctx, w, eps, filepath.Join(t.TempDir(), "out2"), archive.OpenOptions{Chunk: 12})
	if err != nil || len(rep.Records) != 12 {
		t.Fatalf("open with custodian %d down: %d records: %v", asked[0], len(rep.Records), err)
	}
	for _, i := range []int{asked[1], idle[0]} {
		if got := e.cust[i].Service.TrackedHead().Size; got != e.net.Log.Size() {
			t.Fatalf("custodian %d tracks size %d, log has %d", i, got, e.net.Log.Size())
		}
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no randomness") }

// TestIngestWithoutRandomness: when the batch check of the records' proofs
// cannot draw its weights, each record is checked alone; honest records are
// kept, not refused and skipped for good.
func TestIngestWithoutRandomness(t *testing.T) {
	e := newEnv(t)
	e.st.Close()
	st, err := pebble.Open(e.dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	e.arch, err = archive.New(context.Background(), archive.Config{Store: st, Policy: e.net.Policy, Root: e.net.Root.Public(),
		Log: e.net, Attachments: sealedAttachments{}, Now: clock, Rand: failingReader{}})
	if err != nil {
		t.Fatal(err)
	}
	// Pulls of 50 items: batches big enough for the batch check.
	for {
		n, err := e.arch.IngestOnce(context.Background(), e.src, 50)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	got, err := e.arch.Find(context.Background(), archive.Query{})
	if err != nil || len(got) != 90 {
		t.Fatalf("%d records kept (%v), want all 90", len(got), err)
	}
}
