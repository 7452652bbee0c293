package chatui

import (
	"anom/internal/servertest"
	"anom/internal/tlstest"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"anom/client"
	"anom/identity"
	"anom/internal/escrowtest"
	"anom/internal/server"
	"anom/internal/store/pebble"
)

// Sessions over a real server on loopback TLS, driven through Exec (the
// tmux test in cmd/anom drives the binary; this one runs under -race).

type testNet struct {
	t    *testing.T
	root *identity.RootKey
	keys server.Config // the online keys, the same at every start
	dist *servertest.Distributor
	srv  *server.Server
	net  client.Network

	tls  *tls.Config
	dir  string // the server's store
	stop func()
}

func newTestNet(t *testing.T, root *identity.RootKey, policy []byte) *testNet {
	t.Helper()
	pki := tlstest.New(t, "127.0.0.1")
	n := &testNet{t: t, root: root, dir: filepath.Join(t.TempDir(), "store"), tls: pki.Server}
	n.start("127.0.0.1:0", policy)
	n.dist = servertest.AddDistributor(t, n.srv, root)
	n.net.CAFingerprint = sha256.Sum256(pki.CADER)
	n.net.Root = root.Public()
	return n
}

// start runs the server on its store at addr with the given policy.
func (n *testNet) start(addr string, policy []byte) {
	t := n.t
	t.Helper()
	st, err := pebble.Open(n.dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n.keys.Directory == nil {
		servertest.Keys(t, &n.keys, n.root)
	}
	srv, err := server.New(context.Background(), server.Config{Store: st, RootPublic: n.keys.RootPublic, Directory: n.keys.Directory,
		Countersign: n.keys.Countersign, CountersignCert: n.keys.CountersignCert, TLS: n.tls, Name: "test.anom",
		EscrowPolicy: policy, SweepInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n.srv = srv
	n.net.Address, n.stop = servertest.Serve(t, srv, st, addr)
}

// restart stops the server and runs it again on the same store and
// address with another escrow policy.
func (n *testNet) restart(policy []byte) {
	n.t.Helper()
	n.stop()
	n.start(n.net.Address, policy)
}

func (n *testNet) code() string {
	n.t.Helper()
	return n.dist.Code(n.t, n.srv, 12, time.Hour).String()
}

// lockedBuffer is the screen of a session.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type user struct {
	t    *testing.T
	ctx  context.Context // ends with the test
	name string
	// running is set while Session.Run handles the events (see run).
	running bool
	dir     string // the device state
	c       *client.Client
	q       *Queue
	s       *Session
	out     *lockedBuffer
}

var testKDF = client.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func (n *testNet) user(name string) *user {
	n.t.Helper()
	u := n.newUser(name)
	u.supervise()
	return u
}

// newUser activates a device and makes its session, not yet connected by
// client.Run: supervise or run does that.
func (n *testNet) newUser(name string) *user {
	n.t.Helper()
	return n.newUserWipeAfter(name, 0)
}

// newUserWipeAfter is newUser for a device that wipes itself after
// wipeAfter without reaching the server (0: never).
func (n *testNet) newUserWipeAfter(name string, wipeAfter time.Duration) *user {
	n.t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	n.t.Cleanup(stop)
	u := &user{t: n.t, ctx: ctx, name: name, dir: filepath.Join(n.t.TempDir(), name), q: NewQueue(), out: &lockedBuffer{}}
	c, err := client.Create(client.Config{Dir: u.dir, KDF: testKDF, KeyPackages: 4, OnEvent: u.q.Push, WipeAfter: wipeAfter}, "314159", "")
	if err != nil {
		n.t.Fatal(err)
	}
	u.c = c
	n.t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Activate(ctx, n.net, n.code(), name); err != nil {
		n.t.Fatalf("activating %s: %v", name, err)
	}
	if u.s, err = New(Config{Client: c, Events: u.q, Out: u.out, Timeout: 20 * time.Second, ReconnectEvery: 100 * time.Millisecond}); err != nil {
		n.t.Fatal(err)
	}
	return u
}

// supervise keeps the device connected (client.Run, as Session.Run does)
// for a session driven through Exec, until the test or the client ends.
func (u *user) supervise() {
	c := u.c
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(u.ctx, client.RunOptions{ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second, Timeout: 20 * time.Second})
	}()
	u.t.Cleanup(func() { c.Close(); <-done })
}

// do runs a line and returns what it printed (with the events handled
// meanwhile).
func (u *user) do(line string) string {
	u.t.Helper()
	before := len(u.out.String())
	u.s.Exec(u.ctx, line)
	return u.out.String()[before:]
}

// wait handles events until the screen shows want.
func (u *user) wait(want string) {
	u.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(u.out.String(), want) {
		if time.Now().After(deadline) {
			u.t.Fatalf("%s: %q not shown; screen:\n%s", u.name, want, u.out.String())
		}
		if !u.running {
			u.s.drainEvents(u.ctx)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustContain(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q:\n%s", w, got)
		}
	}
}

func TestSessionChat(t *testing.T) {
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t, root, nil)
	alice, bob := n.user("alice"), n.user("bob")

	mustContain(t, alice.do("/chat bob"), "* chat 1 bob made with alice (you), bob and made current\n* this chat: no escrow: this network has no escrow policy\n")
	bob.wait("* you were added to chat 1 alice (alice, bob (you)): it is now the current chat\n* this chat: no escrow: this network has no escrow policy\n")
	mustContain(t, alice.do("hello bob"), "] alice: hello bob")
	bob.wait("] alice: hello bob")
	bob.do("hi")
	alice.wait("] bob: hi")
	mustContain(t, alice.do("/chat bob"), "* chat 1 bob is now current\n* this chat: no escrow: this network has no escrow policy\n", "] alice: hello bob", "] bob: hi")
	mustContain(t, alice.do("/chat alice"), "error: that is you")

	// Text from another member is shown, never obeyed: an escape
	// sequence sent by a modified client is printed escaped.
	ctx := context.Background()
	gid := alice.s.chats[0].id
	if err := alice.c.SendText(ctx, gid, "evil\x1b[2J\x1b]0;title\x07 text"); err != nil {
		t.Fatal(err)
	}
	bob.wait(`alice: evil\u001b[2J\u001b]0;title\u0007 text`)
	if strings.ContainsRune(bob.out.String(), 0x1b) {
		t.Fatalf("an escape character reached the screen:\n%q", bob.out.String())
	}

	// A hidden file name is made visible and cannot climb out of DIR.
	data := []byte("#!/bin/sh\necho pwned\n")
	if _, err := alice.c.SendAttachment(ctx, gid, bytes.NewReader(data), int64(len(data)), "", ".bashrc", 0); err != nil {
		t.Fatal(err)
	}
	bob.wait(`alice sent file ".bashrc" (21 B) #`)
	var seq string
	for _, l := range strings.Split(bob.out.String(), "\n") {
		if i := strings.Index(l, `".bashrc" (21 B) #`); i >= 0 {
			seq = strings.Fields(l[i+len(`".bashrc" (21 B) #`):])[0]
			seq = strings.TrimSuffix(seq, ":")
		}
	}
	dir := t.TempDir()
	mustContain(t, bob.do("/get "+seq+" "+dir), "* saved #"+seq+" to "+filepath.Join(dir, "bashrc"))
	mustContain(t, bob.do("/get "+seq+" "+dir), filepath.Join(dir, "bashrc (1)"))
	if got, err := os.ReadFile(filepath.Join(dir, "bashrc")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("saved %q, %v", got, err)
	}
	mustContain(t, bob.do("/get 999 "+dir), "error: no message #999")
	mustContain(t, bob.do("/send-file "+filepath.Join(dir, "missing")), "error: opening the file")
	mustContain(t, bob.do("/send-file "+dir), "is not a regular file")

	// Timer, members, switch by name and number, contacts.
	mustContain(t, alice.do("/timer 60"), "* messages in chat 1 bob now disappear 1m0s after they arrive")
	bob.wait("alice set disappearing messages to 1m0s")
	mustContain(t, bob.do("/members"), "disappearing messages 1m0s", "2 user(s), 2 device(s)", "(this device)")
	mustContain(t, alice.do("/timer off"), "are off")
	mustContain(t, alice.do("/switch bob"), "* chat 1 bob is now current\n* this chat: no escrow: this network has no escrow policy\n")
	mustContain(t, alice.do("/switch 7"), `error: no chat "7"`)
	mustContain(t, alice.do("/contacts"), "bob", "1 device(s), in chat(s) 1")
	mustContain(t, alice.do("/whoami"), "You are alice, device ", "(connected)")
	mustContain(t, alice.do("/policy"), "* this chat: no escrow: this network has no escrow policy\n",
		"  this device verified with the server that no escrow policy is in the network's transparency log")
	mustContain(t, alice.do("/remove carol"), "error: carol is not in chat 1 bob")
	mustContain(t, alice.do("/add nosuchuser"), "error: there is no user nosuchuser on this network")
	mustContain(t, alice.do("/remove alice"), "error: you cannot remove yourself")

	// Alerts from the client's events are printed prominently.
	bob.q.Push(client.Event{Type: client.EventNewOwnDevice, Device: &identity.DeviceCertificate{Username: "bob"}})
	bob.wait("!!! ALERT: device 00000000000000000000000000000000 was added under your name bob with no approval in the log.")
	bob.q.Push(client.Event{Type: client.EventDeviceRemoved, Group: []byte{0xab}, Text: "device 01 of dave was removed (its certificate expired on 2027-01-01)"})
	bob.wait("!!! chat ab: device 01 of dave was removed (its certificate expired on 2027-01-01)")
	mustContain(t, alice.do("/remove bob"), "* chat 1 (only you) now has alice (you)")
	bob.wait("!!! you were removed from chat 1 alice !!!")
	mustContain(t, bob.do("still there?"), "error: you are no longer in chat 1 alice")
	mustContain(t, bob.do("/switch 1"), "error: you are no longer in chat 1 alice")

	// Wipe asks first.
	mustContain(t, bob.do("/wipe"), "Type /wipe confirm to go ahead")
	if bob.s.endErr() != nil || isDone(bob.s) {
		t.Fatal("/wipe alone ended the session")
	}
	mustContain(t, bob.do("/wipe confirm"), "* wiped:", "!!! THIS DEVICE WAS WIPED (user request)")
	if !isDone(bob.s) {
		t.Fatal("the session goes on after a wipe")
	}
}

func isDone(s *Session) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

func TestSessionGroup(t *testing.T) {
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t, root, nil)
	alice, bob, carol := n.user("alice"), n.user("bob"), n.user("carol")
	mustContain(t, alice.do("/group team bob,carol"), "* group chat 1 team made with alice (you), bob, carol and made current")
	mustContain(t, alice.do("/group team bob"), "error: there is already a chat named team")
	// The name comes in a message after the welcome: the added line may
	// show the members or the name.
	bob.wait("* you were added to chat 1 ")
	carol.wait("* you were added to chat 1 ")
	bob.wait(`alice named the chat "team"`)
	carol.wait(`alice named the chat "team"`)
	alice.do("hi all")
	bob.wait("] alice: hi all")
	carol.wait("] alice: hi all")
	mustContain(t, bob.do("/chat carol"), "* chat 2 carol made")
	bob.do("psst")
	carol.wait("(chat 2 bob) bob: psst")
	mustContain(t, carol.do("/switch team"), "* chat 1 team is now current")
	mustContain(t, carol.do("/chats"), "* 1 team (alice,bob)", "  2 bob")

	// One device removed by its ID, then its user added back (issue 9).
	cid, err := carol.c.Identity()
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, alice.do("/remove-device "+cid.DeviceID.String()), "* device "+cid.DeviceID.String()+" of carol removed; chat 1 team now has alice (you), bob")
	carol.wait("!!! you were removed from chat 1 team !!!")
	mustContain(t, alice.do("/remove-device "+cid.DeviceID.String()), "is not in chat 1 team")
	aid, _ := alice.c.Identity()
	mustContain(t, alice.do("/remove-device "+aid.DeviceID.String()), "error: you cannot remove this device")
	alice.do("/add carol")
	carol.wait("* you were added to chat 1 ")
	alice.do("carol is back")
	carol.wait("] alice: carol is back")
	mustContain(t, carol.do("/switch 1"), "* chat 1 ")
	carol.do("thanks")
	bob.wait("carol: thanks")
}

