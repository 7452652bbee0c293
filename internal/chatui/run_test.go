package chatui

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"anom/identity"
)

// runner is a session run by Session.Run, as anom chat runs it, with its
// input typed into a pipe.
type runner struct {
	u    *user
	in   *io.PipeWriter
	done chan error
}

// run starts the user's session with Session.Run (which keeps the device
// connected with client.Run).
func (u *user) run() *runner {
	u.t.Helper()
	pr, pw := io.Pipe()
	r := &runner{u: u, in: pw, done: make(chan error, 1)}
	u.running = true
	s := u.s
	go func() { r.done <- s.Run(u.ctx, pr) }()
	u.t.Cleanup(func() {
		pw.Close()
		<-r.done
	})
	return r
}

// send types a line.
func (r *runner) send(line string) {
	r.u.t.Helper()
	if _, err := io.WriteString(r.in, line+"\n"); err != nil {
		r.u.t.Fatalf("typing %q: %v", line, err)
	}
}

// end waits for Run to return.
func (r *runner) end() error {
	r.u.t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		r.u.t.Fatalf("%s: the session did not end; screen:\n%s", r.u.name, r.u.out.String())
		return nil
	}
}

// TestSessionRunSupervises: Session.Run keeps the device connected with
// client.Run. A server restart is shown (disconnected, then reconnected)
// and the chat goes on; a revocation is shown and ends the session with
// ErrRevoked.
func TestSessionRunSupervises(t *testing.T) {
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t, root, nil)
	alice, bob := n.newUser("alice"), n.user("bob")
	ra := alice.run()
	alice.wait("Type /help for the commands.")
	ra.send("/chat bob")
	alice.wait("* chat 1 bob made with alice (you), bob and made current")
	bob.wait("* you were added to chat 1 alice")

	n.restart(nil)
	alice.wait("! disconnected from the server")
	alice.wait("* reconnected")
	bob.wait("! disconnected from the server")
	ra.send("after the restart")
	bob.wait("] alice: after the restart")

	id, err := alice.c.Identity()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.srv.Revoke(context.Background(), id.DeviceID, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	alice.wait("!!! this device was REVOKED by the network administrator; it can no longer connect !!!")
	if err := ra.end(); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Run = %v, want ErrRevoked", err)
	}
}

// TestSessionRunPipedInput: input that is not typed (piped, as in
// printf ... | anom chat) is read line by line whatever the lengths: a
// line longer than a terminal keeps (4,095) goes out whole, so does one of
// the largest size a message takes, a longer one is refused with an error
// and the session goes on, the last line needs no newline, and the end of
// the input ends the session without an error.
func TestSessionRunPipedInput(t *testing.T) {
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t, root, nil)
	alice, bob := n.newUser("alice"), n.user("bob")
	mid := strings.Repeat("m", 5000)
	full := "f" + strings.Repeat("é", (MaxLine-2)/2) + "f"
	if len(full) != MaxLine {
		t.Fatalf("full is %d bytes", len(full))
	}
	huge := strings.Repeat("h", 200<<10)
	in := "/chat bob\n" + mid + "\n" + huge + "\n" + full + "\n" + huge + "\r\nlast words"
	alice.running = true
	done := make(chan error, 1)
	go func() { done <- alice.s.Run(alice.ctx, strings.NewReader(in)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v at the end of the input", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the session did not end with its input; screen:\n%s", alice.out.String())
	}
	bob.wait("] alice: last words")
	scr := bob.out.String()
	for _, w := range []string{mid, full} {
		if strings.Count(scr, "] alice: "+w+"\n") != 1 {
			t.Errorf("bob did not get the %d-byte line whole, once", len(w))
		}
	}
	if strings.Contains(scr, "hhhh") {
		t.Error("bob got (part of) a line over the limit")
	}
	got := alice.out.String()
	if c := strings.Count(got, "error: line too long: a message is at most 65536 bytes; nothing was sent\n"); c != 2 {
		t.Errorf("alice was told %d times of a line too long, want 2:\n%.2000s", c, got)
	}
}

// TestSessionRunAutoWipe: a device set to wipe itself after a while
// without reaching the server does so while the session runs (client.Run
// checks it while not connected); the wipe is shown and the session ends
// without an error.
func TestSessionRunAutoWipe(t *testing.T) {
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t, root, nil)
	alice := n.newUserWipeAfter("alice", time.Second)
	alice.s.cfg.SyncEvery = 100 * time.Millisecond
	ra := alice.run()
	alice.wait("Type /help for the commands.")
	n.stop()
	alice.wait("! disconnected from the server")
	alice.wait("!!! THIS DEVICE WAS WIPED (too long without reaching the server): its keys and messages are gone !!!")
	if err := ra.end(); err != nil {
		t.Fatalf("Run = %v after the wipe, want nil", err)
	}
	if _, err := alice.c.Identity(); err == nil {
		t.Fatal("the device still has its identity after the wipe")
	}
}
