package chatui

import (
	"crypto/rand"
	"testing"

	"anom/identity"
)

// TestSessionGroupNameShared: a group's name is sent inside the group,
// so every member, one added later and the maker after a restart show
// it; a member may rename it.
func TestSessionGroupNameShared(t *testing.T) {
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t, root, nil)
	alice, bob, carol, dave := n.user("alice"), n.user("bob"), n.user("carol"), n.user("dave")
	mustContain(t, alice.do("/group team bob,carol"), "* group chat 1 team made")
	bob.wait(`alice named the chat "team"`)
	carol.wait(`alice named the chat "team"`)
	mustContain(t, bob.do("/chats"), "* 1 team (alice,carol)")
	mustContain(t, bob.do("/switch team"), "* chat 1 team is now current")

	// A member added later learns the name too.
	mustContain(t, alice.do("/add dave"), "dave")
	dave.wait(`alice named the chat "team"`)
	mustContain(t, dave.do("/chats"), "1 team (alice,bob,carol)")

	// Renaming, by any member.
	mustContain(t, bob.do("/rename crew"), "* chat 1 crew: you named it \"crew\"")
	alice.wait(`bob named the chat "crew"`)
	mustContain(t, alice.do("/chats"), "* 1 crew (bob,carol,dave)")

	// The name is kept in the device state, not the session.
	alice.restart(n)
	mustContain(t, alice.out.String(), "* 1 crew (bob,carol,dave)")
}