// TestSessionPolicy: the escrow policy this device verified is shown in
// the greeting and in every conversation as it is opened, made or
// switched to, and in full by /policy. (A policy not signed by the root,
// or unreadable, is refused by server.New, so the client's own checks of
// it cannot be reached here; package client tests them.)
func TestSessionPolicy(t *testing.T) {
	fx := escrowtest.New(t, 1, 2, 3)
	good, err := fx.Policy.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	const sealed = "every message is also sealed to the network's escrow key; escrow: 2 of 3 custodians: A, B, C; warrant issuers: Court; policy v1 (transparency log entry "
	tests := []struct {
		name         string
		policy       []byte
		greet, chat  string
		policyDetail []string
	}{
		{"none", nil, "escrow policy: none: this network has no escrow policy\n", "* this chat: no escrow: this network has no escrow policy\n",
			[]string{"  this device verified with the server that no escrow policy is in the network's transparency log\n"}},
		{"valid", good, "escrow policy: " + sealed, "* this chat: " + sealed,
			[]string{"  opening a message needs a warrant signed by Court and 2 of the custodians A, B, C, each checking it\n",
				"  policy v1 of 2026-01-01, signed by the network root, in the transparency log (entry ", "); records countersigned by server/1\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newTestNet(t, fx.Root, tt.policy)
			alice, bob, carol := n.user("alice"), n.user("bob"), n.user("carol")
			alice.do("") // the first verified policy is announced as an event
			before := len(alice.out.String())
			alice.s.greet(alice.ctx)
			mustContain(t, alice.out.String()[before:], tt.greet)
			got := alice.do("/policy")
			mustContain(t, got, tt.greet)
			if strings.Contains(got, "this chat") {
				t.Errorf("/policy with no chat speaks of a chat:\n%s", got)
			}

			// Made, joined, opened again, switched to: each shows it.
			mustContain(t, alice.do("/chat bob"), "* chat 1 bob made with alice (you), bob and made current\n"+tt.chat)
			bob.wait("it is now the current chat\n" + tt.chat)
			mustContain(t, alice.do("/group team bob,carol"), "* group chat 2 team made with alice (you), bob, carol and made current\n"+tt.chat)
			carol.wait("it is now the current chat\n" + tt.chat)
			mustContain(t, alice.do("/chat bob"), "* chat 1 bob is now current\n"+tt.chat)
			mustContain(t, alice.do("/switch team"), "* chat 2 team is now current\n"+tt.chat)
			bob.wait(`alice named the chat "team"`)
			mustContain(t, bob.do("/switch 2"), "* chat 2 team is now current\n"+tt.chat)
			got = alice.do("/policy")
			mustContain(t, got, append([]string{tt.chat}, tt.policyDetail...)...)
			if strings.Count(got, "\n") != 1+len(tt.policyDetail) && strings.Count(got, "\n") != len(tt.policyDetail) {
				t.Errorf("/policy printed %d lines: %q", strings.Count(got, "\n"), got)
			}

			// Messages go out under the policy shown.
			mustContain(t, alice.do("hello team"), "] alice: hello team")
			bob.wait("] alice: hello team")
			carol.wait("] alice: hello team")
		})
	}
}

