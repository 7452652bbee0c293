package systest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/netsetup"
)

// The end-to-end test of anom chat: the README's quick start with the
// anom binary (admin init, a distributor, codes, the server on loopback
// TLS), then three `anom chat` processes driven through tmux the way a
// person would type.

// tmuxNet is a network run by the anom binary, with chat sessions in a
// private tmux server.
type tmuxNet struct {
	t    *testing.T
	bin  string
	dir  string
	sock string
	addr string
	fp   string
	root string
	// invite is what anom server wrote to net/invite.
	invite string
	codes  []string
	srv    *exec.Cmd
	logf   *os.File
}

// startServer runs anom server on the network's data directory.
func (n *tmuxNet) startServer() {
	n.t.Helper()
	n.srv = exec.Command(n.bin, "server", "--data", "net", "--listen", n.addr)
	n.srv.Dir = n.dir
	var err error
	if n.logf, err = os.OpenFile(filepath.Join(n.dir, "server.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
		n.t.Fatal(err)
	}
	n.srv.Stdout, n.srv.Stderr = n.logf, n.logf
	if err := n.srv.Start(); err != nil {
		n.t.Fatal(err)
	}
}

// stopServer stops the server gracefully (SIGINT), or kills it.
func (n *tmuxNet) stopServer() {
	if n.srv == nil {
		return
	}
	n.srv.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { n.srv.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		n.srv.Process.Kill()
		<-done
	}
	n.logf.Close()
	n.srv = nil
}

func (n *tmuxNet) run(args ...string) string {
	n.t.Helper()
	cmd := exec.Command(n.bin, args...)
	cmd.Dir = n.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		n.t.Fatalf("anom %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func newTmuxNet(t *testing.T, users int) *tmuxNet {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed: the terminal test of anom chat needs it (apt-get install tmux)")
	}
	n := &tmuxNet{t: t, bin: anomBin, dir: t.TempDir()}
	n.sock = filepath.Join(n.dir, "tmux.sock")
	// The README's quick start: the first run of the server makes the
	// network and its invite; the network then gets a disclosed escrow
	// policy (a restart serves it), a distributor and codes.
	n.addr = freeAddr(t)
	t.Cleanup(func() {
		exec.Command("tmux", "-S", n.sock, "kill-server").Run()
		n.stopServer()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(n.dir, "server.log"))
			t.Logf("server log:\n%s", b)
		}
	})
	n.startServer()
	n.waitLog("invite (in ")
	n.stopServer()
	// The chats must show the policy: every network can run under one.
	n.run("admin", "escrow", "init", "--data", "net", "--out", "escrow-keys", "--custodians", "A,B,C", "--threshold", "2")
	// Admin commands go to the running server.
	n.startServer()
	n.waitLogCount("invite (in ", 2)
	n.run("admin", "distributor", "add", "shop", "--quota", "10", "--data", "net")
	for _, c := range strings.Fields(n.run("admin", "codes", "issue", "--distributor", "shop", "--count", fmt.Sprint(users), "--months", "12", "--data", "net")) {
		n.codes = append(n.codes, c)
	}
	if len(n.codes) != users {
		t.Fatalf("got %d codes, want %d", len(n.codes), users)
	}
	ni, err := netsetup.Dir(filepath.Join(n.dir, "net")).Info()
	if err != nil {
		t.Fatal(err)
	}
	n.fp, n.root = ni.CAFingerprint, ni.RootPublicKey
	inv, err := os.ReadFile(filepath.Join(n.dir, "net", "invite"))
	if err != nil {
		t.Fatal(err)
	}
	n.invite = strings.TrimSpace(string(inv))
	return n
}

