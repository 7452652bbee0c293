package mls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

func TestRequiredCapabilities(t *testing.T) {
	s, _ := Suite(SuiteX25519AES128)
	const custom = ExtensionType(0xff00)
	rc := RequiredCapabilities{Extensions: []ExtensionType{custom}}
	withCustom := func(name string) *member {
		sig, _, _ := s.GenerateSignatureKey(rand.Reader)
		caps := DefaultCapabilities(s)
		caps.Extensions = []ExtensionType{custom}
		b, err := NewKeyPackage(s, Credential{Type: CredentialBasic, Identity: []byte(name)}, sig, KeyPackageOptions{Capabilities: &caps}, rand.Reader, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return &member{name: name, bundle: b}
	}
	alice := withCustom("alice")
	g, err := CreateGroup(Config{}, []byte("g"), alice.bundle, GroupOptions{Extensions: []Extension{{Type: ExtRequiredCapabilities, Data: encode(&rc)}}})
	if err != nil {
		t.Fatal(err)
	}
	plain := newMember(t, s, "plain")
	if _, err := g.Commit(CommitOptions{Add: []*KeyPackage{plain.bundle.KeyPackage}}); !errors.Is(err, ErrInvalidProposal) {
		t.Fatalf("member lacking a required extension added: %v", err)
	}
	if _, err := g.Commit(CommitOptions{Add: []*KeyPackage{withCustom("bob").bundle.KeyPackage}}); err != nil {
		t.Fatalf("capable member refused: %v", err)
	}
	// A group a member cannot support cannot be created either.
	if _, err := CreateGroup(Config{}, []byte("g2"), plain.bundle, GroupOptions{Extensions: []Extension{{Type: ExtRequiredCapabilities, Data: encode(&rc)}}}); !errors.Is(err, ErrInvalidProposal) {
		t.Fatalf("creator lacking a required extension: %v", err)
	}
}

func TestExternalSenderRemove(t *testing.T) {
	s, _ := Suite(SuiteX25519AES128)
	serverKey, serverPub, _ := s.GenerateSignatureKey(rand.Reader)
	ext := []ExternalSender{{SignatureKey: serverPub, Credential: Credential{Type: CredentialBasic, Identity: []byte("server")}}}
	alice, bob, carol := newMember(t, s, "alice"), newMember(t, s, "bob"), newMember(t, s, "carol")
	var err error
	alice.group, err = CreateGroup(Config{}, []byte("g"), alice.bundle, GroupOptions{Extensions: []Extension{{Type: ExtExternalSenders, Data: EncodeExternalSenders(ext)}}})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := alice.group.Commit(CommitOptions{Add: []*KeyPackage{bob.bundle.KeyPackage, carol.bundle.KeyPackage}})
	if err != nil {
		t.Fatal(err)
	}
	alice.group.ApplyCommit(pc)
	for _, m := range []*member{bob, carol} {
		if m.group, err = Join(Config{}, pc.Welcome, m.bundle, nil); err != nil {
			t.Fatal(err)
		}
	}
	prop, err := ExternalProposal(s, serverKey, 0, alice.group.GroupID(), alice.group.Epoch(), &Proposal{Type: ProposalRemove, Remove: &RemoveProposal{Removed: carol.group.LeafIndex()}})
	if err != nil {
		t.Fatal(err)
	}
	// A proposal signed by an unknown key is refused.
	forged, _, _ := s.GenerateSignatureKey(rand.Reader)
	bad, _ := ExternalProposal(s, forged, 0, alice.group.GroupID(), alice.group.Epoch(), &Proposal{Type: ProposalRemove, Remove: &RemoveProposal{Removed: 1}})
	if _, err := bob.group.Handle(roundTrip(t, bad)); err == nil {
		t.Fatal("forged external proposal accepted")
	}
	for _, m := range []*member{alice, bob, carol} {
		if _, err := m.group.Handle(roundTrip(t, prop)); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	// Carol's own commit leaves out the proposal to remove her.
	own, err := carol.group.Commit(CommitOptions{})
	if err != nil {
		t.Fatalf("carol committing with her removal pending: %v", err)
	}
	if n := len(own.Commit.Public.Content.Commit.Proposals); n != 0 {
		t.Fatalf("carol's commit carries %d proposals", n)
	}
	// Bob commits the server's proposal by reference.
	pc, err = bob.group.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bob.group.ApplyCommit(pc)
	if _, err := alice.group.Handle(roundTrip(t, pc.Commit)); err != nil {
		t.Fatal(err)
	}
	rec, err := carol.group.Handle(roundTrip(t, pc.Commit))
	if err != nil || !rec.Commit.RemovedSelf {
		t.Fatalf("carol not removed: %v", err)
	}
	if len(alice.group.Members()) != 2 {
		t.Fatalf("%d members after the removal", len(alice.group.Members()))
	}
}

func TestExternalJoin(t *testing.T) {
	alice, bob := twoMembers(t)
	s := alice.group.CipherSuite()
	gi, err := alice.group.GroupInfo(true, true)
	if err != nil {
		t.Fatal(err)
	}
	// The GroupInfo goes over the wire.
	var w writer
	gi.marshal(&w)
	if gi, err = DecodeGroupInfo(w.b); err != nil {
		t.Fatal(err)
	}
	carolSig, _, _ := s.GenerateSignatureKey(rand.Reader)
	carolCred := Credential{Type: CredentialBasic, Identity: []byte("carol")}
	carol, commit, err := ExternalJoin(Config{}, gi, nil, carolCred, carolSig, ExternalJoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{alice, bob} {
		rec, err := m.group.Handle(roundTrip(t, commit))
		if err != nil {
			t.Fatalf("%s processing carol's external commit: %v", m.name, err)
		}
		if rec.Commit.Committer.Type != SenderNewMemberCommit {
			t.Fatalf("committer %+v", rec.Commit.Committer)
		}
		if !bytes.Equal(m.group.EpochAuthenticator(), carol.EpochAuthenticator()) {
			t.Fatalf("%s and carol disagree", m.name)
		}
	}
	msg, err := carol.Encrypt([]byte("hi, I joined from a group info"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := alice.group.Handle(roundTrip(t, msg)); err != nil || string(rec.Application) != "hi, I joined from a group info" {
		t.Fatalf("alice reading carol: %v", err)
	}

	// Bob lost his state and rejoins, removing his old leaf.
	gi, _ = alice.group.GroupInfo(true, true)
	old := bob.group.LeafIndex()
	bobCred := bob.bundle.KeyPackage.LeafNode.Credential
	bob2, commit, err := ExternalJoin(Config{}, gi, nil, bobCred, bob.bundle.SignaturePriv, ExternalJoinOptions{RemoveLeaf: &old})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.group.Handle(roundTrip(t, commit)); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Handle(roundTrip(t, commit)); err != nil {
		t.Fatal(err)
	}
	if len(alice.group.Members()) != 3 || !bytes.Equal(bob2.EpochAuthenticator(), alice.group.EpochAuthenticator()) {
		t.Fatal("rejoin did not replace bob's leaf")
	}
	// Removing someone else's leaf in an external commit is refused.
	gi, _ = alice.group.GroupInfo(true, true)
	aliceLeaf := alice.group.LeafIndex()
	if _, _, err := ExternalJoin(Config{}, gi, nil, carolCred, carolSig, ExternalJoinOptions{RemoveLeaf: &aliceLeaf}); !errors.Is(err, ErrInvalidProposal) {
		t.Fatalf("external commit removing another member: %v", err)
	}
	// Without external_pub there is no external join.
	gi, _ = alice.group.GroupInfo(true, false)
	if _, _, err := ExternalJoin(Config{}, gi, nil, carolCred, carolSig, ExternalJoinOptions{}); !errors.Is(err, ErrInvalidWelcome) {
		t.Fatalf("external join without external_pub: %v", err)
	}
}
