package mls

import (
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