// waitLogCount waits until the server's log shows text count times.
func (n *tmuxNet) waitLogCount(text string, count int) {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(n.dir, "server.log"))
		if bytes.Count(b, []byte(text)) >= count {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("server log lacks %q %d times:\n%s", text, count, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLog waits until the server's log shows text.
func (n *tmuxNet) waitLog(text string) {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(n.dir, "server.log"))
		if bytes.Contains(b, []byte(text)) {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("server log lacks %q:\n%s", text, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
func (n *tmuxNet) tmux(args ...string) string {
	n.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", n.sock}, args...)...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// pane is one anom chat process in a tmux session.
type pane struct {
	n    *tmuxNet
	name string
}

// start runs anom chat for user in a tmux session; the shell around it
// reports how it exited and keeps the pane open.
func (n *tmuxNet) start(user string, args ...string) *pane {
	n.t.Helper()
	pinFile := filepath.Join(n.dir, user+".pin")
	if err := os.WriteFile(pinFile, []byte("314159\n"), 0o600); err != nil {
		n.t.Fatal(err)
	}
	argv := []string{n.bin, "chat", "--home", filepath.Join(n.dir, user), "--pin-file", pinFile, "--log", filepath.Join(n.dir, user+".log")}
	argv = append(argv, args...)
	for i, a := range argv {
		argv[i] = "'" + a + "'"
	}
	shell := "trap true INT; " + strings.Join(argv, " ") + "; echo \"EXITED $?\"; sleep 3600"
	if _, err := exec.Command("tmux", "-S", n.sock, "has-session", "-t", user).CombinedOutput(); err == nil {
		n.tmux("kill-session", "-t", user)
	}
	n.tmux("new-session", "-d", "-s", user, "-x", "220", "-y", "50", "sh", "-c", shell)
	n.tmux("set-option", "-t", user, "history-limit", "10000")
	return &pane{n: n, name: user}
}

// startNoPIN runs anom chat for an existing device, asking for the PIN.
func (n *tmuxNet) startNoPIN(user string) *pane {
	n.t.Helper()
	shell := fmt.Sprintf("trap true INT; '%s' chat --home '%s'; echo \"EXITED $?\"; sleep 3600", n.bin, filepath.Join(n.dir, user))
	n.tmux("kill-session", "-t", user)
	n.tmux("new-session", "-d", "-s", user, "-x", "220", "-y", "50", "sh", "-c", shell)
	return &pane{n: n, name: user}
}

func (n *tmuxNet) activate(i int, user string) *pane {
	n.t.Helper()
	p := n.start(user, "--invite", n.invite, "--code", n.codes[i], "--username", user)
	p.wait("Type /help for the commands.")
	return p
}

// screen is everything the pane has shown, scrollback included.
func (p *pane) screen() string {
	p.n.t.Helper()
	return p.n.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", p.name)
}

// send types a line and Enter.
func (p *pane) send(line string) {
	p.n.t.Helper()
	p.n.tmux("send-keys", "-t", p.name, "-l", line)
	p.n.tmux("send-keys", "-t", p.name, "Enter")
}

// wait returns the screen once it shows want (a regular expression's
// first submatch, or the text) after the mark-th occurrence of after.
func (p *pane) wait(want string) string {
	p.n.t.Helper()
	return p.waitRe(regexp.MustCompile(regexp.QuoteMeta(want)))[0]
}

// waitRe waits for re on the screen and returns its (last) match.
func (p *pane) waitRe(re *regexp.Regexp) []string {
	p.n.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		s := p.screen()
		if m := re.FindAllStringSubmatch(s, -1); len(m) > 0 {
			return m[len(m)-1]
		}
		if strings.Contains(s, "EXITED") || time.Now().After(deadline) {
			p.n.t.Fatalf("%s: %q not shown; screen:\n%s", p.name, re, s)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// count is how many times text is on the screen.
func (p *pane) count(text string) int {
	p.n.t.Helper()
	return strings.Count(p.screen(), text)
}

// command types a line and waits until it shows want n times in all.
func (p *pane) expect(line, want string) {
	p.n.t.Helper()
	before := p.count(want)
	p.send(line)
	deadline := time.Now().Add(45 * time.Second)
	for p.count(want) <= before {
		if time.Now().After(deadline) {
			p.n.t.Fatalf("%s: after %q, %q not shown; screen:\n%s", p.name, line, want, p.screen())
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// waitCount waits until text is shown n times.
func (p *pane) waitCount(text string, n int) {
	p.n.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for p.count(text) < n {
		if time.Now().After(deadline) {
			p.n.t.Fatalf("%s: %q shown %d times, want %d; screen:\n%s", p.name, text, p.count(text), n, p.screen())
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// escrowLine is how the chat states the policy of admin escrow init
// --custodians A,B,C --threshold 2.
const escrowLine = "every message is also sealed to the network's escrow key; escrow: 2 of 3 custodians: A, B, C; warrant issuers: Court; policy v1 (transparency log entry "

var deviceRe = regexp.MustCompile(`anom chat: [a-z]+, device ([0-9a-f]{32})`)

func (p *pane) device() string {
	p.n.t.Helper()
	m := deviceRe.FindStringSubmatch(p.screen())
	if m == nil {
		p.n.t.Fatalf("%s: no device ID shown", p.name)
	}
	return m[1]
}

var safetyRe = regexp.MustCompile(`device ([0-9a-f]{32}) \(until [0-9-]+\):\n\s+(\d{5} \d{5} \d{5} \d{5})\n\s+(\d{5} \d{5} \d{5} \d{5})\n\s+(\d{5} \d{5} \d{5} \d{5})`)

func TestChatTmux(t *testing.T) {
	n := newTmuxNet(t, 4)
	alice := n.activate(0, "alice")
	bob := n.activate(1, "bob")
	carol := n.activate(2, "carol")
	for _, p := range []*pane{alice, bob, carol} {
		p.wait("escrow policy: " + escrowLine)
		p.wait("No chats yet")
	}

	// Bad input: one-line errors, and the client keeps running.
	alice.expect("/frobnicate", `error: unknown command "/frobnicate"`)
	alice.expect("/chat x", "error: /chat: bad username")
	alice.expect("hello nobody", "error: no chat selected")
	alice.expect("/get 1 /tmp", "error: no chat selected")
	alice.expect("/chat nosuchuser", "error: there is no user nosuchuser on this network")

	// 1:1, both ways.
	alice.expect("/chat bob", "* chat 1 bob made with alice (you), bob and made current\n* this chat: "+escrowLine)
	bob.wait("* you were added to chat 1 alice (alice, bob (you)): it is now the current chat\n* this chat: " + escrowLine)
	alice.send("hello bob")
	bob.waitRe(regexp.MustCompile(`\[\d\d:\d\d:\d\d\] alice: hello bob`))
	bob.send("hi alice")
	alice.waitRe(regexp.MustCompile(`\[\d\d:\d\d:\d\d\] bob: hi alice`))

	// A line longer than a terminal's line mode keeps (4,095) goes whole.
	long := strings.Repeat("0123456789", 500)
	alice.send(long)
	bob.wait("] alice: " + long)

	// Search, and a message deleted for everyone.
	alice.expect("/search HELLO", `Messages of chat 1 bob holding "HELLO":`)
	alice.waitRe(regexp.MustCompile(`#\d+ \[\d\d:\d\d:\d\d\] alice: hello bob`))
	alice.send("oops wrong chat")
	bob.wait("] alice: oops wrong chat")
	alice.expect("/search oops", `Messages of chat 1 bob holding "oops":`)
	oops := alice.waitRe(regexp.MustCompile(`#(\d+) \[\d\d:\d\d:\d\d\] alice: oops wrong chat`))[1]
	alice.expect("/delete "+oops, "* message #"+oops+" of chat 1 bob deleted for everyone")
	bob.wait("] alice deleted a message")
	bob.expect("/search oops", `(no message of chat 1 alice holds "oops")`)

	// A group of three; bob's current chat stays the 1:1, so the group's
	// messages are labelled.
	alice.expect("/group team bob,carol", "* group chat 2 team made with alice (you), bob, carol and made current")
	// The name comes in the group, after the welcome: the added line
	// may show the members or the name.
	bob.waitRe(regexp.MustCompile(`\* you were added to chat 2 (alice,carol|team) \(alice, bob \(you\), carol\): /switch 2`))
	carol.waitRe(regexp.MustCompile(`\* you were added to chat 1 (alice,bob|team) \(alice, bob, carol \(you\)\): it is now the current chat`))
	bob.wait(`alice named the chat "team"`)
	carol.wait(`alice named the chat "team"`)
	alice.send("hello team")
	bob.wait("(chat 2 team) alice: hello team")
	carol.wait("] alice: hello team")
	carol.send("carol here")
	alice.wait("] carol: carol here")
	bob.wait("(chat 2 team) carol: carol here")

	// A file, saved by bob from the group.
	file := filepath.Join(n.dir, "notes.txt")
	want := []byte("the minutes of the meeting\nline two\n")
	if err := os.WriteFile(file, want, 0o600); err != nil {
		t.Fatal(err)
	}
	alice.expect("/send-file "+file, `alice sent file "notes.txt" (36 B, text/plain`)
	m := bob.waitRe(regexp.MustCompile(`\(chat 2 team\) alice sent file "notes.txt" \(36 B, text/plain[^)]*\) #(\d+): /get \d+ DIR saves it`))
	bob.expect("/switch 2", "* chat 2 team is now current\n* this chat: "+escrowLine)
	saveDir := filepath.Join(n.dir, "bob-files")
	bob.expect("/get "+m[1]+" "+saveDir, "* saved #"+m[1]+" to "+filepath.Join(saveDir, "notes.txt"))
	got, err := os.ReadFile(filepath.Join(saveDir, "notes.txt"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("saved file = %q, %v; want %q", got, err, want)
	}
	bob.expect("/get 1 "+saveDir, "error: ")

	// Members: every user and device.
	alice.expect("/members", "Chat 2 team (id ")
	alice.wait("3 user(s), 3 device(s)")
	scr := alice.screen()
	for _, p := range []*pane{alice, bob, carol} {
		if !strings.Contains(scr, p.device()) {
			t.Errorf("alice's /members lacks %s's device %s:\n%s", p.name, p.device(), scr)
		}
	}
	if !strings.Contains(scr, "device "+alice.device()+" (this device)") {
		t.Errorf("alice's /members does not mark her own device:\n%s", scr)
	}

	// Safety numbers: both sides show the same number for each other.
	alice.expect("/safety bob", "Safety numbers with bob")
	bob.expect("/safety alice", "Safety numbers with alice")
	sa := safetyRe.FindAllStringSubmatch(alice.screen(), -1)
	sb := safetyRe.FindAllStringSubmatch(bob.screen(), -1)
	if len(sa) == 0 || len(sb) == 0 {
		t.Fatalf("no safety numbers shown:\n%s\n---\n%s", alice.screen(), bob.screen())
	}
	a, b := sa[len(sa)-1], sb[len(sb)-1]
	if a[1] != bob.device() || b[1] != alice.device() {
		t.Fatalf("safety numbers for devices %s and %s", a[1], b[1])
	}
	if strings.Join(a[2:], " ") != strings.Join(b[2:], " ") {
		t.Fatalf("safety numbers differ: %v vs %v", a[2:], b[2:])
	}
	// They match: alice marks bob's device verified.
	alice.expect("/safety bob verify "+bob.device()[:8], "* bob's device "+bob.device()+" is now marked verified on this device")
	alice.expect("/safety bob", "  device "+bob.device()+" (until ")
	alice.waitRe(regexp.MustCompile(`device ` + bob.device() + ` \(until [0-9-]+\) VERIFIED:`))

	// Policy, contacts, timer.
	alice.expect("/policy", "* this chat: "+escrowLine)
	alice.wait("opening a message needs a warrant signed by Court and 2 of the custodians A, B, C, each checking it")
	alice.expect("/contacts", "Contacts:")
	alice.wait("bob                  1 device(s), in chat(s) 1, 2")
	alice.expect("/timer 1h", "* messages in chat 2 team now disappear 1h0m0s after they arrive")
	carol.wait("alice set disappearing messages to 1h0m0s")

	// Removal: carol is told, and alice's chat shows two users.
	alice.expect("/remove carol", "* chat 2 team now has alice (you), bob")
	carol.wait("!!! you were removed from chat 1 team !!!")
	carol.expect("hello?", "error: you are no longer in chat 1")
	// Added back, carol joins the new epoch and reads what follows
	// (issue 9, item 1).
	alice.expect("/add carol", "* chat 2 team now has alice (you), bob, carol")
	carol.wait("* you were added to chat 1 team")
	alice.send("welcome back carol")
	carol.wait("alice: welcome back carol")

	// A server restart: the clients reconnect by themselves and go on.
	n.stopServer()
	alice.wait("! disconnected from the server")
	// What is typed meanwhile waits, marked, and goes out on reconnecting.
	alice.send("written while the server was down")
	alice.wait("] alice: written while the server was down (pending: sent once the server is reachable)")
	n.startServer()
	alice.wait("* reconnected")
	bob.wait("* reconnected")
	alice.wait("] alice: written while the server was down (sent)")
	carol.wait("] alice: written while the server was down")
	alice.expect("/switch 1", "* chat 1 bob is now current")
	alice.send("after the restart")
	bob.wait("(chat 1 alice) alice: after the restart")

	// Offline catch-up: bob leaves, alice writes, bob comes back.
	bob.expect("/quit", "EXITED 0")
	alice.expect("/switch 1", "* chat 1 bob is now current")
	alice.send("while you were away")
	alice.wait("] alice: while you were away")
	// Piped input (printf ... | anom chat): a long line goes whole, one
	// over the message limit is refused, the last line needs no newline,
	// and the end of the input ends the chat.
	piped := exec.Command(n.bin, "chat", "--home", filepath.Join(n.dir, "bob"), "--pin-file", filepath.Join(n.dir, "bob.pin"))
	piped.Stdin = strings.NewReader(strings.Repeat("p", 5000) + "\n" + strings.Repeat("h", 70000) + "\npiped last")
	out, err := piped.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "error: line too long: a message is at most 65536 bytes; nothing was sent") {
		t.Fatalf("piped anom chat: %v\n%.3000s", err, out)
	}
	alice.wait("bob: " + strings.Repeat("p", 5000))
	alice.wait("bob: piped last")
	if strings.Contains(alice.screen(), "hhhhhhhh") {
		t.Error("alice got part of a line over the message limit")
	}
	bob = n.start("bob")
	bob.wait("Type /help for the commands.")
	bob.wait("* 2 team (alice,carol)\n") // the chat current when he left
	bob.expect("/switch 1", "* chat 1 alice is now current")
	bob.wait("] alice: while you were away")
	bob.send("back")
	alice.wait("] bob: back")

	// Ctrl-C leaves quietly, at the PIN prompt as in the chat.
	bob.n.tmux("send-keys", "-t", "bob", "C-c")
	bob.wait("EXITED 0")
	bob = n.startNoPIN("bob")
	bob.wait("PIN: ")
	bob.n.tmux("send-keys", "-t", "bob", "C-c")
	bob.wait("EXITED 0")
	bob = n.startNoPIN("bob")
	bob.wait("PIN: ")
	bob.send("000000")
	bob.wait("wrong PIN: 9 tries left; then a wrong PIN wipes this device")
	bob.send("314159")
	bob.wait("Type /help for the commands.")

	// A second device for alice: it shows a short pairing code, alice
	// approves it from her first device after comparing fingerprints, and
	// it joins her chats.
	alice2 := n.start("alice2", "--server", n.addr, "--ca-fingerprint", n.fp, "--root", n.root, "--code", n.codes[3], "--username", "alice", "--pair")
	pm := alice2.waitRe(regexp.MustCompile(`type:  /approve ([A-Za-z0-9-]+)\n.*fingerprint:  ([0-9 ]+)\n`))
	if _, err := identity.ParseShortCode(pm[1]); err != nil {
		t.Fatalf("the new device shows %q, not a short pairing code: %v", pm[1], err)
	}
	alice2.wait("Press Enter once it is approved:")
	alice.expect("/approve "+pm[1], "    Fingerprint: "+strings.TrimSpace(pm[2]))
	alice.expect("/approve confirm", "* approved: the new device can now activate as alice")
	alice2.send("")
	alice2.wait("Type /help for the commands.")
	alice2.wait("* you were added to chat")
	alice.wait("is active (you approved it from this device)")
	bob.wait("alice [2 devices], bob (you)")
	bob.wait("!!! alice has a new device " + alice2.device() + ": compare its safety number (/safety alice) !!!")
	bob.expect("/switch 1", "* chat 1 alice is now current")
	bob.send("to both of alice's devices")
	alice.wait("] bob: to both of alice's devices")
	alice2.wait("bob: to both of alice's devices")
	alice2.expect("/devices", "Your devices (alice):")
	alice2.wait("(this device)")

	// The kill switch and revocation, from the administrator.
	n.run("admin", "wipe", alice.device(), "--data", "net")
	alice.wait("!!! THIS DEVICE WAS WIPED (remote wipe): its keys and messages are gone !!!")
	alice.wait("EXITED 0")
	if _, err := os.Stat(filepath.Join(n.dir, "alice")); !os.IsNotExist(err) {
		t.Errorf("alice's state directory survived the remote wipe: %v", err)
	}
	n.run("admin", "revoke", bob.device(), "--data", "net")
	bob.wait("!!! this device was REVOKED by the network administrator; it can no longer connect !!!")
	bob.wait("EXITED 1")
	bob = n.start("bob")
	bob.wait("anom chat: this device has been revoked by the network administrator")

	// Wipe: asked to confirm, then the device is gone.
	carol.expect("/wipe", "Type /wipe confirm to go ahead")
	carol.expect("/wipe confirm", "EXITED 0")
	carol.wait("!!! THIS DEVICE WAS WIPED")
	if _, err := os.Stat(filepath.Join(n.dir, "carol")); !os.IsNotExist(err) {
		t.Errorf("carol's state directory survived the wipe: %v", err)
	}
}
