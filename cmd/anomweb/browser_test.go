//go:build !js

package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"anom/client"
	"anom/identity"
	"anom/internal/server"
	"anom/internal/servertest"
	"anom/internal/store/pebble"
	"anom/internal/tlstest"
	"anom/internal/wasmtest"
)

const (
	webPIN    = "314159"
	webDuress = "271828"
	// cheapKDF keeps the test quick; BenchmarkBrowserDefaultKDF measures
	// the real cost.
	cheapKDF = `{kdf: {time: 1, memoryKiB: 64, threads: 1}}`
)

// testNetwork is an in-process anom server over TLS on loopback.
type webNet struct {
	srv  *server.Server
	dist *servertest.Distributor
	net  client.Network
	spki string // base64 SHA-256 of the server certificate's public key
	tls  *tls.Config
	root *identity.RootKey
	dir  string        // the server's store
	cfg  server.Config // what the server runs with
	stop func()        // stops the server and closes its store
}

// newWebNet starts the network; configure, if given, changes the
// server's configuration first (an escrow policy, say).
func newWebNet(t testing.TB, configure ...func(*server.Config, *identity.RootKey)) *webNet {
	t.Helper()
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pki := tlstest.New(t, "127.0.0.1")
	dir := filepath.Join(t.TempDir(), "server")
	st, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Store: st, TLS: pki.Server, Name: "test.anom", SweepInterval: time.Second}
	servertest.Keys(t, &cfg, root)
	for _, f := range configure {
		f(&cfg, root)
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := servertest.Serve(t, srv, st, "127.0.0.1:0")
	leaf, err := x509.ParseCertificate(pki.Server.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return &webNet{
		srv:  srv,
		dist: servertest.AddDistributor(t, srv, root),
		net:  client.Network{Address: addr, CAFingerprint: sha256.Sum256(pki.CADER), Root: root.Public()},
		spki: base64.StdEncoding.EncodeToString(sum[:]),
		tls:  pki.Server,
		root: root,
		dir:  dir,
		cfg:  cfg,
		stop: stop,
	}
}

// restart stops the server and runs it again on the same store, its
// configuration changed by configure (another escrow policy, say), on a
// new port. An origin of serveHandler's keeps the old server's API: cut
// it (down) first and serve the app again on its address afterwards.
func (n *webNet) restart(t testing.TB, configure func(*server.Config, *identity.RootKey)) {
	t.Helper()
	n.stop()
	st, err := pebble.Open(n.dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := n.cfg
	cfg.Store = st
	configure(&cfg, n.root)
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	n.net.Address, n.stop = servertest.Serve(t, srv, st, "127.0.0.1:0")
	n.srv, n.cfg = srv, cfg
}

func (n *webNet) code(t testing.TB) string {
	t.Helper()
	return n.dist.Code(t, n.srv, 12, time.Hour).String()
}

// nativePeer is a terminal-side client.Client on the network.
type nativePeer struct {
	c      *client.Client
	events chan client.Event
}

func (n *webNet) native(t testing.TB, name string) *nativePeer {
	t.Helper()
	p := &nativePeer{events: make(chan client.Event, 1000)}
	cfg := client.Config{Dir: filepath.Join(t.TempDir(), name), KDF: client.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1},
		KeyPackages: 4, OnEvent: func(e client.Event) { p.events <- e }}
	c, err := client.Create(cfg, webPIN, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Activate(ctx, n.net, n.code(t), name); err != nil {
		t.Fatalf("activating %s: %v", name, err)
	}
	p.c = c
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(rctx, client.RunOptions{})
	}()
	t.Cleanup(func() {
		stop()
		c.Close()
		<-done
	})
	return p
}

// waitText waits for a message with text.
func (p *nativePeer) waitText(t testing.TB, text string) *client.Message {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e := <-p.events:
			if e.Type == client.EventMessage && e.Message.Content != nil && e.Message.Content.Text == text {
				return e.Message
			}
		case <-timeout:
			t.Fatalf("no message %q", text)
		}
	}
}

// page is the test page in a tab of a headless Chromium.
type page struct {
	t    testing.TB
	ctx  context.Context
	base string
}

// stageApp builds anom.wasm and the test page into a directory served on
// loopback and returns its URL and the wasm's path.
func stageApp(t testing.TB) (base, wasm string) {
	t.Helper()
	dir, wasm := stageFiles(t)
	return wasmtest.Serve(t, dir), wasm
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  string
)

