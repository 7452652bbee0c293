package custodian_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"anom/escrow"
	"anom/internal/audit"
	"anom/internal/custodian"
	"anom/internal/escrowtest"
	"anom/internal/store/pebble"
	"anom/internal/translog"
)

var (
	t0       = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	grpA     = []byte("group-alice-bob")
	grpB     = []byte("group-carol-dave")
	rightNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
)

type running struct {
	svc     *custodian.Service
	client  *custodian.Client
	store   *pebble.Store
	revoked custodian.RevocationFile
	now     *time.Time
}

// start runs custodian i of net over TLS on loopback.
func start(t *testing.T, net_ *escrowtest.Network, i int) *running {
	t.Helper()
	dir := t.TempDir()
	st, err := pebble.Open(filepath.Join(dir, "db"), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := rightNow
	r := &running{store: st, revoked: custodian.RevocationFile{Path: filepath.Join(dir, "revoked")}, now: &now}
	r.svc, err = custodian.New(context.Background(), custodian.Config{
		Secret: net_.Secrets[i], Policy: net_.Policy, Root: net_.Root.Public(),
		Store: st, Revocations: r.revoked, Now: func() time.Time { return *r.now },
		Rand: net_.Rand, MaxRequestBytes: 1 << 20, ArchivePins: net_.ArchivePins(),
	})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := custodian.LoadOrCreateCertificate(dir, nil, rightNow)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.svc.Serve(ctx, ln, cert) }()
	r.client, err = custodian.NewClient(custodian.Endpoint{URL: "https://" + ln.Addr().String(), Pin: custodian.Pin(cert)}, net_.ArchiveCert, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.client.Close(); cancel(); <-done; st.Close() })
	return r
}

type fixture struct {
	t          testing.TB
	net        *escrowtest.Network
	cust       []*running
	alice, bob *escrowtest.Device
}

func newFixture(t *testing.T) *fixture {
	n := escrowtest.New(t, 1, 2, 3)
	f := &fixture{t: t, net: n, alice: n.Device(t, "alice"), bob: n.Device(t, "bob")}
	for i := range 3 {
		f.cust = append(f.cust, start(t, n, i))
	}
	return f
}

// env wraps a request with the log evidence of every certificate, with a
// consistency proof from the head the custodians track (all the same).
func (f *fixture) env(w *escrow.SignedWarrant, recs ...*escrow.ServerRecord) *custodian.Envelope {
	return f.net.Envelope(f.t, &escrow.Request{Warrant: w, Records: recs}, f.tracked())
}

// envFor is env for one custodian, from the head it tracks.
func (f *fixture) envFor(c *running, w *escrow.SignedWarrant, recs ...*escrow.ServerRecord) *custodian.Envelope {
	return f.net.Envelope(f.t, &escrow.Request{Warrant: w, Records: recs}, c.svc.TrackedHead().Size)
}

func (f *fixture) tracked() uint64 {
	f.t.Helper()
	size := f.cust[0].svc.TrackedHead().Size
	for _, c := range f.cust[1:] {
		if c.svc.TrackedHead().Size != size {
			f.t.Fatalf("custodians track heads of sizes %d and %d", size, c.svc.TrackedHead().Size)
		}
	}
	return size
}

func aliceWarrant(t *testing.T, f *fixture) *escrow.SignedWarrant {
	return f.net.Warrant(t, escrow.Warrant{Scope: escrow.Scope{Usernames: []string{"alice"}}, From: t0, To: t0.Add(time.Hour)})
}