// TestSessionPolicyChange: the network gets an escrow policy while a
// conversation is open; the device alerts its user and the conversation
// on screen shows what now applies to it.
func TestSessionPolicyChange(t *testing.T) {
	fx := escrowtest.New(t, 1, 2, 3)
	good, err := fx.Policy.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t, fx.Root, nil)
	alice, bob := n.user("alice"), n.user("bob")
	mustContain(t, alice.do("/chat bob"), "* this chat: no escrow: this network has no escrow policy\n")
	bob.wait("* this chat: no escrow: this network has no escrow policy\n")
	alice.do("before the policy")
	bob.wait("] alice: before the policy")

	n.restart(good)
	const sealed = "every message is also sealed to the network's escrow key; escrow: 2 of 3 custodians: A, B, C; warrant issuers: Court; policy v1 (transparency log entry "
	for _, u := range []*user{alice, bob} {
		u.wait("!!! ALERT: the escrow policy changed: " + sealed)
		u.wait("* this chat: " + sealed)
		scr := u.out.String()
		if strings.Index(scr, "!!! ALERT: the escrow policy changed") > strings.Index(scr, "* this chat: "+sealed) {
			t.Errorf("%s: the chat's new escrow line came before the alert:\n%s", u.name, scr)
		}
	}
	mustContain(t, alice.do("/policy"), "* this chat: "+sealed, "2 of the custodians A, B, C")
	mustContain(t, alice.do("after the policy"), "] alice: after the policy")
	bob.wait("] alice: after the policy")
}

