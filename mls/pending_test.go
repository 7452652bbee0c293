package mls

import (
	"bytes"
	"testing"
)

// TestPendingCommitSaveLoad: a pending commit saved and loaded again (a
// restart while the delivery service's answer is unknown) moves its maker
// to the same epoch as the members who handle the commit.
func TestPendingCommitSaveLoad(t *testing.T) {
	alice, bob := twoMembers(t)
	s, _ := Suite(SuiteX25519AES128)
	carol := newMember(t, s, "carol")
	pc, err := alice.group.Commit(CommitOptions{Add: []*KeyPackage{carol.bundle.KeyPackage}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := pc.Save()
	if err != nil {
		t.Fatal(err)
	}
	lp, err := LoadPendingCommit(Config{}, b)
	if err != nil {
		t.Fatal(err)
	}
	if lp.Epoch() != pc.Epoch() || !bytes.Equal(lp.Commit.Encode(), pc.Commit.Encode()) ||
		!bytes.Equal(lp.Welcome.Encode(), pc.Welcome.Encode()) || len(lp.Added) != 1 || lp.Added[0] != pc.Added[0] {
		t.Fatal("loaded pending commit differs")
	}
	if again, _ := lp.Save(); !bytes.Equal(again, b) {
		t.Fatal("loaded pending commit saves differently")
	}
	if err := alice.group.ApplyCommit(lp); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.group.Handle(pc.Commit); err != nil {
		t.Fatal(err)
	}
	if alice.group.Epoch() != 2 || !bytes.Equal(alice.group.EpochAuthenticator(), bob.group.EpochAuthenticator()) {
		t.Fatal("alice and bob are in different epochs")
	}
	// A pending commit of an epoch left behind is refused.
	if err := alice.group.ApplyCommit(pc); err == nil {
		t.Fatal("a stale pending commit applied")
	}
	if _, err := LoadPendingCommit(Config{}, b[:len(b)-1]); err == nil {
		t.Fatal("a truncated pending commit loaded")
	}
}

// FuzzLoadPendingCommit feeds saved bytes to LoadPendingCommit: a bad one
// is an error, and whatever loads saves back to the same bytes.
func FuzzLoadPendingCommit(f *testing.F) {
	alice, _ := twoMembers(f)
	pc, err := alice.group.Commit(CommitOptions{})
	if err != nil {
		f.Fatal(err)
	}
	b, _ := pc.Save()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := LoadPendingCommit(Config{}, b)
		if err != nil {
			return
		}
		out, err := p.Save()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, b) {
			t.Fatal("loaded pending commit saves differently")
		}
	})
}
