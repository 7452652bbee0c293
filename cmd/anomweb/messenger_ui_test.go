//go:build !js

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"anom/identity"
	"anom/internal/escrowtest"
	"anom/internal/server"
	"anom/internal/wasmtest"
	"anom/internal/webapp"
	"anom/web"
)

// uiHelpers are the test's hands in the app's page: PIN gestures on the
// calculator, filling and submitting the messenger's forms, reading what
// it shows. A cheap key derivation keeps activation quick.
const uiHelpers = `
globalThis.anomCreateOptions = {kdf: {time: 1, memoryKiB: 64, threads: 1}};
// The Notification API as granted, noting what the app shows.
globalThis.__notes = [];
globalThis.Notification = class { static permission = 'granted'; static async requestPermission() { return 'granted'; }
  constructor(title, opts) { __notes.push(title + ': ' + (opts && opts.body)); } };
globalThis.__t = {
  q(sel) { const e = document.querySelector(sel); if (!e) throw new Error('no ' + sel); return e; },
  pin(pin) {
    const key = (k) => document.querySelector('button[data-key="' + k + '"]').click();
    key('clear'); key('clear');
    for (const d of pin) key(d);
    key('='); key('=');
  },
  fill(sel, v) { const e = this.q(sel); e.value = v; e.dispatchEvent(new Event('input', {bubbles: true})); },
  submit(sel) { this.q(sel).requestSubmit(); },
  chatItem(name) { return [...document.querySelectorAll('.chat-item')].find((b) => b.querySelector('.name').textContent.includes(name)); },
  open(name) { const b = this.chatItem(name); if (!b) throw new Error('no chat ' + name); b.click(); },
  send(text) { this.fill('#compose-text', text); this.submit('#compose'); },
  texts() { return [...document.querySelectorAll('#messages li .text')].map((e) => e.textContent); },
  hasText(text) { return this.texts().includes(text); },
  li(text) { return [...document.querySelectorAll('#messages li')].find((li) => { const p = li.querySelector('.text'); return p && p.textContent === text; }); },
  mark(text) { const li = this.li(text); const m = li && li.querySelector('.mark'); return m ? m.getAttribute('aria-label') : ''; },
  ready() { const m = document.getElementById('messenger'); return !!m && m.dataset.ready === 'true'; },
};
`

// uiApp is the web app as anom server serves it (internal/webapp, its
// Content-Security-Policy included), with the messenger's WebAssembly
// built from this tree.
func uiApp(t testing.TB) *webapp.Handler {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(web.Files(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(p, "dist/") {
			return err
		}
		b, err := fs.ReadFile(web.Files(), p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(builtWasm(t))
	if err != nil {
		t.Fatal(err)
	}
	m["dist/anom.wasm"] = &fstest.MapFile{Data: wasm}
	m["dist/wasm_exec.js"] = &fstest.MapFile{Data: wasmtest.WasmExec(t)}
	h, err := webapp.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// uiNet is the network of the messenger UI's tests: its escrow policy is
// version 1 of escrowtest.SignedPolicy's; the app served as anom server
// serves it, with the network's API, on the origin o at base.
type uiNet struct {
	*webNet
	app    *webapp.Handler
	o      *origin
	base   string
	invite string // the network as the page reaches it
}

func newUINet(t testing.TB) *uiNet {
	t.Helper()
	app := uiApp(t)
	n := newWebNet(t, func(c *server.Config, root *identity.RootKey) {
		c.EscrowPolicy = escrowtest.SignedPolicy(t, root.Signer(), 1)
		c.AlertDir = filepath.Join(t.TempDir(), "alerts")
		// The server logs the app's release and proves it, as anom
		// server does: the page checks it in the invite's network before
		// activating.
		c.WebRelease = &identity.WebRelease{Digest: app.Digest()}
	})
	app.SetProofSource(func(ctx context.Context, from uint64) ([]byte, error) {
		return n.srv.WebReleaseProof(ctx, app.Digest(), from)
	})
	u := &uiNet{webNet: n, app: app}
	u.o = n.serveHandler(t, u.app, "127.0.0.1:0")
	appNet := n.net
	appNet.Address = u.o.addr
	u.base = "https://" + u.o.addr + "/"
	u.invite = appNet.Invite()
	return u
}

// uiWait waits until the JavaScript condition cond holds in p's page.
func uiWait(p *page, cond, what string) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := evalErr[bool](p, cond)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			shown, _ := evalErr[string](p, `document.body.innerText.slice(0, 3000) + [...document.querySelectorAll('dialog.scan')].map((d) => '\n[scanner: ' + d.dataset.scan + ']').join('')`)
			p.t.Fatalf("%s: waited 30 s for %s (%v); the page shows:\n%s", what, cond, err, shown)
		}
		time.Sleep(15 * time.Millisecond)
	}
}

// uiOpen loads the app and waits for the WebAssembly's anom object.
func uiOpen(p *page) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(p.base)); err != nil {
		p.t.Fatalf("loading the app: %v", err)
	}
	uiWait(p, `typeof anom === 'object' && typeof anom.unlock === 'function'`, "the WebAssembly")
}

