package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"anom/escrow"
	"anom/identity"
	"anom/internal/escrowtest"
	"anom/internal/server"
	"anom/mls"
)

func newEscrowNet(t *testing.T) *testNet {
	return newTestNetWith(t, func(c *server.Config, root *identity.RootKey) {
		c.EscrowPolicy = escrowtest.SignedPolicy(t, root.Signer(), 1)
		c.AlertDir = filepath.Join(t.TempDir(), "alerts")
	})
}

func TestEscrowSendAndCheck(t *testing.T) {
	n := newEscrowNet(t)
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	ctx := ctxT(t)
	for _, d := range []*device{alice, bob} {
		if e := d.wait(EventEscrowPolicy); e.Err != nil || !strings.Contains(e.Text, "2 of 3 custodians: A, B, C") {
			t.Fatalf("%s: policy event %q %v", d.name, e.Text, e.Err)
		}
	}
	info, err := alice.c.Escrow()
	if err != nil || info.Policy == nil || info.ServerKeyID != "server/1" {
		t.Fatalf("escrow info %+v %v", info, err)
	}
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	notice, err := bob.c.EscrowNotice(g)
	if err != nil || !strings.Contains(notice, info.Policy.Summary()) || !strings.Contains(notice, "transparency log entry") {
		t.Fatalf("notice %q %v", notice, err)
	}

	// Honest messages, text and an attachment, pass every check.
	if err := alice.c.SendText(ctx, g, "honest"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("honest")
	photo := bytes.Repeat([]byte("photo bytes "), 5000)
	if _, err := alice.c.SendAttachment(ctx, g, bytes.NewReader(photo), int64(len(photo)), "image/jpeg", "p.jpg", 0); err != nil {
		t.Fatal(err)
	}
	if e := bob.wait(EventMessage); e.Message.Content.Kind != KindAttachment {
		t.Fatalf("got %v", e.Message.Content.Kind)
	}
	if err := bob.c.SendText(ctx, g, "reply"); err != nil {
		t.Fatal(err)
	}
	alice.waitText("reply")

	// A device that believes there is no policy sends without a record:
	// the server refuses it, the client verifies the policy again and
	// resends with a record.
	alice.c.mu.Lock()
	alice.c.escrowPol = &policyState{}
	alice.c.mu.Unlock()
	if err := alice.c.SendText(ctx, g, "after refusal"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("after refusal")

	// Alice's client turns false: its record seals another text. Bob
	// catches it, is told, and the server records an alert.
	alice.c.mu.Lock()
	alice.c.tamperRecord = func(m *escrow.Metadata, pt []byte) []byte {
		c := &Content{Kind: KindText, SentAt: m.SentAt, Text: "nothing to see"}
		b, _ := c.Marshal()
		return b
	}
	alice.c.mu.Unlock()
	if err := alice.c.SendText(ctx, g, "the real plan"); err != nil {
		t.Fatal(err)
	}
	e := bob.wait(EventEscrowMismatch)
	if e.Mismatch == nil || e.Mismatch.Field != "ciphertext" || e.Message.Content.Text != "the real plan" || !strings.Contains(e.Text, "alice") {
		t.Fatalf("mismatch event %+v %q", e.Mismatch, e.Text)
	}
	var alerts []server.Alert
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if alerts, err = n.srv.Alerts(context.Background(), 1); err != nil || len(alerts) > 0 {
			break
		}
	}
	aid, _ := alice.c.Identity()
	if len(alerts) != 1 || alerts[0].Sender != aid.DeviceID.String() || alerts[0].ReporterUser != "bob" || alerts[0].Field != "ciphertext" || alerts[0].Seq != e.Mismatch.Seq {
		t.Fatalf("alerts %+v %v", alerts, err)
	}

	// Without a verified policy the device does not send.
	alice.c.mu.Lock()
	alice.c.escrowPol = nil
	alice.c.mu.Unlock()
	if err := alice.c.SendText(ctx, g, "unverified"); !errors.Is(err, ErrEscrowPolicy) {
		t.Fatalf("send without a verified policy: %v", err)
	}
	// A sync verifies it again; a policy different from the one stored
	// is announced as a change.
	alice.c.mu.Lock()
	old := *alice.c.loadPolicyForTest(t)
	old.serverID = "another-server"
	alice.c.v.put(recEscrowPolicy, old.encode())
	alice.c.mu.Unlock()
	if err := alice.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if e := alice.wait(EventEscrowPolicy); !strings.HasPrefix(e.Text, "the escrow policy changed") {
		t.Fatalf("change event %q", e.Text)
	}
	if err := alice.c.SendText(ctx, g, "verified again"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("verified again")
}

func (c *Client) loadPolicyForTest(t *testing.T) *policyState {
	p, err := c.loadEscrowPolicy()
	if err != nil || p == nil {
		t.Fatalf("stored policy %v %v", p, err)
	}
	return p
}

// BenchmarkSendEscrowOverhead: the escrow's share of the device's send
// path, per application message: MLS encryption alone, and with the
// escrow record sealed from the exporter and signed by the device.
func BenchmarkSendEscrowOverhead(b *testing.B) {
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	suite, _ := mls.Suite(1)
	seed, pub, err := suite.GenerateSignatureKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	id, _ := identity.NewDeviceID(rand.Reader)
	cert := &identity.DeviceCertificate{DeviceID: id, Username: "bench", Key: pub, Serial: 1,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	keys, err := identity.NewServerKeys(root, "server", time.Now(), 0, 1, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	if err := keys.Directory.SignDeviceCertificate(cert); err != nil {
		b.Fatal(err)
	}
	kp, err := mls.NewKeyPackage(suite, cert.Credential(), mls.SignaturePrivateKey(seed), mls.KeyPackageOptions{}, rand.Reader, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	g, err := mls.CreateGroup(mls.Config{}, []byte("bench group 0123"), kp, mls.GroupOptions{})
	if err != nil {
		b.Fatal(err)
	}
	sp, err := escrow.ParseSignedPolicy(escrowtest.SignedPolicy(b, root.Signer(), 1))
	if err != nil {
		b.Fatal(err)
	}
	c := &Client{dev: &deviceRecord{id: id, net: Network{Root: root.Public()}}, sigPriv: mls.SignaturePrivateKey(seed),
		escrowPol: &policyState{policy: sp.Policy}}
	gs := &groupState{g: g, escrow: escrowSecrets{g.Epoch(): g.Export(EscrowLabel, escrowContext(g.GroupID(), g.Epoch()), 32)}}
	content := &Content{Kind: KindText, SentAt: time.UnixMilli(time.Now().UnixMilli()), Text: strings.Repeat("a typical message ", 8)}
	pt, err := content.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encrypt", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := g.EncryptWithGeneration(pt, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encrypt+record", func(b *testing.B) {
		for b.Loop() {
			_, gen, err := g.EncryptWithGeneration(pt, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.sealRecord(gs, gen, content, pt); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzEscrowVaultRecords: the escrow records of the vault decode or fail
// cleanly, and what decodes encodes back to the same bytes.
func FuzzEscrowVaultRecords(f *testing.F) {
	f.Add((&policyState{logIndex: 3, serverID: "s"}).encode())
	f.Add(escrowSecrets{1: bytes.Repeat([]byte{1}, 32), 2: bytes.Repeat([]byte{2}, 32)}.encode())
	f.Add([]byte{recordVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := decodeEscrowSecrets(b); err == nil && len(s) == int(b[1]) && !bytes.Equal(s.encode(), b) {
			t.Fatalf("secrets re-encode differently")
		}
		if p, err := decodePolicyState(b); err == nil && p.policy == nil && len(p.raw) != 0 {
			t.Fatalf("policy bytes without a policy")
		}
	})
}