func TestAnswerOpensWithKOfN(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pts := [][]byte{[]byte("hello bob"), []byte("meet at noon")}
	recs := []*escrow.ServerRecord{
		f.net.Message(t, f.alice, grpA, t0.Add(time.Minute), pts[0]),
		f.net.Message(t, f.alice, grpA, t0.Add(2*time.Minute), pts[1]),
	}
	env := f.env(aliceWarrant(t, f), recs...)
	var resps []*escrow.Response
	for _, c := range f.cust {
		r, err := c.client.Ask(ctx, env)
		if err != nil {
			t.Fatalf("custodian refused a valid request: %v", err)
		}
		if err := escrow.VerifyResponse(f.net.Policy.Policy, env.Request, r); err != nil {
			t.Fatalf("response does not verify: %v", err)
		}
		resps = append(resps, r)
	}
	// Any 2 of 3 open; 1 (k-1) does not.
	for _, pair := range [][2]int{{0, 1}, {0, 2}, {1, 2}} {
		got, err := escrow.Open(f.net.Policy.Policy, env.Request, []*escrow.Response{resps[pair[0]], resps[pair[1]]})
		if err != nil {
			t.Fatalf("custodians %v: %v", pair, err)
		}
		for i := range pts {
			if !bytes.Equal(got[i], pts[i]) {
				t.Fatalf("custodians %v: record %d opened to %q, want %q", pair, i, got[i], pts[i])
			}
		}
	}
	for i := range resps {
		if _, err := escrow.Open(f.net.Policy.Policy, env.Request, []*escrow.Response{resps[i]}); !errors.Is(err, escrow.ErrNotEnoughPartials) {
			t.Fatalf("one custodian (%d) opened: %v", i, err)
		}
		// Two copies of one custodian's answer are still one custodian.
		if _, err := escrow.Open(f.net.Policy.Policy, env.Request, []*escrow.Response{resps[i], resps[i]}); !errors.Is(err, escrow.ErrNotEnoughPartials) {
			t.Fatalf("one custodian (%d) twice opened: %v", i, err)
		}
	}
	// Each custodian logged a request and an answer, and its chain verifies.
	for _, c := range f.cust {
		h, err := audit.Verify(ctx, c.store, custodian.AuditBucket)
		if err != nil || h.Seq != 2 || h != c.svc.AuditHead() {
			t.Fatalf("audit head %v (service %v), err %v", h, c.svc.AuditHead(), err)
		}
		es, err := audit.Entries(ctx, c.store, custodian.AuditBucket, 0, 0)
		if err != nil || es[0].Kind != "request" || es[1].Kind != "answer" || !strings.Contains(string(es[0].Body), `"warrant_id":"W-1"`) {
			t.Fatalf("audit entries %v, %v", es, err)
		}
	}
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	in := func() *escrow.ServerRecord {
		return f.net.Message(t, f.alice, grpA, t0.Add(time.Minute), []byte("in scope"))
	}
	otherRoot := escrowtest.New(t, 99, 2, 3) // another network: its root and directory key
	_, rogueKey, _ := ed25519.GenerateKey(f.net.Rand)

	tests := []struct {
		name string
		env  func() *custodian.Envelope
		now  time.Time
		pre  func(c *running)
		want error
	}{
		{name: "out of scope user", want: escrow.ErrOutOfScope, env: func() *custodian.Envelope {
			return f.env(aliceWarrant(t, f), in(), f.net.Message(t, f.bob, grpA, t0.Add(time.Minute), []byte("bob")))
		}},
		{name: "before time range", want: escrow.ErrOutOfTimeRange, env: func() *custodian.Envelope {
			return f.env(aliceWarrant(t, f), f.net.Message(t, f.alice, grpA, t0.Add(-time.Second), []byte("early")))
		}},
		{name: "at end of time range", want: escrow.ErrOutOfTimeRange, env: func() *custodian.Envelope {
			return f.env(aliceWarrant(t, f), f.net.Message(t, f.alice, grpA, t0.Add(time.Hour), []byte("late")))
		}},
		{name: "server time outside range", want: escrow.ErrOutOfTimeRange, env: func() *custodian.Envelope {
			rec, _ := f.net.Seal(f.alice, grpA, t0.Add(time.Minute), []byte("backdated"))
			sr, _ := f.net.Sign(f.alice, rec, t0.Add(2*time.Hour))
			return f.env(aliceWarrant(t, f), sr)
		}},
		{name: "expired warrant", want: escrow.ErrWarrantExpired, now: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
			env: func() *custodian.Envelope { return f.env(aliceWarrant(t, f), in()) }},
		{name: "warrant not yet valid", want: escrow.ErrWarrantNotYetValid, now: time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC),
			env: func() *custodian.Envelope { return f.env(aliceWarrant(t, f), in()) }},
		{name: "revoked warrant", want: escrow.ErrWarrantRevoked,
			pre: func(c *running) {
				if err := c.revoked.Revoke("W-1", "court withdrew it"); err != nil {
					t.Fatal(err)
				}
			},
			env: func() *custodian.Envelope { return f.env(aliceWarrant(t, f), in()) }},
		{name: "warrant by unknown key", want: escrow.ErrBadSignature, env: func() *custodian.Envelope {
			w := aliceWarrant(t, f)
			sw, _ := escrow.SignWarrant(w.Warrant, rogueKey)
			return f.env(sw, in())
		}},
		{name: "widened warrant", want: escrow.ErrBadSignature, env: func() *custodian.Envelope {
			w := aliceWarrant(t, f)
			w.Warrant.Scope.Usernames = append(w.Warrant.Scope.Usernames, "bob")
			return f.env(w, in())
		}},
		{name: "relabelled sender", want: escrow.ErrBadSignature, env: func() *custodian.Envelope {
			// Bob's message relabelled as Alice's (in scope) keeps Bob's signatures.
			sr := f.net.Message(t, f.bob, grpA, t0.Add(time.Minute), []byte("bob's"))
			sr.Signed.Record.Metadata.SenderDevice = f.alice.Cert.DeviceID[:]
			return f.env(aliceWarrant(t, f), sr)
		}},
		{name: "relabelled time", want: escrow.ErrBadSignature, env: func() *custodian.Envelope {
			sr := f.net.Message(t, f.alice, grpA, t0.Add(-time.Hour), []byte("old"))
			sr.Signed.Record.Metadata.SentAt = t0.Add(time.Minute)
			sr.ServerTime = t0.Add(time.Minute)
			return f.env(aliceWarrant(t, f), sr)
		}},
		{name: "relabelled and re-signed by the server", want: escrow.ErrBadSignature, env: func() *custodian.Envelope {
			sr := f.net.Message(t, f.bob, grpA, t0.Add(time.Minute), []byte("bob's"))
			sr.Signed.Record.Metadata.SenderDevice = f.alice.Cert.DeviceID[:]
			sr2, _ := escrow.Countersign(sr.Signed, []byte(f.net.ServerID), t0.Add(time.Minute), 99, f.net.ServerKey)
			return f.env(aliceWarrant(t, f), sr2)
		}},
		{name: "altered ciphertext", want: escrow.ErrBadSignature, env: func() *custodian.Envelope {
			sr := in()
			sr.Signed.Record.Ciphertext[0] ^= 1
			return f.env(aliceWarrant(t, f), sr)
		}},
		{name: "forged device signature", want: escrow.ErrBadSignature, env: func() *custodian.Envelope {
			rec, _ := f.net.Seal(f.alice, grpA, t0.Add(time.Minute), []byte("forged"))
			signed, _ := escrow.SignRecord(rec, rogueKey)
			sr, _ := escrow.Countersign(signed, []byte(f.net.ServerID), t0.Add(time.Minute), 5, f.net.ServerKey)
			return f.env(aliceWarrant(t, f), sr)
		}},
		{name: "unknown server", want: escrow.ErrUnknownKey, env: func() *custodian.Envelope {
			rec, _ := f.net.Seal(f.alice, grpA, t0.Add(time.Minute), []byte("x"))
			signed, _ := escrow.SignRecord(rec, f.alice.Key)
			sr, _ := escrow.Countersign(signed, []byte("rogue-server"), t0.Add(time.Minute), 5, rogueKey)
			return f.env(aliceWarrant(t, f), sr)
		}},
		{name: "missing certificate", want: escrow.ErrUnknownKey, env: func() *custodian.Envelope {
			e := f.env(aliceWarrant(t, f), in())
			var keep []custodian.LoggedEntry
			for _, l := range e.Logged {
				if en, _ := translog.DecodeEntry(l.Entry); en.Kind != translog.KindDeviceCertificate {
					keep = append(keep, l)
				}
			}
			e.Logged = keep
			return e
		}},
		{name: "logged certificate from another root", want: custodian.ErrLogEvidence, env: func() *custodian.Envelope {
			c := *f.alice.Cert
			if err := otherRoot.Directory.SignDeviceCertificate(&c); err != nil {
				t.Fatal(err)
			}
			idx, err := f.net.Log.Append(ctx, translog.Entry{Kind: translog.KindDeviceCertificate, Payload: c.Encode()})
			if err != nil {
				t.Fatal(err)
			}
			e, err := f.net.EnvelopeFor(&escrow.Request{Warrant: aliceWarrant(t, f), Records: []*escrow.ServerRecord{in()}}, []uint64{idx}, f.tracked())
			if err != nil {
				t.Fatal(err)
			}
			return e
		}},
		{name: "R copied from bob's record", want: escrow.ErrRecordProof, env: func() *custodian.Envelope {
			// Alice's record (in scope) carrying bob's R, ciphertext and
			// proof, device-signed by her and countersigned by the server.
			bob := f.net.Message(t, f.bob, grpA, t0.Add(time.Minute), []byte("bob's secret"))
			rec, _ := f.net.Seal(f.alice, grpA, t0.Add(time.Minute), []byte("x"))
			rec.R, rec.Ciphertext, rec.Proof = bob.Signed.Record.R, bob.Signed.Record.Ciphertext, bob.Signed.Record.Proof
			sr, err := f.net.Sign(f.alice, rec, t0.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			return f.env(aliceWarrant(t, f), in(), sr)
		}},
		{name: "too large", want: custodian.ErrTooLarge, env: func() *custodian.Envelope {
			return f.env(aliceWarrant(t, f), f.net.Message(t, f.alice, grpA, t0.Add(time.Minute), make([]byte, 1<<20)))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env()
			for i, c := range f.cust {
				*c.now = rightNow
				if !tc.now.IsZero() {
					*c.now = tc.now
				}
				if tc.pre != nil {
					tc.pre(c)
				}
				before := c.svc.AuditHead().Seq
				_, err := c.client.Ask(ctx, env)
				var re *custodian.RefusedError
				if !errors.Is(err, tc.want) || !errors.Is(err, custodian.ErrRefused) || !errors.As(err, &re) {
					t.Fatalf("custodian %d: %v, want refusal matching %v", i, err, tc.want)
				}
				if after := c.svc.AuditHead().Seq; after != before+2 {
					t.Fatalf("custodian %d: audit log went from %d to %d entries, want a request and a refusal", i, before, after)
				}
				os.Remove(c.revoked.Path)
			}
		})
	}
	for _, c := range f.cust {
		if _, err := audit.Verify(ctx, c.store, custodian.AuditBucket); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNewChecksSecret(t *testing.T) {
	n := escrowtest.New(t, 2, 2, 3)
	other := escrowtest.New(t, 3, 2, 3)
	st, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	swapped := *n.Secrets[0]
	swapped.Key = n.Secrets[1].Key
	for name, cfg := range map[string]custodian.Config{
		"other network's share":    {Secret: other.Secrets[0], Policy: n.Policy, Root: n.Root.Public(), Store: st, ArchivePins: n.ArchivePins()},
		"wrong signing key":        {Secret: &swapped, Policy: n.Policy, Root: n.Root.Public(), Store: st, ArchivePins: n.ArchivePins()},
		"policy from another root": {Secret: n.Secrets[0], Policy: n.Policy, Root: other.Root.Public(), Store: st, ArchivePins: n.ArchivePins()},
		"no archive pin":           {Secret: n.Secrets[0], Policy: n.Policy, Root: n.Root.Public(), Store: st},
	} {
		if _, err := custodian.New(context.Background(), cfg); err == nil {
			t.Errorf("%s: custodian started", name)
		}
	}
}

func TestEndpointAndPin(t *testing.T) {
	f := newFixture(t)
	ep := f.cust[0].client.Endpoint
	back, err := custodian.ParseEndpoint(ep.String())
	if err != nil || back.URL != ep.URL || back.Pin != ep.Pin {
		t.Fatalf("endpoint round trip: %v, %v", back, err)
	}
	// A client pinning another certificate refuses to talk.
	wrong := ep
	wrong.Pin[0] ^= 1
	c, err := custodian.NewClient(wrong, f.net.ArchiveCert, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Ask(context.Background(), f.env(aliceWarrant(t, f), f.net.Message(t, f.alice, grpA, t0, []byte("x"))))
	if !errors.Is(err, custodian.ErrUnavailable) {
		t.Fatalf("ask with a wrong pin: %v", err)
	}
	for _, bad := range []string{"http://x:1", "https://x:1#abcd", "https://x:1/path", "nonsense"} {
		if _, err := custodian.ParseEndpoint(bad); !errors.Is(err, custodian.ErrMalformed) {
			t.Errorf("ParseEndpoint(%q): %v", bad, err)
		}
	}
}

func TestShareFileRoundTrip(t *testing.T) {
	n := escrowtest.New(t, 4, 2, 3)
	b, err := n.Secrets[1].MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	sf, err := custodian.ParseShareFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if sf.Name != "B" || !sf.Share.Equal(n.Secrets[1].Share) || !sf.Key.Equal(n.Secrets[1].Key) {
		t.Fatalf("share file round trip changed it")
	}
}

func FuzzParseEnvelope(f *testing.F) {
	n := escrowtest.New(f, 5, 2, 3)
	alice := n.Device(f, "alice")
	w := n.Warrant(f, escrow.Warrant{Scope: escrow.Scope{Usernames: []string{"alice"}}, From: t0, To: t0.Add(time.Hour)})
	env := n.Envelope(f, &escrow.Request{Warrant: w, Records: []*escrow.ServerRecord{n.Message(f, alice, grpA, t0, []byte("x"))}}, 0)
	b, err := env.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := custodian.ParseEnvelope(data)
		if err != nil {
			if !errors.Is(err, custodian.ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		again, err := e.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("round trip: %v", err)
		}
		// The custodian binds its answer to the bytes received; the
		// encoding being canonical, that is the hash of the request
		// encoded again, which the archive computes.
		got, err1 := e.RequestHash()
		want, err2 := e.Request.Hash()
		if err1 != nil || err2 != nil || got != want {
			t.Fatalf("hash of the request received %x (%v), of its encoding %x (%v)", got, err1, want, err2)
		}
	})
}

func FuzzParseShareFile(f *testing.F) {
	n := escrowtest.New(f, 6, 2, 3)
	b, err := n.Secrets[0].MarshalText()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("-----BEGIN ANOM CUSTODIAN SECRET-----\nName: A\n\nAAAA\n-----END ANOM CUSTODIAN SECRET-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := custodian.ParseShareFile(data)
		if err != nil {
			if !errors.Is(err, custodian.ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		if _, err := sf.MarshalText(); err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
	})
}

func FuzzParseEndpoint(f *testing.F) {
	f.Add("https://127.0.0.1:7001#" + strings.Repeat("ab", 32))
	f.Add("https://h")
	f.Fuzz(func(t *testing.T, s string) {
		ep, err := custodian.ParseEndpoint(s)
		if err != nil {
			if !errors.Is(err, custodian.ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		if _, err := custodian.ParseEndpoint(ep.String()); err != nil {
			t.Fatalf("reparsing %q: %v", ep.String(), err)
		}
	})
}

// TestRefusesBadProofAndRetiredRecords: the refusal of a record whose proof
// fails, or of the retired format version 1, has its own code, names the
// record, and is in the audit log with the record's index.
func TestRefusesBadProofAndRetiredRecords(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	c := f.cust[0]
	in := f.net.Message(t, f.alice, grpA, t0.Add(time.Minute), []byte("in scope"))
	other := f.net.Message(t, f.alice, grpA, t0.Add(2*time.Minute), []byte("other"))
	swapped := *other.Signed.Record
	swapped.Proof = in.Signed.Record.Proof
	bad, err := f.net.Sign(f.alice, &swapped, t0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.client.Ask(ctx, f.env(aliceWarrant(t, f), in, bad))
	var re *custodian.RefusedError
	if !errors.As(err, &re) || re.Code != custodian.CodeBadRecordProof || re.Record != 1 {
		t.Fatalf("bad proof: %v", err)
	}

	// A version 1 record can only be sent as bytes: the envelope is built
	// by hand around the request with it.
	old, _ := f.net.LegacyMessage(t, f.alice, grpA, t0.Add(3*time.Minute), []byte("old"))
	req := &escrow.Request{Warrant: aliceWarrant(t, f), Records: []*escrow.ServerRecord{in}}
	rb, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	ib, _ := in.MarshalBinary()
	b := cryptobyte.NewBuilder(bytes.Clone(rb[:len(rb)-len(ib)-3-4]))
	b.AddUint32(2)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(ib) })
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(old) })
	reqBytes := b.BytesOrPanic()
	// The envelope (version 2) of the request with in alone, its request
	// swapped for the one with the old record; the log evidence after it
	// stays as it is (the same device and countersigning key).
	envBytes, err := f.envFor(c, aliceWarrant(t, f), in).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	rest := envBytes[5+int(binary.BigEndian.Uint32(envBytes[1:5])):]
	eb := cryptobyte.NewBuilder(nil)
	eb.AddUint8(envBytes[0])
	eb.AddUint32(uint32(len(reqBytes)))
	eb.AddBytes(reqBytes)
	eb.AddBytes(rest)
	before := c.svc.AuditHead().Seq
	_, err = c.svc.Handle(ctx, "test", eb.BytesOrPanic())
	if !errors.Is(err, escrow.ErrRetiredRecord) {
		t.Fatalf("version 1 record: %v", err)
	}
	es, err := audit.Entries(ctx, c.store, custodian.AuditBucket, before, 0)
	if err != nil || len(es) != 2 || es[1].Kind != "refusal" {
		t.Fatalf("audit after the refusal: %v, %v", es, err)
	}
	var body struct {
		Code   custodian.Code `json:"code"`
		Record *int           `json:"record"`
	}
	if err := json.Unmarshal(es[1].Body, &body); err != nil || body.Code != custodian.CodeRetiredRecord || body.Record == nil || *body.Record != 1 {
		t.Fatalf("refusal audit %s (%v)", es[1].Body, err)
	}
}