// builtWasm builds anom.wasm once for the package's tests and returns its
// path (TestMain removes it).
func builtWasm(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "anomweb-test")
		if err != nil {
			buildErr = err.Error()
			return
		}
		buildDir = dir
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "anom.wasm"), "anom/cmd/anomweb")
		cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Sprintf("building anom.wasm: %v\n%s", err, out)
		}
	})
	if buildErr != "" {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "anom.wasm")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// stageFiles builds anom.wasm and puts it with the test page in a new
// directory.
func stageFiles(t testing.TB) (dir, wasm string) {
	t.Helper()
	dir = t.TempDir()
	wasm = filepath.Join(dir, "anom.wasm")
	b, err := os.ReadFile(builtWasm(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wasm, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"index.html", "page.js"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "wasm_exec.js"), wasmtest.WasmExec(t), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, wasm
}

// serveApp serves the test page from dir and the server's client port
// (/v1/) on one TLS listener, as anom server serves the web app: one
// origin, so the page's fetch of attachment blobs is same-origin. It
// returns the page's URL and the network as the page reaches it.
func (n *webNet) serveApp(t testing.TB, dir string) (string, client.Network) {
	t.Helper()
	o := n.serveOrigin(t, dir, "127.0.0.1:0")
	nw := n.net
	nw.Address = o.addr
	return "https://" + nw.Address + "/", nw
}

// csp is the Content-Security-Policy serveOrigin gives the page.
const csp = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; object-src 'none'; base-uri 'none'"

// origin is the listener of serveApp; down cuts it and every connection
// it accepted (the browser's WebSocket too), as a server going away.
type origin struct {
	addr string
	hs   *http.Server
	mu   sync.Mutex
	ln   net.Listener
	cs   []net.Conn
}

func (o *origin) Accept() (net.Conn, error) {
	c, err := o.ln.Accept()
	if err == nil {
		o.mu.Lock()
		o.cs = append(o.cs, c)
		o.mu.Unlock()
	}
	return c, err
}
func (o *origin) Close() error   { return o.ln.Close() }
func (o *origin) Addr() net.Addr { return o.ln.Addr() }

func (o *origin) down() {
	o.hs.Close()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, c := range o.cs {
		c.Close()
	}
	o.cs = nil
}

func (n *webNet) serveOrigin(t testing.TB, dir, addr string) *origin {
	t.Helper()
	// The page under the strict policy web/API.md gives: no inline or
	// remote script, no eval; WebAssembly compiles (without
	// 'wasm-unsafe-eval' Chromium refuses to compile anom.wasm).
	files := http.FileServer(http.Dir(dir))
	return n.serveHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		files.ServeHTTP(w, r)
	}), addr)
}

