package custodian_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"anom/escrow"
	"anom/identity"
	"anom/internal/custodian"
	"anom/internal/escrowtest"
	"anom/internal/translog"
)

// relabel is the attacker's certificate: bob's device ID and key under
// the username alice, validly signed by dir (a directory key read from the
// server's data dir).
func relabel(t *testing.T, dir *identity.DirectorySigner, bob *escrowtest.Device) *identity.DeviceCertificate {
	t.Helper()
	c := *bob.Cert
	c.Username = "alice"
	c.Serial++
	if err := dir.SignDeviceCertificate(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(identity.RootPublicKey(dir.Certificate().Key), c.NotBefore); err == nil {
		t.Fatal("sanity: a certificate verified against a non-root key")
	}
	return &c
}

// forkLog is the attacker's copy of the network's log: its first upTo
// entries, then extra, with tree heads signed by signer (whose certificate
// is the entry at signerIdx).
func forkLog(t *testing.T, n *escrowtest.Network, upTo uint64, signer *identity.DirectorySigner, signerIdx uint64, extra ...translog.Entry) *translog.Log {
	t.Helper()
	ctx := context.Background()
	l, err := translog.Open(ctx, translog.Config{Storage: &translog.MemoryStorage{}, Now: func() time.Time { return escrowtest.LogTime.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := n.Log.Entries(ctx, 0, upTo)
	if err != nil {
		t.Fatal(err)
	}
	var entries []translog.Entry
	for _, r := range raw {
		e, err := translog.DecodeEntry(r)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	if _, err := l.AppendBatch(ctx, append(entries, extra...)); err != nil {
		t.Fatal(err)
	}
	if err := l.SetSigner(ctx, signer.Key().Signer(), signerIdx); err != nil {
		t.Fatal(err)
	}
	return l
}

// forkEnvelope is a request with evidence from the attacker's log: every
// entry of it (certificates and keys) against its head, and a consistency
// proof from the custodians' tracked size.
func forkEnvelope(t *testing.T, l *translog.Log, req *escrow.Request, from uint64) *custodian.Envelope {
	t.Helper()
	ctx := context.Background()
	sth, err := l.SignedTreeHead()
	if err != nil {
		t.Fatal(err)
	}
	env := &custodian.Envelope{Request: req, TreeHead: sth}
	if from <= sth.Size {
		if env.Consistency, err = l.ConsistencyProof(from, sth.Size); err != nil {
			t.Fatal(err)
		}
	} else {
		env.Consistency = translog.ConsistencyProof{Size1: from, Size2: sth.Size}
	}
	raw, err := l.Entries(ctx, 0, sth.Size)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range raw {
		if e, _ := translog.DecodeEntry(r); e.Kind != translog.KindDeviceCertificate && e.Kind != translog.KindOnlineKey {
			continue
		}
		if e, _ := translog.DecodeEntry(r); e.Kind == translog.KindOnlineKey {
			if c, _ := identity.OnlineKeyOfEntry(e); c == nil || c.Role != identity.RoleCountersign {
				continue
			}
		}
		p, err := l.InclusionProof(uint64(i), sth.Size)
		if err != nil {
			t.Fatal(err)
		}
		env.Logged = append(env.Logged, custodian.LoggedEntry{Entry: r, Proof: p})
	}
	return env
}

// refusedByAll asks every custodian and requires a refusal matching want.
func refusedByAll(t *testing.T, f *fixture, env *custodian.Envelope, want error) {
	t.Helper()
	for i, c := range f.cust {
		r, err := c.client.Ask(context.Background(), env)
		if err == nil {
			t.Fatalf("custodian %d answered (%d partials): the attack worked", i, len(r.D))
		}
		if !errors.Is(err, want) {
			t.Fatalf("custodian %d: %v, want a refusal matching %v", i, err, want)
		}
	}
}

// TestAttackRelabelledCertificateNotInLog: a server operator holding the
// directory key mints a certificate that relabels bob's device as alice
// and sends bob's messages under a warrant for alice. The certificate
// chains to the root, but it is not in the transparency log, so custodians
// refuse: passed with another entry's inclusion proof, in place of bob's
// logged certificate, or in a fork of the log signed with the directory
// key.
func TestAttackRelabelledCertificateNotInLog(t *testing.T) {
	f := newFixture(t)
	bobsMsgs := []*escrow.ServerRecord{
		f.net.Message(t, f.bob, grpA, t0.Add(time.Minute), []byte("bob: the shipment leaves at six")),
		f.net.Message(t, f.bob, grpA, t0.Add(2*time.Minute), []byte("bob: bring cash")),
	}
	w := aliceWarrant(t, f)
	fake := relabel(t, f.net.Directory, f.bob)
	if err := fake.Verify(f.net.Root.Public(), t0); err != nil {
		t.Fatalf("the relabelled certificate must chain to the root for the attack to mean anything: %v", err)
	}
	fakeEntry, err := translog.Entry{Kind: translog.KindDeviceCertificate, Timestamp: 1, Payload: fake.Encode()}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Without the relabelled certificate, bob's records are bob's: out of
	// alice's scope. (This also makes the custodians track the real head.)
	refusedByAll(t, f, f.env(w, bobsMsgs...), escrow.ErrOutOfScope)

	t.Run("added with another entry's proof", func(t *testing.T) {
		env := f.env(w, bobsMsgs...)
		env.Logged = append(env.Logged, custodian.LoggedEntry{Entry: fakeEntry, Proof: env.Logged[len(env.Logged)-1].Proof})
		refusedByAll(t, f, env, custodian.ErrLogEvidence)
	})
	t.Run("in place of bob's logged certificate", func(t *testing.T) {
		env := f.env(w, bobsMsgs...)
		for i, l := range env.Logged {
			if e, _ := translog.DecodeEntry(l.Entry); e.Kind == translog.KindDeviceCertificate && string(e.Payload) == string(f.bob.Cert.Encode()) {
				env.Logged[i].Entry = fakeEntry
			}
		}
		refusedByAll(t, f, env, custodian.ErrLogEvidence)
	})
	t.Run("in a fork of the log", func(t *testing.T) {
		// The attacker forks the log as it was, appends the relabelled
		// certificate and signs the head with the directory key; the
		// real log has moved on (carol joined) and the custodians saw it.
		forkAt := f.net.Log.Size()
		f.net.Device(t, "carol")
		for _, c := range f.cust {
			if _, err := c.client.Ask(context.Background(), f.envFor(c, w, bobsMsgs...)); !errors.Is(err, escrow.ErrOutOfScope) {
				t.Fatalf("a real request after carol joined: %v", err)
			}
		}
		l := forkLog(t, f.net, forkAt, f.net.Directory, 0, translog.Entry{Kind: translog.KindDeviceCertificate, Payload: fake.Encode()})
		env := forkEnvelope(t, l, &escrow.Request{Warrant: w, Records: bobsMsgs}, f.tracked())
		refusedByAll(t, f, env, custodian.ErrLogEvidence)
		// Each custodian keeps the evidence and counts it in its signed
		// counts, for the archive's report to flag.
		for i, c := range f.cust {
			counts, err := c.client.AuditCounts(context.Background(), [32]byte{byte(i)})
			if err != nil {
				t.Fatal(err)
			}
			if counts.Kinds[custodian.KindLogFork] != 1 {
				t.Fatalf("custodian %d counts %d log forks, want 1", i, counts.Kinds[custodian.KindLogFork])
			}
		}
		// And without a consistency proof it is a rollback.
		env.Consistency = translog.ConsistencyProof{Size1: env.TreeHead.Size, Size2: env.TreeHead.Size}
		refusedByAll(t, f, env, custodian.ErrLogEvidence)
	})
}

// TestAttackStolenDirectoryKeyAfterRotation: the directory key is stolen,
// the administrator rotates it (a new key, the next serial, logged), and
// the custodians see a tree head under the new key. The thief then extends
// the log consistently with a relabelled certificate and signs the head
// with the old key, whose certificate is still within its validity: the
// custodians refuse a head signed under a retired serial.
func TestAttackStolenDirectoryKeyAfterRotation(t *testing.T) {
	f := newFixture(t)
	w := aliceWarrant(t, f)
	bobsMsg := f.net.Message(t, f.bob, grpA, t0.Add(time.Minute), []byte("bob: the shipment leaves at six"))
	refusedByAll(t, f, f.env(w, bobsMsg), escrow.ErrOutOfScope)

	stolen, stolenIdx := f.net.RotateDirectory(t)
	// A real request after the rotation: the custodians now track a head
	// signed by the new directory key.
	aliceMsg := f.net.Message(t, f.alice, grpA, t0.Add(2*time.Minute), []byte("alice: ok"))
	for i, c := range f.cust {
		if _, err := c.client.Ask(context.Background(), f.envFor(c, w, aliceMsg)); err != nil {
			t.Fatalf("custodian %d refused a valid request after the rotation: %v", i, err)
		}
	}
	if got := f.cust[0].svc.TrackedHead().Size; got != f.net.Log.Size() {
		t.Fatalf("custodian tracks size %d, log has %d", got, f.net.Log.Size())
	}
	fake := relabel(t, stolen, f.bob)
	l := forkLog(t, f.net, f.net.Log.Size(), stolen, stolenIdx, translog.Entry{Kind: translog.KindDeviceCertificate, Payload: fake.Encode()})
	env := forkEnvelope(t, l, &escrow.Request{Warrant: w, Records: []*escrow.ServerRecord{bobsMsg}}, f.tracked())
	refusedByAll(t, f, env, custodian.ErrLogEvidence)
	for _, c := range f.cust {
		if _, err := c.client.Ask(context.Background(), env); !errors.Is(err, identity.ErrRolledBack) && !errors.Is(err, custodian.ErrLogEvidence) {
			t.Fatalf("want a rolled-back key refusal: %v", err)
		}
	}
}

// TestAttackOnlineKeyWrongRoleTreeHead: the countersigning key (also on
// the server) signs a tree head over a log that carries its certificate;
// custodians refuse it as a directory key.
func TestAttackOnlineKeyWrongRoleTreeHead(t *testing.T) {
	f := newFixture(t)
	w := aliceWarrant(t, f)
	bobsMsg := f.net.Message(t, f.bob, grpA, t0.Add(time.Minute), []byte("x"))
	cs, err := identity.NewDirectorySigner(&identity.DirectoryKey{}, f.net.CountersignCert)
	if !errors.Is(err, identity.ErrWrongRole) || cs != nil {
		t.Fatalf("a countersign certificate as a directory signer: %v", err)
	}
	ctx := context.Background()
	l, err := translog.Open(ctx, translog.Config{Storage: &translog.MemoryStorage{}, Now: func() time.Time { return escrowtest.LogTime }})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := f.net.Log.Entries(ctx, 0, f.net.Log.Size())
	var csIdx uint64
	for i, r := range raw {
		e, _ := translog.DecodeEntry(r)
		if c, _ := identity.OnlineKeyOfEntry(e); c != nil && c.Role == identity.RoleCountersign {
			csIdx = uint64(i)
		}
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.SetSigner(ctx, f.net.ServerKey, csIdx); err != nil {
		t.Fatal(err)
	}
	env := forkEnvelope(t, l, &escrow.Request{Warrant: w, Records: []*escrow.ServerRecord{bobsMsg}}, 0)
	for i, c := range f.cust {
		_, err := c.client.Ask(ctx, env)
		if !errors.Is(err, custodian.ErrLogEvidence) || err == nil {
			t.Fatalf("custodian %d: %v, want a log evidence refusal", i, err)
		}
	}
}

// TestAttackAnonymousCustodianRequest: anyone who could reach a custodian
// posted a request straight to it (bypassing the archive and its audit
// log) and the custodian read up to 64 MiB of it and answered. Custodians
// now answer only an archive whose client certificate they pin: an
// anonymous client, or one with another certificate, fails the TLS
// handshake before a byte of its request is read; the pinned archive is
// answered; requests are bounded to what a real batch needs (4 MiB by
// default); and the HTTP handler itself refuses an unpinned client
// without reading the body, whatever server it is mounted in.
func TestAttackAnonymousCustodianRequest(t *testing.T) {
	f := newFixture(t)
	ep := f.cust[0].client.Endpoint
	env := f.env(aliceWarrant(t, f), f.net.Message(t, f.alice, grpA, t0.Add(time.Minute), []byte("hello bob")))
	body, err := env.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	post := func(cert *tls.Certificate, b []byte) (*http.Response, error) {
		tc := &tls.Config{InsecureSkipVerify: true} // the attacker trusts any custodian
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Post(ep.URL+custodian.AnswerPath, "application/octet-stream", bytes.NewReader(b))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	if resp, err := post(nil, body); err == nil {
		t.Fatalf("an anonymous request was read and answered: HTTP %d", resp.StatusCode)
	}
	other, err := custodian.LoadOrCreateClientCertificate(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := post(&other, body); err == nil {
		t.Fatalf("a request with an unpinned certificate was read and answered: HTTP %d", resp.StatusCode)
	}
	if resp, err := post(&f.net.ArchiveCert, body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the pinned archive's request: %v %v", resp, err)
	}
	// The Client refuses to go without a certificate.
	if _, err := custodian.NewClient(ep, tls.Certificate{}, 0); !errors.Is(err, custodian.ErrUnauthenticated) {
		t.Fatalf("a client without a certificate: %v", err)
	}

	// Requests are bounded to what a batch needs.
	if custodian.DefaultMaxRequestBytes > 4<<20 {
		t.Fatalf("default request bound %d bytes", custodian.DefaultMaxRequestBytes)
	}
	big := append(bytes.Clone(body), make([]byte, 1<<20)...) // this custodian's bound is 1 MiB
	if resp, err := post(&f.net.ArchiveCert, big); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("an oversize request from the archive: %v %v", resp, err)
	}

	// The handler alone, mounted in a server that asks for no client
	// certificate, refuses before reading the body.
	srv := httptest.NewTLSServer(f.cust[0].svc.Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+custodian.AnswerPath, bytes.NewReader(make([]byte, 8<<20)))
	req.ContentLength = 8 << 20
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var eb struct{ Code string }
	json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || eb.Code != string(custodian.CodeUnauthenticated) {
		t.Fatalf("handler without a client certificate: HTTP %d %q", resp.StatusCode, eb.Code)
	}
	// So do its other routes: the tracked tree head and the audit
	// anchoring and counts are for the pinned archive only.
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, custodian.TreeHeadPath}, {http.MethodPost, custodian.AnchorPath}, {http.MethodPost, custodian.CountsPath},
	} {
		req, _ := http.NewRequest(r.method, srv.URL+r.path, bytes.NewReader(nil))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s %s without a client certificate: HTTP %d", r.method, r.path, resp.StatusCode)
		}
	}
}
