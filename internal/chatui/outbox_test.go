package chatui

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"anom/client"
	"anom/identity"
)

// reopen ends the user's running session, closes the device and opens it
// again from its state without connecting (the server may be down), then
// runs a new session on it, as running anom chat again does.
func (u *user) reopen(r *runner) *runner {
	u.t.Helper()
	r.in.Close()
	if err := r.end(); err != nil {
		u.t.Fatalf("the session ended with %v at the end of its input", err)
	}
	u.c.Close()
	u.q = NewQueue()
	c, err := client.Open(client.Config{Dir: u.dir, KDF: testKDF, KeyPackages: 4, OnEvent: u.q.Push}, "314159")
	if err != nil {
		u.t.Fatal(err)
	}
	u.t.Cleanup(func() { c.Close() })
	u.c = c
	u.out = &lockedBuffer{}
	if u.s, err = New(Config{Client: c, Events: u.q, Out: u.out, Timeout: 20 * time.Second, ReconnectEvery: 100 * time.Millisecond}); err != nil {
		u.t.Fatal(err)
	}
	return u.run()
}

// TestSessionPendingWhileOffline: lines typed while the server is
// unreachable are kept in the device's outbox and shown at once, marked
// pending; they survive a restart of the device (listed pending by
// /history), and once the server is back they go out in order, each shown
// as sent and received by the other member exactly once.
func TestSessionPendingWhileOffline(t *testing.T) {
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t, root, nil)
	alice, bob := n.newUser("alice"), n.user("bob")
	ra := alice.run()
	ra.send("/chat bob")
	alice.wait("* chat 1 bob made with alice (you), bob and made current")
	bob.wait("* you were added to chat 1 alice")
	ra.send("online first")
	bob.wait("] alice: online first")

	n.stop()
	alice.wait("! disconnected from the server")
	ra.send("offline one")
	alice.wait("] alice: offline one " + pendingMark)
	ra.send("offline two")
	alice.wait("] alice: offline two " + pendingMark)

	// A restart of the device while the server is still down.
	ra = alice.reopen(ra)
	alice.wait("Type /help for the commands.")
	ra.send("/history")
	alice.wait("] alice: offline two " + pendingMark)
	mustContain(t, alice.out.String(), "] alice: online first\n", "] alice: offline one "+pendingMark+"\n")
	ra.send("offline three")
	alice.wait("] alice: offline three " + pendingMark)

	n.start(n.net.Address, nil)
	alice.wait("* reconnected")
	for _, w := range []string{"one", "two", "three"} {
		alice.wait("] alice: offline " + w + " " + sentMark)
		bob.wait("] alice: offline " + w)
	}
	ra.send("online again")
	bob.wait("] alice: online again")
	scr := bob.out.String()
	last := -1
	for _, w := range []string{"online first", "offline one", "offline two", "offline three", "online again"} {
		if c := strings.Count(scr, "] alice: "+w+"\n"); c != 1 {
			t.Errorf("bob got %q %d times:\n%s", w, c, scr)
		}
		i := strings.Index(scr, "] alice: "+w+"\n")
		if i < last {
			t.Errorf("bob got %q out of order:\n%s", w, scr)
		}
		last = i
	}
	if strings.Contains(scr, pendingMark) {
		t.Errorf("bob's screen shows a pending mark:\n%s", scr)
	}
	// Nothing waits any more.
	ra.send("/history")
	alice.wait("] alice: online again\n")
	got := alice.out.String()
	if c := strings.Count(got, pendingMark); c != 3 {
		t.Errorf("alice's screen shows %d pending marks after the restart, want 3 (two listed, offline three typed):\n%s", c, got)
	}
	if i := strings.LastIndex(got, pendingMark); i > strings.Index(got, "] alice: offline one "+sentMark) {
		t.Errorf("a message is shown pending after it was sent:\n%s", got)
	}
}
