package mls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"
)

// member is a test client: a key package bundle and, once in, a group.
type member struct {
	name   string
	bundle *KeyPackageBundle
	group  *Group
}

func newMember(t testing.TB, s *CipherSuite, name string) *member {
	t.Helper()
	sig, _, err := s.GenerateSignatureKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKeyPackage(s, Credential{Type: CredentialBasic, Identity: []byte(name)}, sig, KeyPackageOptions{}, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &member{name: name, bundle: b}
}

// roundTrip sends a message through the wire encoding.
func roundTrip(t testing.TB, m *MLSMessage) *MLSMessage {
	t.Helper()
	out, err := DecodeMLSMessage(m.Encode())
	if err != nil {
		t.Fatalf("re-decoding %d: %v", m.WireFormat, err)
	}
	return out
}

func TestGroupLifecycle(t *testing.T) {
	for _, id := range []CipherSuiteID{SuiteX25519AES128, SuiteX25519ChaCha} {
		t.Run(fmt.Sprint(id), func(t *testing.T) { testGroupLifecycle(t, id) })
	}
}

func testGroupLifecycle(t *testing.T, id CipherSuiteID) {
	s, _ := Suite(id)
	alice, bob, carol := newMember(t, s, "alice"), newMember(t, s, "bob"), newMember(t, s, "carol")
	var err error
	if alice.group, err = CreateGroup(Config{}, []byte("group-1"), alice.bundle, GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	// Alice adds Bob and Carol in one commit.
	pc, err := alice.group.Commit(CommitOptions{Add: []*KeyPackage{bob.bundle.KeyPackage, carol.bundle.KeyPackage}})
	if err != nil {
		t.Fatal(err)
	}
	if alice.group.Epoch() != 0 {
		t.Fatal("commit changed the group before it was applied")
	}
	if err := alice.group.ApplyCommit(pc); err != nil {
		t.Fatal(err)
	}
	welcome := roundTrip(t, pc.Welcome)
	for _, m := range []*member{bob, carol} {
		if m.group, err = Join(Config{}, welcome, m.bundle, nil); err != nil {
			t.Fatalf("%s joining: %v", m.name, err)
		}
	}
	sameView := func(ms ...*member) {
		t.Helper()
		for _, m := range ms[1:] {
			if !bytes.Equal(m.group.EpochAuthenticator(), ms[0].group.EpochAuthenticator()) {
				t.Fatalf("%s and %s disagree on epoch %d", m.name, ms[0].name, m.group.Epoch())
			}
			if !bytes.Equal(m.group.Export("test", nil, 32), ms[0].group.Export("test", nil, 32)) {
				t.Fatal("exporters differ")
			}
		}
	}
	sameView(alice, bob, carol)

	send := func(from *member, text string, to ...*member) {
		t.Helper()
		msg, err := from.group.Encrypt([]byte(text), []byte("aad"))
		if err != nil {
			t.Fatal(err)
		}
		wire := roundTrip(t, msg)
		for _, m := range to {
			rec, err := m.group.Handle(wire)
			if err != nil {
				t.Fatalf("%s reading %s's message: %v", m.name, from.name, err)
			}
			if string(rec.Application) != text || string(rec.SenderCredential.Identity) != from.name {
				t.Fatalf("%s got %q from %q", m.name, rec.Application, rec.SenderCredential.Identity)
			}
		}
	}
	send(alice, "hello all", bob, carol)
	send(bob, "hi alice", alice, carol)
	send(carol, "hey", alice, bob)

	// Bob commits an update of his path; the others follow.
	pc, err = bob.group.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	commit := roundTrip(t, pc.Commit)
	if err := bob.group.ApplyCommit(pc); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{alice, carol} {
		if _, err := m.group.Handle(commit); err != nil {
			t.Fatalf("%s processing bob's commit: %v", m.name, err)
		}
	}
	sameView(alice, bob, carol)
	// Replaying the commit is refused and changes nothing.
	if _, err := alice.group.Handle(commit); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("replayed commit: %v", err)
	}

	// Alice removes Carol.
	pc, err = alice.group.Commit(CommitOptions{Remove: []LeafIndex{carol.group.LeafIndex()}})
	if err != nil {
		t.Fatal(err)
	}
	commit = roundTrip(t, pc.Commit)
	alice.group.ApplyCommit(pc)
	if _, err := bob.group.Handle(commit); err != nil {
		t.Fatal(err)
	}
	rec, err := carol.group.Handle(commit)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Commit.RemovedSelf || carol.group.Active() {
		t.Fatal("carol was not told she was removed")
	}
	sameView(alice, bob)
	msg, err := alice.group.Encrypt([]byte("after carol left"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.group.Handle(roundTrip(t, msg)); err == nil {
		t.Fatal("removed member read a message of the next epoch")
	}
	if _, err := bob.group.Handle(roundTrip(t, msg)); err != nil {
		t.Fatal(err)
	}

	// State survives save and load, and the loaded state keeps working.
	blob, err := bob.group.Save()
	if err != nil {
		t.Fatal(err)
	}
	if bob.group, err = Load(Config{}, blob); err != nil {
		t.Fatal(err)
	}
	send(alice, "still here?", bob)
	send(bob, "yes", alice)
}

func TestCommitIsAtomic(t *testing.T) {
	s, _ := Suite(SuiteX25519AES128)
	alice, bob := newMember(t, s, "alice"), newMember(t, s, "bob")
	alice.group, _ = CreateGroup(Config{}, []byte("g"), alice.bundle, GroupOptions{})
	pc, err := alice.group.Commit(CommitOptions{Add: []*KeyPackage{bob.bundle.KeyPackage}})
	if err != nil {
		t.Fatal(err)
	}
	alice.group.ApplyCommit(pc)
	if bob.group, err = Join(Config{}, pc.Welcome, bob.bundle, nil); err != nil {
		t.Fatal(err)
	}
	pc, err = alice.group.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := bob.group.Save()
	// Corrupt the confirmation tag: the commit must be refused whole.
	bad := roundTrip(t, pc.Commit)
	bad.Public.Auth.ConfirmationTag[0] ^= 1
	if _, err := bob.group.Handle(bad); err == nil {
		t.Fatal("commit with a bad confirmation tag accepted")
	}
	after, _ := bob.group.Save()
	if !bytes.Equal(before, after) {
		t.Fatal("a refused commit changed the group state")
	}
	if _, err := bob.group.Handle(roundTrip(t, pc.Commit)); err != nil {
		t.Fatalf("good commit after a bad one: %v", err)
	}
}

func TestWelcomeNotForUs(t *testing.T) {
	s, _ := Suite(SuiteX25519AES128)
	alice, bob, eve := newMember(t, s, "alice"), newMember(t, s, "bob"), newMember(t, s, "eve")
	alice.group, _ = CreateGroup(Config{}, []byte("g"), alice.bundle, GroupOptions{})
	pc, _ := alice.group.Commit(CommitOptions{Add: []*KeyPackage{bob.bundle.KeyPackage}})
	if _, err := Join(Config{}, pc.Welcome, eve.bundle, nil); !errors.Is(err, ErrWelcomeNotForUs) {
		t.Fatalf("eve joined with bob's welcome: %v", err)
	}
}

// twoMembers returns a group of alice and bob at epoch 1.
func twoMembers(t testing.TB) (alice, bob *member) {
	s, _ := Suite(SuiteX25519AES128)
	alice, bob = newMember(t, s, "alice"), newMember(t, s, "bob")
	var err error
	if alice.group, err = CreateGroup(Config{}, []byte("g"), alice.bundle, GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	pc, err := alice.group.Commit(CommitOptions{Add: []*KeyPackage{bob.bundle.KeyPackage}})
	if err != nil {
		t.Fatal(err)
	}
	alice.group.ApplyCommit(pc)
	if bob.group, err = Join(Config{}, pc.Welcome, bob.bundle, nil); err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

// FuzzLoad feeds saved-state bytes to Load: a bad state is an error, and
// whatever loads saves back to the same bytes.
func FuzzLoad(f *testing.F) {
	alice, bob := twoMembers(f)
	for _, g := range []*Group{alice.group, bob.group} {
		b, _ := g.Save()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := Load(Config{}, b)
		if err != nil {
			return
		}
		out, err := g.Save()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("loaded state saves differently")
		}
	})
}

func FuzzDecodeKeyPackageBundle(f *testing.F) {
	s, _ := Suite(SuiteX25519AES128)
	f.Add(newMember(f, s, "alice").bundle.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		kb, err := DecodeKeyPackageBundle(b)
		if err != nil {
			return
		}
		if !bytes.Equal(kb.Encode(), b) {
			t.Fatal("bundle re-encodes differently")
		}
	})
}

// FuzzGroupHandle sends arbitrary messages to a group member: they must be
// refused with an error (never a panic), and a refused message must leave
// the group able to read the next real one.
func FuzzGroupHandle(f *testing.F) {
	alice, bob := twoMembers(f)
	m, _ := alice.group.Encrypt([]byte("hello"), nil)
	f.Add(m.Encode())
	pc, _ := alice.group.Commit(CommitOptions{})
	f.Add(pc.Commit.Encode())
	state, _ := bob.group.Save()
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := DecodeMLSMessage(b)
		if err != nil {
			return
		}
		g, err := Load(Config{}, state)
		if err != nil {
			t.Fatal(err)
		}
		before, _ := g.Save()
		if _, err := g.Handle(msg); err != nil {
			after, _ := g.Save()
			if !bytes.Equal(before, after) {
				t.Fatal("a refused message changed the group state")
			}
		}
	})
}