// uiBrowser starts a Chromium with a profile of its own, the app's
// helpers in every page.
func uiBrowser(t testing.TB, n *webNet, base string) *page {
	t.Helper()
	b := wasmtest.NewBrowser(t, "", chromedp.Flag("ignore-certificate-errors-spki-list", n.spki), chromedp.WindowSize(1280, 800),
		chromedp.Flag("use-fake-device-for-media-stream", true), chromedp.Flag("use-fake-ui-for-media-stream", true))
	if _, err := chromedp.Call(b.Ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: uiHelpers}); err != nil {
		t.Fatal(err)
	}
	return &page{t: t, ctx: b.Ctx, base: base}
}

// uiActivate goes through the first run in the UI: the PIN gesture on a
// browser without a device shows the activation form.
func uiActivate(p *page, shots *shooter, invite, code, username string) {
	p.t.Helper()
	uiOpen(p)
	eval[any](p, fmt.Sprintf(`__t.pin(%s)`, js(webPIN)))
	uiWait(p, `!!document.getElementById('first-run')`, "the first-run form")
	eval[any](p, fmt.Sprintf(`__t.fill('#fr-invite', %s); __t.fill('#fr-code', %s); __t.fill('#fr-username', %s);
		__t.fill('#fr-pin', %s); __t.fill('#fr-pin2', %s); __t.fill('#fr-duress', %s); __t.fill('#fr-duress2', '000000')`,
		js(invite), js(code), js(username), js(webPIN), js(webPIN), js(webDuress)))
	// A mistyped confirmation is caught before anything runs.
	eval[any](p, `__t.submit('#first-run')`)
	uiWait(p, `__t.q('#first-run .error').textContent.includes('duress PINs differ')`, "the duress PIN mismatch")
	eval[any](p, fmt.Sprintf(`__t.fill('#fr-duress2', %s)`, js(webDuress)))
	if shots != nil {
		shots.take(p, "first-run", "the activation form (invite, code, username, PIN and duress PIN twice)")
	}
	eval[any](p, `__t.submit('#first-run')`)
	uiWait(p, `__t.ready()`, username+"'s chat list after activation")
}

// uiUnlockMs types the PIN gesture on the calculator of p's locked page
// and returns the milliseconds, timed in the page, to the chat list shown.
func uiUnlockMs(p *page) float64 {
	p.t.Helper()
	return eval[float64](p, fmt.Sprintf(`new Promise((resolve) => {
		const t0 = performance.now();
		__t.pin(%s);
		const poll = () => __t.ready() ? resolve(performance.now() - t0) : setTimeout(poll, 2);
		poll();
	})`, js(webPIN)))
}

