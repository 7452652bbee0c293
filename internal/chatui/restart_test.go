package chatui

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"anom/client"
	"anom/identity"
)

// restart closes the user's device and session and opens them again from
// the device state, as running anom chat again does.
func (u *user) restart(n *testNet) {
	u.t.Helper()
	u.c.Close()
	u.q = NewQueue()
	c, err := client.Open(client.Config{Dir: u.dir, KDF: testKDF, KeyPackages: 4, OnEvent: u.q.Push}, "314159")
	if err != nil {
		u.t.Fatal(err)
	}
	u.t.Cleanup(func() { c.Close() })
	u.c = c
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		u.t.Fatal(err)
	}
	u.out = &lockedBuffer{}
	if u.s, err = New(Config{Client: c, Events: u.q, Out: u.out, Timeout: 20 * time.Second, ReconnectEvery: 100 * time.Millisecond}); err != nil {
		u.t.Fatal(err)
	}
	u.supervise()
	u.s.greet(u.ctx)
}

// TestSessionRestartKeepsCurrent: after a restart the chat that was
// current is current again, among several.
func TestSessionRestartKeepsCurrent(t *testing.T) {
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t, root, nil)
	alice, bob, carol := n.user("alice"), n.user("bob"), n.user("carol")
	alice.do("/chat bob")
	bob.wait("* you were added to chat 1 alice")
	alice.do("first") // chats are numbered by their first message
	alice.do("/group team bob,carol")
	carol.wait(`alice named the chat "team"`)
	mustContain(t, alice.do("/switch 1"), "* chat 1 bob is now current")

	alice.restart(n)
	mustContain(t, alice.out.String(), "* 1 bob\n", "  2 ")
	mustContain(t, alice.do("still here"), "] alice: still here")
	bob.wait("] alice: still here")

	// And again after switching to the group.
	mustContain(t, alice.do("/switch 2"), "* chat 2 ")
	alice.restart(n)
	mustContain(t, alice.out.String(), "  1 bob\n", "* 2 ")
	alice.do("to the group")
	carol.wait("] alice: to the group")
}