// TestLateMessageAfterCommit: a message sent just before a commit is
// still read after the receiver processed the commit, also across a save
// and load, but not once the epoch is older than the retained window.
func TestLateMessageAfterCommit(t *testing.T) {
	alice, bob := twoMembers(t)
	late, err := alice.group.Encrypt([]byte("sent before the commit"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var stale *MLSMessage
	for i := 0; i < 3; i++ {
		if i == 0 {
			stale, _ = alice.group.Encrypt([]byte("too old"), nil)
		}
		pc, err := bob.group.Commit(CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		bob.group.ApplyCommit(pc)
		if _, err := alice.group.Handle(roundTrip(t, pc.Commit)); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			blob, _ := bob.group.Save()
			if bob.group, err = Load(Config{}, blob); err != nil {
				t.Fatal(err)
			}
			rec, err := bob.group.Handle(roundTrip(t, late))
			if err != nil || string(rec.Application) != "sent before the commit" {
				t.Fatalf("late message: %v", err)
			}
			if _, err := bob.group.Handle(roundTrip(t, late)); err == nil {
				t.Fatal("late message read twice")
			}
		}
	}
	if _, err := bob.group.Handle(roundTrip(t, stale)); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("message three epochs old: %v", err)
	}
}

// TestCommitWithoutPath: an add-only commit may leave the path out and
// the others follow it; a commit that removes needs a path anyway.
func TestCommitWithoutPath(t *testing.T) {
	alice, bob := twoMembers(t)
	s := alice.group.CipherSuite()
	carol := newMember(t, s, "carol")
	pc, err := alice.group.Commit(CommitOptions{Add: []*KeyPackage{carol.bundle.KeyPackage}, NoPath: true})
	if err != nil {
		t.Fatal(err)
	}
	if pc.Commit.Public.Content.Commit.Path != nil {
		t.Fatal("add-only commit with NoPath carries a path")
	}
	alice.group.ApplyCommit(pc)
	if _, err := bob.group.Handle(roundTrip(t, pc.Commit)); err != nil {
		t.Fatal(err)
	}
	if carol.group, err = Join(Config{}, roundTrip(t, pc.Welcome), carol.bundle, nil); err != nil {
		t.Fatal(err)
	}
	// A remove-only commit needs a path even when NoPath is asked.
	pc, err = alice.group.Commit(CommitOptions{Remove: []LeafIndex{carol.group.LeafIndex()}, NoPath: true})
	if err != nil || pc.Commit.Public.Content.Commit.Path == nil {
		t.Fatalf("remove without a path: %v", err)
	}
	for _, m := range []*member{alice, bob, carol} {
		if !bytes.Equal(m.group.EpochAuthenticator(), alice.group.EpochAuthenticator()) {
			t.Fatalf("%s disagrees", m.name)
		}
	}
}