// uiObserveRendered notes in __rendered, by text, when (Date.now()) each
// text message is first added to the open chat of p's page.
func uiObserveRendered(p *page) {
	p.t.Helper()
	eval[any](p, `(() => {
		window.__rendered = {};
		new MutationObserver((ms) => { const now = Date.now(); for (const m of ms) for (const n of m.addedNodes) {
			const p = n.querySelector && n.querySelector('.text'); if (p && !(p.textContent in __rendered)) __rendered[p.textContent] = now; } })
			.observe(__t.q('#messages'), {childList: true});
	})()`)
}

// shooter writes screenshots at the phone and desktop sizes.
type shooter struct {
	t     *testing.T
	dir   string
	paths []string
}

func (s *shooter) take(p *page, name, what string) {
	s.t.Helper()
	for _, sz := range []struct {
		w, h   int64
		mobile bool
	}{{390, 844, true}, {1280, 800, false}} {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
		if sz.mobile {
			opts = append(opts, chromedp.EmulateMobile)
		}
		if err := chromedp.Do(p.ctx, chromedp.EmulateViewport(sz.w, sz.h, opts...)); err != nil {
			s.t.Fatalf("screenshot %s: %v", name, err)
		}
		time.Sleep(150 * time.Millisecond)
		buf, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			s.t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(s.dir, fmt.Sprintf("%s-%dx%d.png", name, sz.w, sz.h))
		if err := os.WriteFile(path, buf, 0o644); err != nil {
			s.t.Fatal(err)
		}
		s.paths = append(s.paths, path)
		s.t.Logf("screenshot %s: %s", path, what)
	}
	if err := chromedp.Do(p.ctx, chromedp.EmulateReset()); err != nil {
		s.t.Fatal(err)
	}
}