func TestSessionSurvives(t *testing.T) {
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t, root, nil)
	u := n.user("alice")
	// Malformed events are shown, not fatal.
	u.q.Push(client.Event{Type: client.EventMessage, Message: &client.Message{Username: "x\x1b", Content: &client.Content{Kind: client.KindAttachment}}})
	u.q.Push(client.Event{Type: client.EventMessage})
	u.q.Push(client.Event{Type: client.EventError, Group: []byte{1, 2}, Err: errors.New("bad\nthing")})
	u.q.Push(client.Event{Type: client.EventEscrowMismatch, Group: []byte{3}})
	u.q.Push(client.Event{Type: client.EventSendHeld, Group: []byte{4}, Err: fmt.Errorf("%w: %w", client.ErrServerFull, &client.ServerError{Code: client.CodeStorageFull, Message: "full"})})
	out := u.do("")
	mustContain(t, out, `x\u001b sent a file without its reference`, "! a message in chat 0102 could not be read: bad thing", "ESCROW MISMATCH in chat 03",
		"! chat 04: the server is out of storage; your message is kept and will be sent later")
	// A panic in a command becomes one error line.
	func() {
		defer u.s.survive("testing")
		panic("boom\nboom")
	}()
	mustContain(t, u.out.String(), "error: internal error testing: boom boom (please report it)")
}