// serveHandler is serveOrigin with the page's files served by app.
func (n *webNet) serveHandler(t testing.TB, app http.Handler, addr string) *origin {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", n.srv.Handler())
	mux.Handle("/", app)
	o := &origin{addr: ln.Addr().String(), ln: ln, hs: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go o.hs.Serve(tls.NewListener(o, n.tls))
	t.Cleanup(o.down)
	return o
}

// load (re)loads the page and waits for the anom object.
func (p *page) load() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(p.base+"index.html")); err != nil {
		p.t.Fatalf("loading the page: %v", err)
	}
	for {
		st, err := chromedp.Run(ctx, chromedp.Evaluate[string](`globalThis.__anomLoadError || (globalThis.__anomLoaded ? "ok" : "")`))
		if err != nil {
			p.t.Fatalf("waiting for anom: %v", err)
		}
		if st == "ok" {
			return
		}
		if st != "" {
			p.t.Fatalf("loading anom.wasm: %s", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) into T.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := evalErr[T](p, expr)
	if err != nil {
		p.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

func evalErr[T any](p *page, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// js quotes s as a JavaScript string.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitEvent waits for an event of the page's that match accepts.
func waitEvent(p *page, match func(eventJSON) bool) eventJSON {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for seen := 0; time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		evs := eval[[]eventJSON](p, `__events`)
		for _, e := range evs[seen:] {
			if match(e) {
				return e
			}
		}
		seen = len(evs)
	}
	p.t.Fatal("no such event in the page")
	return eventJSON{}
}

type dbDump struct {
	Records int      `json:"records"`
	Bytes   string   `json:"bytes"`
	Keys    []string `json:"keys"`
}

// TestBrowserClient drives the web client in headless Chromium against
// an anom server on loopback: create and activate, a 1:1 chat both ways
// with a native client, the figures, the state kept over a reload, a
// wrong PIN, and the device connected again after the PIN.
func TestBrowserClient(t *testing.T) {
	wasmtest.Chromium(t)
	n := newWebNet(t)
	base, wasm := stageApp(t)
	bob := n.native(t, "bob")

	b := wasmtest.NewBrowser(t, "", chromedp.Flag("ignore-certificate-errors-spki-list", n.spki))
	p := &page{t: t, ctx: b.Ctx, base: base}
	start := time.Now()
	p.load()
	load := time.Since(start)

	if st := eval[statusJSON](p, `anom.status()`); st.State != "none" {
		t.Fatalf("status of a new browser = %+v, want none", st)
	}
	type timedResult struct {
		Ms float64 `json:"ms"`
	}
	inv := n.net.Invite()
	ca := eval[timedResult](p, fmt.Sprintf(`timed(async () => { await anom.create(%s, %s, %s); return await anom.activate(%s, %s, "alice"); })`,
		js(webPIN), js(webDuress), cheapKDF, js(inv), js(n.code(t))))
	st := eval[statusJSON](p, `anom.status()`)
	if st.State != "unlocked" || !st.Activated || st.Username != "alice" {
		t.Fatalf("status after activation = %+v", st)
	}
	if code := eval[string](p, fmt.Sprintf(`anom.create(%s, %s).then(() => "created", (e) => e.code)`, js(webPIN), js(webDuress))); code != "exists" {
		t.Fatalf("create over an unlocked device: %s, want exists", code)
	}

	// 1:1 chat: browser -> native -> browser.
	type started struct {
		GroupID string `json:"groupId"`
		Created bool   `json:"created"`
	}
	ch := eval[started](p, `anom.startChat("bob")`)
	if !ch.Created {
		t.Fatalf("startChat: %+v", ch)
	}
	if again := eval[started](p, `anom.startChat("bob")`); again.GroupID != ch.GroupID || again.Created {
		t.Fatalf("startChat again = %+v, want the same chat", again)
	}
	const hello = "hello from the browser"
	eval[any](p, fmt.Sprintf(`anom.send(%s, %s)`, js(ch.GroupID), js(hello)))
	got := bob.waitText(t, hello)
	if got.Username != "alice" || hex.EncodeToString(got.Group) != ch.GroupID {
		t.Fatalf("bob got %+v", got)
	}
	const reply = "hello from the terminal"
	if err := bob.c.SendText(context.Background(), got.Group, reply); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(p, func(e eventJSON) bool { return e.Type == "message" && e.Message != nil && e.Message.Text == reply })
	if e.Message.Username != "bob" || e.GroupID != ch.GroupID {
		t.Fatalf("browser got %+v", e.Message)
	}
	chats := eval[[]chatJSON](p, `anom.chats()`)
	if len(chats) != 1 || chats[0].ID != ch.GroupID || len(chats[0].Users) != 1 || chats[0].Users[0] != "bob" || chats[0].Escrow == "" {
		t.Fatalf("chats = %+v", chats)
	}

	// Figures: encrypt+seal+send of a 1 KiB text.
	type bench struct {
		Mean, P50, P95 float64
		Pending        int
	}
	bs := eval[bench](p, fmt.Sprintf(`benchSend(%s, 1024, 50)`, js(ch.GroupID)))
	t.Logf("FIGURES: wasm %s; page load to anom ready %v; create+activate %.0f ms (cheap KDF); send 1 KiB text: mean %.1f ms, p50 %.1f ms, p95 %.1f ms over 50 (%d pending)",
		wasmSize(t, wasm), load.Round(time.Millisecond), ca.Ms, bs.Mean, bs.P50, bs.P95, bs.Pending)

	// Figures: native send to the page's event (decrypt, check, store,
	// hand to JavaScript), one message at a time.
	const rounds = 100
	var lat []float64
	for i := range rounds {
		text := fmt.Sprintf("ping %d", i)
		if err := bob.c.SendText(context.Background(), got.Group, text); err != nil {
			t.Fatal(err)
		}
		type arrival struct {
			SentAt int64 `json:"sentAt"`
			PageMs int64 `json:"pageMs"`
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			a, err := evalErr[*arrival](p, fmt.Sprintf(`(() => { const e = __events.find((e) => e.type === "message" && e.message && e.message.text === %s); return e ? {sentAt: e.message.sentAt, pageMs: e.pageMs} : null })()`, js(text)))
			if err != nil {
				t.Fatal(err)
			}
			if a != nil {
				lat = append(lat, float64(a.PageMs-a.SentAt))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the page got no %q", text)
			}
		}
	}
	slices.Sort(lat)
	t.Logf("FIGURES: native send to browser event over %d messages: p50 %.0f ms, p95 %.0f ms (the sender's millisecond clock to the page's)",
		rounds, lat[rounds/2], lat[rounds*95/100])

	// A reload keeps the device; a wrong PIN costs a try; the PIN opens
	// it with its history.
	p.load()
	if st := eval[statusJSON](p, `anom.status()`); st.State != "locked" {
		t.Fatalf("status after reload = %+v, want locked", st)
	}
	wrong := eval[unlockJSON](p, `anom.unlock("999111")`)
	if wrong.Result != "wrong" || wrong.TriesLeft == nil || *wrong.TriesLeft != defaultMaxFailedUnlocks-1 {
		t.Fatalf("wrong PIN = %+v", wrong)
	}
	if u := eval[unlockJSON](p, fmt.Sprintf(`anom.unlock(%s)`, js(webPIN))); u.Result != "ok" || u.Username != "alice" {
		t.Fatalf("unlock = %+v", u)
	}
	hist := eval[[]messageJSON](p, fmt.Sprintf(`anom.history(%s)`, js(ch.GroupID)))
	var texts []string
	for _, m := range hist {
		if m.Kind == "text" && len(m.Text) < 100 {
			texts = append(texts, m.Text)
		}
	}
	if len(texts) != 2+rounds || texts[0] != hello || texts[1] != reply || texts[len(texts)-1] != fmt.Sprintf("ping %d", rounds-1) {
		t.Fatalf("history after reload = %q", texts)
	}
	// And it is connected again (Run), so a message reaches it.
	const later = "after the reload"
	if err := bob.c.SendText(context.Background(), got.Group, later); err != nil {
		t.Fatal(err)
	}
	waitEvent(p, func(e eventJSON) bool { return e.Type == "message" && e.Message != nil && e.Message.Text == later })

	t.Logf("browser test took %v", time.Since(start).Round(time.Millisecond))
}

// TestAttackBrowserStorage: what IndexedDB holds of a device with a chat
// is ciphertext (no message, username, PIN or server address in any
// record, nor a name in any key); a second tab cannot open the device;
// the duress PIN leaves no record at all (no readable key), tells the
// page of no wipe, and the PIN then finds no device; too many wrong PINs
// leave no record either.
func TestAttackBrowserStorage(t *testing.T) {
	wasmtest.Chromium(t)
	n := newWebNet(t)
	base, _ := stageApp(t)
	bob := n.native(t, "bob")
	b := wasmtest.NewBrowser(t, "", chromedp.Flag("ignore-certificate-errors-spki-list", n.spki))
	p := &page{t: t, ctx: b.Ctx, base: base}
	p.load()
	eval[any](p, fmt.Sprintf(`anom.create(%s, %s, %s).then(() => anom.activate(%s, %s, "alice"))`,
		js(webPIN), js(webDuress), cheapKDF, js(n.net.Invite()), js(n.code(t))))
	type started struct {
		GroupID string `json:"groupId"`
	}
	ch := eval[started](p, `anom.startChat("bob")`)
	const hello = "hello from the browser"
	eval[any](p, fmt.Sprintf(`anom.send(%s, %s)`, js(ch.GroupID), js(hello)))
	got := bob.waitText(t, hello)
	const reply = "hello from the terminal"
	if err := bob.c.SendText(context.Background(), got.Group, reply); err != nil {
		t.Fatal(err)
	}
	waitEvent(p, func(e eventJSON) bool { return e.Type == "message" && e.Message != nil && e.Message.Text == reply })
	eval[any](p, `anom.createGroup("secret plans", ["bob"])`)

	// A second tab of the app cannot open the device while this one has
	// it.
	tab, closeTab := chromedp.NewContext(b.Ctx)
	p2 := &page{t: t, ctx: tab, base: base}
	// Listening before the first navigation also makes chromedp track
	// the new tab's page (without it, evaluations in the tab hung).
	chromedp.Listen(tab, func(ev any) {
		switch e := ev.(type) {
		case *cdpruntime.EventConsoleAPICalled:
			for _, a := range e.Args {
				t.Logf("tab2 console: %s", a.Value)
			}
		case *cdpruntime.EventExceptionThrown:
			t.Logf("tab2 exception: %s", e.ExceptionDetails.Text)
		}
	})
	p2.load()
	if code := eval[string](p2, fmt.Sprintf(`anom.unlock(%s).then(() => "unlocked", (e) => e.code)`, js(webPIN))); code != "in-use" {
		t.Fatalf("unlock in a second tab: %s, want in-use", code)
	}
	closeTab()

	// Nothing in IndexedDB is plaintext: not the messages, not the
	// usernames, not the PIN.
	dump := eval[dbDump](p, `dumpDB()`)
	raw, err := base64.StdEncoding.DecodeString(dump.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{hello, reply, "alice", "bob", "secret plans", webPIN, webDuress, n.net.Address} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("IndexedDB holds %q in plaintext", s)
		}
	}
	for _, k := range dump.Keys {
		for _, s := range []string{"alice", "bob", ch.GroupID} {
			if strings.Contains(k, s) {
				t.Errorf("IndexedDB key %s names %q", k, s)
			}
		}
	}

	// The duress PIN (typed in the page that had the device unlocked, so
	// that an event it sent would be seen): the device is erased and
	// IndexedDB holds nothing.
	eval[any](p, `anom.lock()`)
	if u := eval[unlockJSON](p, fmt.Sprintf(`anom.unlock(%s)`, js(webDuress))); u.Result != "duress-wiped" {
		t.Fatalf("duress unlock = %+v", u)
	}
	if dump := eval[dbDump](p, `dumpDB()`); dump.Records != 0 {
		t.Fatalf("IndexedDB after the duress PIN holds %d records: %q", dump.Records, dump.Keys)
	}
	if st := eval[statusJSON](p, `anom.status()`); st.State != "none" {
		t.Fatalf("status after the duress PIN = %+v, want none", st)
	}
	if u := eval[unlockJSON](p, fmt.Sprintf(`anom.unlock(%s)`, js(webPIN))); u.Result != "none" {
		t.Fatalf("the PIN after the duress PIN = %+v, want none", u)
	}
	for _, e := range eval[[]eventJSON](p, `__events`) {
		if e.Type == "wiped" {
			t.Fatalf("the duress PIN told the page of a wipe: %+v", e)
		}
	}

	// Too many wrong PINs wipe the device as on the terminal.
	eval[any](p, fmt.Sprintf(`anom.create(%s, %s, {maxFailedUnlocks: 2, kdf: {time: 1, memoryKiB: 64, threads: 1}}).then(() => anom.lock())`, js(webPIN), js(webDuress)))
	if u := eval[unlockJSON](p, `anom.unlock("999111")`); u.Result != "wrong" || u.TriesLeft == nil || *u.TriesLeft != 1 {
		t.Fatalf("first wrong PIN = %+v, want 1 try left", u)
	}
	if u := eval[unlockJSON](p, `anom.unlock("999112")`); u.Result != "wiped" {
		t.Fatalf("last wrong PIN = %+v, want wiped", u)
	}
	if st := eval[statusJSON](p, `anom.status()`); st.State != "wiped" {
		t.Fatalf("status after too many wrong PINs = %+v", st)
	}
	if dump := eval[dbDump](p, `dumpDB()`); dump.Records != 0 {
		t.Fatalf("IndexedDB after too many wrong PINs holds %d records: %q", dump.Records, dump.Keys)
	}
}

func wasmSize(t testing.TB, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return fmt.Sprintf("%.1f MiB raw, %.1f MiB gzip -9", float64(len(b))/(1<<20), float64(gz.Len())/(1<<20))
}

// TestBrowserGroupsAndRemoteWipe: the browser makes a named group with two
// native clients, both get its text, a member is removed; safety numbers
// and a verified mark; own devices; then a remote wipe from the server
// (as anom admin wipe) erases the device: the page hears "wiped" and
// IndexedDB is left empty.
func TestBrowserGroupsAndRemoteWipe(t *testing.T) {
	wasmtest.Chromium(t)
	n := newWebNet(t)
	base, _ := stageApp(t)
	bob, carol := n.native(t, "bob"), n.native(t, "carol")
	b := wasmtest.NewBrowser(t, "", chromedp.Flag("ignore-certificate-errors-spki-list", n.spki))
	p := &page{t: t, ctx: b.Ctx, base: base}
	p.load()
	eval[any](p, fmt.Sprintf(`anom.create(%s, %s, %s).then(() => anom.activate(%s, %s, "alice"))`,
		js(webPIN), js(webDuress), cheapKDF, js(n.net.Invite()), js(n.code(t))))

	type made struct {
		GroupID string `json:"groupId"`
		Warning string `json:"warning"`
	}
	g := eval[made](p, `anom.createGroup("team", ["bob", "carol", "alice"])`)
	if g.Warning != "" {
		t.Fatalf("createGroup: %+v", g)
	}
	const text = "hello team"
	eval[any](p, fmt.Sprintf(`anom.send(%s, %s)`, js(g.GroupID), js(text)))
	bob.waitText(t, text)
	carol.waitText(t, text)
	chats := eval[[]chatJSON](p, `anom.chats()`)
	if len(chats) != 1 || chats[0].Name != "team" || strings.Join(chats[0].Users, ",") != "bob,carol" {
		t.Fatalf("chats = %+v", chats)
	}
	eval[any](p, fmt.Sprintf(`anom.removeMembers(%s, ["carol"])`, js(g.GroupID)))
	if chats := eval[[]chatJSON](p, `anom.chats()`); strings.Join(chats[0].Users, ",") != "bob" {
		t.Fatalf("users after removing carol = %q", chats[0].Users)
	}
	if code := eval[string](p, `anom.startChat("nobody").then(() => "made", (e) => e.code)`); code != "not-found" {
		t.Fatalf("startChat with an unknown user: %s, want not-found", code)
	}

	type escrowJSON struct {
		Verified bool   `json:"verified"`
		None     bool   `json:"none"`
		Notice   string `json:"notice"`
	}
	if e := eval[escrowJSON](p, `anom.escrowPolicy()`); !e.Verified || !e.None || e.Notice == "" {
		t.Fatalf("escrowPolicy = %+v", e)
	}
	type safetyJSON struct {
		DeviceID string   `json:"deviceId"`
		Number   []string `json:"number"`
		Verified bool     `json:"verified"`
	}
	bobID, err := bob.c.Identity()
	if err != nil {
		t.Fatal(err)
	}
	sn := eval[[]safetyJSON](p, `anom.safety("bob")`)
	if len(sn) != 1 || sn[0].DeviceID != bobID.DeviceID.String() || len(sn[0].Number) != 12 || sn[0].Verified {
		t.Fatalf("safety = %+v", sn)
	}
	// The number is the one bob's side computes.
	st := eval[statusJSON](p, `anom.status()`)
	aliceDevs, err := bob.c.Devices(context.Background(), "alice")
	if err != nil || len(aliceDevs) != 1 {
		t.Fatalf("alice's devices from bob: %v, %v", aliceDevs, err)
	}
	want, err := bob.c.SafetyNumber(aliceDevs[0])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(sn[0].Number, " ") != strings.ReplaceAll(want.String(), "\n", " ") {
		t.Fatalf("safety number in the browser %v, bob's side %v", sn[0].Number, want)
	}
	eval[any](p, fmt.Sprintf(`anom.verify("bob", %s)`, js(sn[0].DeviceID)))
	if sn := eval[[]safetyJSON](p, `anom.safety("bob")`); !sn[0].Verified {
		t.Fatalf("safety after verify = %+v", sn)
	}
	type deviceJSON struct {
		DeviceID string `json:"deviceId"`
		Self     bool   `json:"self"`
	}
	if ds := eval[[]deviceJSON](p, `anom.devices()`); len(ds) != 1 || !ds[0].Self || ds[0].DeviceID != st.DeviceID {
		t.Fatalf("devices = %+v (self %s)", ds, st.DeviceID)
	}

	// Pairing: a second device of alice's (native) asks, the browser
	// approves after comparing the fingerprint, and it activates.
	second, err := client.Create(client.Config{Dir: filepath.Join(t.TempDir(), "alice2"), KDF: client.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, KeyPackages: 4}, webPIN, "")
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	pub, err := second.PublishPairing(context.Background(), n.net, "alice")
	if err != nil {
		t.Fatal(err)
	}
	type pairingJSON struct {
		Username    string `json:"username"`
		Fingerprint string `json:"fingerprint"`
	}
	if pr := eval[pairingJSON](p, fmt.Sprintf(`anom.lookupPairing(%s)`, js(pub.Code))); pr.Username != "alice" || pr.Fingerprint != pub.Request.Fingerprint() {
		t.Fatalf("lookupPairing = %+v, want fingerprint %s", pr, pub.Request.Fingerprint())
	}
	if code := eval[string](p, fmt.Sprintf(`anom.approveDevice(%s, "not it").then(() => "approved", (e) => e.code)`, js(pub.Code))); code != "pairing" {
		t.Fatalf("approveDevice with another fingerprint: %s, want pairing", code)
	}
	eval[any](p, fmt.Sprintf(`anom.approveDevice(%s, %s)`, js(pub.Code), js(pub.Request.Fingerprint())))
	actx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := second.Activate(actx, n.net, n.code(t), "alice"); err != nil {
		t.Fatalf("activating the paired device: %v", err)
	}
	if ds := eval[[]deviceJSON](p, `anom.devices()`); len(ds) != 2 {
		t.Fatalf("devices after pairing = %+v", ds)
	}

	// Remote wipe.
	id, err := identity.ParseDeviceID(st.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.srv.Wipe(context.Background(), id, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	waitEvent(p, func(e eventJSON) bool { return e.Type == "wiped" })
	deadline := time.Now().Add(10 * time.Second)
	for eval[statusJSON](p, `anom.status()`).State != "wiped" {
		if time.Now().After(deadline) {
			t.Fatalf("status after a remote wipe = %+v, want wiped", eval[statusJSON](p, `anom.status()`))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if dump := eval[dbDump](p, `dumpDB()`); dump.Records != 0 {
		t.Fatalf("IndexedDB after a remote wipe holds %d records: %q", dump.Records, dump.Keys)
	}
	if u := eval[unlockJSON](p, fmt.Sprintf(`anom.unlock(%s)`, js(webPIN))); u.Result != "none" {
		t.Fatalf("unlock after a remote wipe = %+v, want none", u)
	}
}

// TestBrowserAttachments: with the app served from the server's own
// origin (as anom server serves it), a photo sent from the browser and a
// voice note sent to it arrive byte-identical, each encrypted on the
// sending device and checked on the receiving one.
func TestBrowserAttachments(t *testing.T) {
	wasmtest.Chromium(t)
	n := newWebNet(t)
	dir, _ := stageFiles(t)
	base, appNet := n.serveApp(t, dir)
	bob := n.native(t, "bob")
	b := wasmtest.NewBrowser(t, "", chromedp.Flag("ignore-certificate-errors-spki-list", n.spki))
	p := &page{t: t, ctx: b.Ctx, base: base}
	p.load()
	eval[any](p, fmt.Sprintf(`anom.create(%s, %s, %s).then(() => anom.activate(%s, %s, "alice"))`,
		js(webPIN), js(webDuress), cheapKDF, js(appNet.Invite()), js(n.code(t))))
	type started struct {
		GroupID string `json:"groupId"`
	}
	ch := eval[started](p, `anom.startChat("bob")`)

	photo := make([]byte, 200<<10)
	rand.Read(photo)
	eval[any](p, fmt.Sprintf(`anom.sendFile(%s, fromB64(%s), "image/jpeg", "photo.jpg")`, js(ch.GroupID), js(base64.StdEncoding.EncodeToString(photo))))
	var ref *client.AttachmentRef
	var gid []byte
	for timeout := time.After(20 * time.Second); ref == nil; {
		select {
		case e := <-bob.events:
			if e.Type == client.EventMessage && e.Message.Content.Kind == client.KindAttachment {
				ref, gid = e.Message.Content.Attachment, e.Message.Group
			}
		case <-timeout:
			t.Fatal("bob got no photo")
		}
	}
	if ref.Name != "photo.jpg" || ref.MIME != "image/jpeg" {
		t.Fatalf("bob's photo reference: %+v", ref)
	}
	var got bytes.Buffer
	if err := bob.c.FetchAttachment(context.Background(), ref, &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), photo) {
		t.Fatalf("bob's photo differs (%d bytes, sent %d)", got.Len(), len(photo))
	}

	voice := make([]byte, 50<<10)
	rand.Read(voice)
	if _, err := bob.c.SendAttachment(context.Background(), gid, bytes.NewReader(voice), int64(len(voice)), "audio/ogg", "voice.ogg", 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(p, func(e eventJSON) bool { return e.Type == "message" && e.Message != nil && e.Message.Kind == "voice" })
	if e.Message.DurationMs != 1500 || e.Message.Attachment == nil || e.Message.Attachment.Size != uint64(len(voice)) {
		t.Fatalf("browser's voice note: %+v", e.Message)
	}
	b64 := eval[string](p, fmt.Sprintf(`anom.fetchAttachment(%s, %s).then(toB64)`, js(ch.GroupID), js(e.Message.ID)))
	if b64 != base64.StdEncoding.EncodeToString(voice) {
		t.Fatal("the voice note the browser opened differs from the one sent")
	}

	// Delete for everyone: the photo goes from both histories.
	hist := eval[[]messageJSON](p, fmt.Sprintf(`anom.history(%s)`, js(ch.GroupID)))
	photoID := ""
	for _, m := range hist {
		if m.Kind == "attachment" {
			photoID = m.ID
		}
	}
	if photoID == "" {
		t.Fatalf("no photo in the browser's history: %+v", hist)
	}
	eval[any](p, fmt.Sprintf(`anom.deleteMessage(%s, %s)`, js(ch.GroupID), js(photoID)))
	for _, m := range eval[[]messageJSON](p, fmt.Sprintf(`anom.history(%s)`, js(ch.GroupID))) {
		if m.ID == photoID {
			t.Fatal("the deleted photo is still in the browser's history")
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for gone := false; !gone; time.Sleep(50 * time.Millisecond) {
		h, err := bob.c.History(gid)
		if err != nil {
			t.Fatal(err)
		}
		gone = true
		for _, m := range h {
			if m.Content != nil && m.Content.Kind == client.KindAttachment {
				gone = false
			}
		}
		if !gone && time.Now().After(deadline) {
			t.Fatal("the deleted photo is still in bob's history")
		}
	}
}

// TestBrowserOffline: a text sent while the server cannot be reached is
// kept (pending, in the history) and sent once the device is connected
// again; the native side gets it.
func TestBrowserOffline(t *testing.T) {
	wasmtest.Chromium(t)
	n := newWebNet(t)
	dir, _ := stageFiles(t)
	o := n.serveOrigin(t, dir, "127.0.0.1:0")
	appNet := n.net
	appNet.Address = o.addr
	bob := n.native(t, "bob")
	b := wasmtest.NewBrowser(t, "", chromedp.Flag("ignore-certificate-errors-spki-list", n.spki))
	p := &page{t: t, ctx: b.Ctx, base: "https://" + o.addr + "/"}
	p.load()
	eval[any](p, fmt.Sprintf(`anom.create(%s, %s, %s).then(() => anom.activate(%s, %s, "alice"))`,
		js(webPIN), js(webDuress), cheapKDF, js(appNet.Invite()), js(n.code(t))))
	type started struct {
		GroupID string `json:"groupId"`
	}
	ch := eval[started](p, `anom.startChat("bob")`)

	o.down()
	waitEvent(p, func(e eventJSON) bool { return e.Type == "disconnected" })
	const text = "written offline"
	type sent struct {
		ID      string `json:"id"`
		Pending bool   `json:"pending"`
	}
	r := eval[sent](p, fmt.Sprintf(`anom.send(%s, %s)`, js(ch.GroupID), js(text)))
	if !r.Pending {
		t.Fatalf("send while the server is away = %+v, want pending", r)
	}
	hist := eval[[]messageJSON](p, fmt.Sprintf(`anom.history(%s)`, js(ch.GroupID)))
	if last := hist[len(hist)-1]; last.Text != text || !last.Pending {
		t.Fatalf("history's last message while offline = %+v", last)
	}

	n.serveOrigin(t, dir, o.addr)
	e := waitEvent(p, func(e eventJSON) bool { return e.Type == "sent" })
	if e.Message == nil || e.Message.ID != r.ID {
		t.Fatalf("sent event = %+v, want message %s", e, r.ID)
	}
	bob.waitText(t, text)
}