// testPNG is a small generated picture.
func testPNG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 96, 64))
	for y := range 64 {
		for x := range 96 {
			img.Set(x, y, color.RGBA{uint8(x * 2), uint8(y * 3), uint8(x ^ y), 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestMessengerUI drives the messenger's UI in two Chromium profiles
// (alice, carol) with a native client (bob, the terminal side) on one
// network, the app served as anom server serves it: activation through
// the first-run form; 1:1 chats both ways browser↔browser and
// browser↔native; a group of three; a photo sent through the file input
// and opened byte-identical in the other browser's viewer; the escrow line
// and its details; a message typed while the server is down shown
// pending and delivered once it is back; a reload keeping the history
// after the PIN again. It writes screenshots of the main screens at
// 390×844 and 1280×800 and logs the figures: unlock to chat list, and
// send-to-render between the two profiles over 200 messages.
func TestMessengerUI(t *testing.T) {
	wasmtest.Chromium(t)
	began := time.Now()
	u := newUINet(t)
	n, app, o, base, invite := u.webNet, u.app, u.o, u.base, u.invite
	dir := os.Getenv("ANOM_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shots := &shooter{t: t, dir: dir}

	bob := n.native(t, "bob")
	alice := uiBrowser(t, n, base)
	carol := uiBrowser(t, n, base)
	uiActivate(alice, shots, invite, n.code(t), "alice")
	uiActivate(carol, nil, invite, n.code(t), "carol")
	t.Logf("two browsers activated through the UI in %v", time.Since(began).Round(time.Millisecond))
	// The escrow policy, verified on connecting, is announced loudly.
	for _, p := range []*page{alice, carol} {
		uiWait(p, `!__t.q('#banner').hidden && __t.q('#banner').classList.contains('loud') && __t.q('#banner').textContent.includes('2 of 3 custodians')`, "the escrow policy's banner")
	}
	shots.take(alice, "escrow-banner", "the loud banner of the escrow policy verified after activation")
	eval[any](alice, `__t.q('#banner button').click()`)

	// 1:1 browser ↔ browser.
	eval[any](alice, `__t.q('button[aria-label="New chat"]').click()`)
	eval[any](alice, `__t.fill('#nc-user', 'carol'); __t.submit('dialog form')`)
	uiWait(alice, `!__t.q('#chat').hidden && __t.q('#chat-title').textContent === 'carol'`, "alice's chat with carol")
	eval[any](alice, `__t.send('hello carol')`)
	uiWait(alice, `__t.mark('hello carol') === 'sent'`, "alice's text marked sent")
	uiWait(carol, `!!__t.chatItem('alice') && !!__t.chatItem('alice').querySelector('.unread')`, "carol's chat list with an unread message from alice")
	if got := eval[string](carol, `__t.chatItem('alice').querySelector('.unread').textContent`); got != "1" {
		t.Errorf("carol's unread count = %q, want 1", got)
	}
	// The count is the device's: a reload (and the PIN) keeps it, opening
	// the chat clears it, and a reload keeps it cleared.
	uiOpen(carol)
	uiUnlockMs(carol)
	uiWait(carol, `!!__t.chatItem('alice') && !!__t.chatItem('alice').querySelector('.unread')`, "carol's unread count after a reload")
	if got := eval[string](carol, `__t.chatItem('alice').querySelector('.unread').textContent`); got != "1" {
		t.Errorf("carol's unread count after a reload = %q, want 1", got)
	}
	eval[any](carol, `__t.open('alice')`)
	uiWait(carol, `__t.hasText('hello carol')`, "carol reading alice's text")
	uiWait(carol, `anom.chats().then((cs) => cs.some((c) => c.users.includes('alice') && c.unread === 0 && c.readSeq > 0))`, "carol's read mark recorded")
	uiOpen(carol)
	uiUnlockMs(carol)
	uiWait(carol, `!!__t.chatItem('alice')`, "carol's chat list after a second reload")
	if eval[bool](carol, `!!__t.chatItem('alice').querySelector('.unread')`) {
		t.Errorf("carol's chat with alice shows unread messages after she read them and reloaded")
	}
	eval[any](carol, `__t.open('alice')`)
	uiWait(carol, `__t.hasText('hello carol')`, "carol's chat with alice again")
	eval[any](carol, `__t.send('hello alice')`)
	uiWait(alice, `__t.hasText('hello alice')`, "alice reading carol's reply")
	if got := eval[string](alice, `__t.li('hello alice').querySelector('time').textContent`); got == "" {
		t.Error("carol's message shows no time")
	}

	// The escrow policy line, and its details one tap away.
	uiWait(alice, `__t.q('#escrow-line').textContent.includes('2 of 3 custodians: A, B, C')`, "the escrow line")
	eval[any](alice, `__t.q('#escrow-line').click()`)
	uiWait(alice, `!!document.querySelector('dialog dl.escrow dd')`, "the escrow details")
	details := eval[string](alice, `__t.q('dialog dl.escrow').textContent`)
	for _, want := range []string{"Verifiedyes", "Version1", "Threshold2", "CustodiansA; B; C", "Issuers", "Log entry"} {
		if !strings.Contains(details, want) {
			t.Errorf("the escrow details lack %q: %q", want, details)
		}
	}
	shots.take(alice, "escrow", "the escrow policy's details over a chat")
	eval[any](alice, `__t.q('dialog .close').click()`)

	// Settings name the app release the page runs and its log entry
	// (this test's app has no logged release: it says it is not verified).
	eval[any](alice, `__t.q('button[aria-label="Settings"]').click()`)
	uiWait(alice, `!!document.querySelector('dialog #about-release')`, "the settings")
	if about := eval[string](alice, `__t.q('dialog #about-release').textContent`); !strings.HasPrefix(about, "App release ") {
		t.Errorf("the settings' release line: %q", about)
	} else {
		t.Logf("settings: %s", about)
	}
	eval[any](alice, `__t.q('dialog .close').click()`)

	// A photo through the file input, byte-identical in carol's viewer.
	photo := testPNG(t)
	eval[any](alice, fmt.Sprintf(`(() => {
		const b = Uint8Array.from(atob(%s), (c) => c.charCodeAt(0));
		const dt = new DataTransfer();
		dt.items.add(new File([b], 'picture.png', {type: 'image/png'}));
		const input = __t.q('#file-input');
		input.files = dt.files;
		input.dispatchEvent(new Event('change'));
	})()`, js(base64.StdEncoding.EncodeToString(photo))))
	uiWait(carol, `!!document.querySelector('#messages li[data-kind="attachment"] .photo img.thumb')`, "carol's photo thumbnail")
	if n := eval[int](carol, `document.querySelectorAll('#messages li[data-kind="attachment"]').length`); n != 1 {
		t.Errorf("carol's chat shows %d attachments, want the photo alone (its thumbnail inside it)", n)
	}
	eval[any](carol, `__t.q('#messages li[data-kind="attachment"] .photo').click()`)
	uiWait(carol, `!!document.getElementById('viewer-img')`, "carol's photo viewer")
	uiWait(carol, `__t.q('#viewer-img').complete && __t.q('#viewer-img').naturalWidth === 96 && __t.q('#viewer-img').naturalHeight === 64`, "the photo drawn in carol's viewer")
	// The bytes behind the message the viewer shows (the page's policy
	// lets no script read a blob: URL back).
	got := eval[string](carol, `(async () => {
		const id = __t.q('#messages li[data-kind="attachment"]').dataset.id;
		const chat = (await anom.chats()).find((c) => !c.name && c.users.includes('alice'));
		const b = await anom.fetchAttachment(chat.id, id);
		let s = ''; for (const c of b) s += String.fromCharCode(c); return btoa(s);
	})()`)
	if got != base64.StdEncoding.EncodeToString(photo) {
		t.Errorf("the photo carol received differs from the one alice sent")
	}
	// The thumbnail came in the photo's own message, the same bytes on
	// both sides.
	thumbOf := func(p *page, peer string) string {
		return eval[string](p, fmt.Sprintf(`(async () => {
			const chat = (await anom.chats()).find((c) => !c.name && c.users.includes(%s));
			const photos = (await anom.history(chat.id)).filter((m) => m.kind === 'attachment');
			if (photos.length !== 1 || !photos[0].attachment.thumbnail) throw new Error('want one photo with its thumbnail, have ' + JSON.stringify(photos));
			const b = await anom.fetchThumbnail(chat.id, photos[0].id);
			let s = ''; for (const c of b) s += String.fromCharCode(c); return btoa(s);
		})()`, js(peer)))
	}
	sentThumb, gotThumb := thumbOf(alice, "carol"), thumbOf(carol, "alice")
	if sentThumb == "" || sentThumb != gotThumb {
		t.Errorf("the thumbnail carol received (%d base64 bytes) differs from the one alice sent (%d)", len(gotThumb), len(sentThumb))
	}
	shots.take(carol, "photo-viewer", "carol's photo viewer with alice's picture")
	eval[any](carol, `__t.q('dialog .close').click()`)

	// A voice note recorded with MediaRecorder (Chromium's fake
	// microphone), played inline with its duration, the same bytes on
	// both sides; then deleted for everyone.
	eval[any](alice, `__t.q('#voice-btn').click()`)
	uiWait(alice, `__t.q('#voice-btn').getAttribute('aria-pressed') === 'true'`, "alice recording")
	time.Sleep(1300 * time.Millisecond)
	eval[any](alice, `__t.q('#voice-btn').click()`)
	uiWait(carol, `!!document.querySelector('#messages li[data-kind="voice"] button.voice')`, "carol's voice note")
	if d := eval[string](carol, `__t.q('#messages li[data-kind="voice"] button.voice').textContent`); d != "▶ 0:01" {
		t.Errorf("carol's voice note shows %q, want ▶ 0:01", d)
	}
	eval[any](carol, `__t.q('#messages li[data-kind="voice"] button.voice').click()`)
	uiWait(carol, `!!document.querySelector('#messages li[data-kind="voice"] audio')`, "carol's voice player")
	const voiceBytes = `(async () => {
		const id = __t.q('#messages li[data-kind="voice"]').dataset.id;
		const chat = (await anom.chats()).find((c) => !c.name && c.users.length === 1);
		const b = await anom.fetchAttachment(chat.id, id);
		let s = ''; for (const c of b) s += String.fromCharCode(c); return btoa(s);
	})()`
	sentVoice, gotVoice := eval[string](alice, voiceBytes), eval[string](carol, voiceBytes)
	if sentVoice == "" || sentVoice != gotVoice {
		t.Errorf("carol's voice note (%d base64 bytes) differs from alice's (%d)", len(gotVoice), len(sentVoice))
	}
	eval[any](alice, `window.confirm = () => true; __t.q('#messages li[data-kind="voice"] .del').click()`)
	uiWait(alice, `!document.querySelector('#messages li[data-kind="voice"]')`, "the voice note gone from alice's chat")
	uiWait(carol, `!document.querySelector('#messages li[data-kind="voice"]')`, "the voice note deleted for everyone")

	// Safety number and marking carol's device verified.
	eval[any](alice, `__t.q('#members-btn').click()`)
	uiWait(alice, `!!document.querySelector('dialog .users button')`, "the members dialog")
	eval[any](alice, `__t.q('dialog .users button').click()`)
	uiWait(alice, `!!document.querySelector('dialog .safety pre.number')`, "carol's safety number")
	if num := eval[string](alice, `document.querySelector('dialog .safety pre.number').textContent`); len(strings.Fields(num)) != 12 {
		t.Errorf("safety number %q: want 12 groups", num)
	}
	shots.take(alice, "safety", "the safety number with carol's device, 4 groups a line")
	eval[any](alice, `[...document.querySelectorAll('dialog .safety button')].find((b) => b.textContent === 'Mark verified').click()`)
	uiWait(alice, `[...document.querySelectorAll('dialog .safety .dev-id')].some((e) => e.textContent.includes('✔ verified'))`, "carol's device verified")
	eval[any](alice, `document.querySelectorAll('dialog').forEach((d) => d.close())`)
	shots.take(alice, "chat", "a 1:1 chat: texts with times and delivery marks, a photo, the escrow line")

	// 1:1 browser ↔ native.
	eval[any](alice, `__t.q('button[aria-label="New chat"]').click()`)
	eval[any](alice, `__t.fill('#nc-user', 'bob'); __t.submit('dialog form')`)
	uiWait(alice, `__t.q('#chat-title').textContent === 'bob'`, "alice's chat with bob")
	eval[any](alice, `__t.send('hello bob')`)
	m := bob.waitText(t, "hello bob")
	if err := bob.c.SendText(context.Background(), m.Group, "hello from the terminal"); err != nil {
		t.Fatal(err)
	}
	uiWait(alice, `__t.hasText('hello from the terminal')`, "alice reading bob's reply")

	// A group of three.
	eval[any](alice, `__t.q('button[aria-label="New group"]').click()`)
	eval[any](alice, `__t.fill('#ng-name', 'Trio'); __t.fill('#ng-users', 'carol, bob'); __t.submit('dialog form')`)
	uiWait(alice, `__t.q('#chat-title').textContent === 'Trio'`, "alice's group")
	eval[any](alice, `__t.send('hello trio')`)
	gm := bob.waitText(t, "hello trio")
	uiWait(carol, `!!__t.chatItem('Trio')`, "carol's group in the list")
	uiWait(carol, `__notes.includes('New message: From alice')`, "carol's notification of the group's first message")
	eval[any](carol, `__t.open('Trio')`)
	uiWait(carol, `__t.hasText('hello trio')`, "carol reading the group")
	eval[any](carol, `__t.send('carol to trio')`)
	bob.waitText(t, "carol to trio")
	if err := bob.c.SendText(context.Background(), gm.Group, "bob to trio"); err != nil {
		t.Fatal(err)
	}
	uiWait(alice, `__t.hasText('bob to trio') && __t.hasText('carol to trio')`, "alice reading the group")
	uiWait(carol, `__t.hasText('bob to trio')`, "carol reading bob in the group")
	// The disappearing-message timer, set by alice, shown to carol.
	eval[any](alice, `__t.q('#timer').value = '3600'; __t.q('#timer').dispatchEvent(new Event('change'))`)
	uiWait(carol, `[...document.querySelectorAll('#messages li.system')].some((li) => li.textContent.includes('alice set disappearing messages to 1 hour'))`, "carol seeing the timer")
	uiWait(carol, `__t.q('#timer').value === '3600'`, "carol's timer setting")
	shots.take(carol, "group", "a group of three: senders' names, times, the escrow line")
	eval[any](alice, `__t.q('.back').click()`)
	uiWait(alice, `!!__t.chatItem('Trio') && !!__t.chatItem('bob') && !!__t.chatItem('carol')`, "alice's chat list")
	shots.take(alice, "chat-list", "the chat list: 1:1 chats and a group, last messages and times")
	eval[any](alice, `__t.open('carol')`)
	eval[any](carol, `__t.q('.back').click(); __t.open('alice')`)
	uiWait(carol, `__t.hasText('hello carol')`, "carol back in the chat with alice")

	// The server goes away: a text typed then is shown pending and sent
	// once it is back.
	o.down()
	uiWait(alice, `__t.q('.conn').classList.contains('off')`, "alice seeing the server gone")
	eval[any](alice, `__t.send('written offline')`)
	uiWait(alice, `__t.mark('written offline') === 'pending'`, "the offline text marked pending")
	shots.take(alice, "offline", "offline: the text waits, marked pending")
	// Still offline, a reload opens the app from the service worker, the
	// PIN unlocks it, and the history is there with the text still
	// pending (it waits in the device's outbox, not in the page).
	uiOpen(alice)
	uiUnlockMs(alice)
	eval[any](alice, `__t.open('carol')`)
	uiWait(alice, `__t.hasText('hello carol') && __t.hasText('hello alice') && __t.mark('written offline') === 'pending'`, "alice's history, reloaded and unlocked offline")
	n.serveHandler(t, app, o.addr)
	uiWait(alice, `__t.mark('written offline') === 'sent'`, "the offline text sent after the server came back")
	uiWait(carol, `__t.hasText('written offline')`, "carol getting the offline text")

	// A reload keeps the history, after the PIN again; the time from the
	// PIN to the chat list is a figure.
	uiOpen(alice)
	unlockMs := uiUnlockMs(alice)
	eval[any](alice, `__t.open('carol')`)
	uiWait(alice, `__t.hasText('hello carol') && __t.hasText('hello alice') && __t.hasText('written offline')`, "alice's history after a reload")
	uiWait(alice, `!!document.querySelector('#messages li[data-kind="attachment"] .photo')`, "the photo in alice's history after a reload")

	// Send-to-render between the profiles: alice's send to carol's
	// rendering of it, over 200 texts, one at a time.
	uiObserveRendered(carol)
	const rounds = 200
	type sendTimes map[string]float64
	sent := eval[sendTimes](alice, fmt.Sprintf(`(async () => {
		const times = {};
		for (let i = 0; i < %d; i++) {
			const text = 'bench ' + i;
			times[text] = Date.now();
			__t.send(text);
			await new Promise((resolve) => { const poll = () => __t.li(text) ? resolve() : setTimeout(poll, 1); poll(); });
		}
		return times;
	})()`, rounds))
	uiWait(carol, fmt.Sprintf(`Object.keys(__rendered).filter((k) => k.startsWith('bench ')).length === %d`, rounds), "carol rendering the 200 texts")
	rendered := eval[sendTimes](carol, `__rendered`)
	var lat []float64
	for text, at := range sent {
		lat = append(lat, rendered[text]-at)
	}
	slices.Sort(lat)
	t.Logf("figures: unlock to chat list %.0f ms (cheap KDF); send-to-render alice→carol over %d texts: p50 %.0f ms, p95 %.0f ms, max %.0f ms",
		unlockMs, rounds, lat[len(lat)/2], lat[len(lat)*95/100], lat[len(lat)-1])

	// Locking puts back the calculator, showing 0.
	eval[any](alice, `__t.q('button.lock').click()`)
	uiWait(alice, `!document.getElementById('messenger') && !__t.q('#calculator').hidden && __t.q('#display').textContent === '0'`, "the calculator after locking")
	if st := eval[statusJSON](alice, `anom.status()`); st.State != "locked" {
		t.Errorf("status after the Lock button = %+v, want locked", st)
	}
	// Unlocked again, the page going hidden locks it too.
	eval[any](alice, fmt.Sprintf(`__t.pin(%s)`, js(webPIN)))
	uiWait(alice, `__t.ready()`, "alice unlocked again")
	eval[any](alice, `Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
		document.dispatchEvent(new Event('visibilitychange'))`)
	uiWait(alice, `!document.getElementById('messenger') && !__t.q('#calculator').hidden`, "the calculator after the page was hidden")
	uiWait(alice, `anom.status().then((s) => s.state === 'locked')`, "alice's device locked after the page was hidden")

	// A remote wipe leaves carol's browser a bare calculator.
	st := eval[statusJSON](carol, `anom.status()`)
	dev, err := identity.ParseDeviceID(st.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.srv.Wipe(context.Background(), dev, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	uiWait(carol, `!document.getElementById('messenger') && !__t.q('#calculator').hidden && __t.q('#display').textContent === '0'`, "the calculator after a remote wipe")
	// The wipe finishes in the WebAssembly after the event (as in
	// TestBrowserGroupsAndRemoteWipe).
	uiWait(carol, `anom.status().then((s) => s.state === 'wiped')`, "carol's device wiped")
	// The wiped browser becomes a further device of bob's: paired in the
	// first-run form, approved by bob's terminal after comparing the
	// fingerprint, then activated.
	uiOpen(carol)
	eval[any](carol, fmt.Sprintf(`__t.pin(%s)`, js(webPIN)))
	uiWait(carol, `!!document.getElementById('first-run')`, "the first-run form after the wipe")
	eval[any](carol, fmt.Sprintf(`__t.fill('#fr-invite', %s); __t.fill('#fr-code', %s); __t.fill('#fr-username', 'bob');
		__t.fill('#fr-pin', %s); __t.fill('#fr-pin2', %s); __t.fill('#fr-duress', %s); __t.fill('#fr-duress2', %s);
		__t.q('#fr-pair').checked = true; __t.submit('#first-run')`,
		js(invite), js(n.code(t)), js(webPIN), js(webPIN), js(webDuress), js(webDuress)))
	uiWait(carol, `!!document.getElementById('fr-pair-code')`, "the pairing code")
	type shown struct{ Code, Fingerprint string }
	pc := eval[shown](carol, `({code: __t.q('#fr-pair-code').textContent, fingerprint: __t.q('#fr-pair-fingerprint').textContent})`)
	shots.take(carol, "pairing", "pairing a further device: the code and the fingerprint to compare")
	short, err := identity.ParseShortCode(pc.Code)
	if err != nil {
		t.Fatalf("the pairing code %q: %v", pc.Code, err)
	}
	req, err := bob.c.LookupPairing(context.Background(), short)
	if err != nil {
		t.Fatal(err)
	}
	if req.Fingerprint() != pc.Fingerprint {
		t.Fatalf("the browser shows fingerprint %q, bob's terminal %q", pc.Fingerprint, req.Fingerprint())
	}
	if err := bob.c.ApproveDevice(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	eval[any](carol, `__t.submit('#first-run')`)
	uiWait(carol, `__t.ready() && __t.q('.who').textContent === 'bob'`, "bob's second device activated")
	eval[any](carol, `__t.q('button[aria-label="Devices"]').click()`)
	uiWait(carol, `document.querySelectorAll('dialog .devices li').length === 2`, "bob's two devices listed")

	t.Logf("%d screenshots in %s; the test took %v", len(shots.paths), dir, time.Since(began).Round(time.Millisecond))
}
