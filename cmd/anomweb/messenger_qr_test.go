//go:build !js

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"anom/client"
	"anom/identity"
	"anom/internal/qr"
	"anom/internal/wasmtest"
)

// Chromium's fake camera plays a Y4M file in a loop
// (--use-file-for-fake-video-capture); the tests write into it the QR
// code the page under test must read: one the test encodes (an invite),
// or the canvas another page shows (its safety number, its pairing code).

const camW, camH = 640, 480

// writeCamera writes img, scaled up by whole pixels to fill most of the
// frame and centred on white, as the camera's video: a few 640×480
// frames of Y4M (4:2:0, grey).
func writeCamera(t testing.TB, path string, img image.Image) {
	t.Helper()
	b := img.Bounds()
	k := max(1, min(440/b.Dx(), 440/b.Dy()))
	x0, y0 := (camW-b.Dx()*k)/2, (camH-b.Dy()*k)/2
	luma := make([]byte, camW*camH)
	for y := range camH {
		for x := range camW {
			luma[y*camW+x] = 0xff
			ix, iy := (x-x0)/k, (y-y0)/k
			if x >= x0 && y >= y0 && ix < b.Dx() && iy < b.Dy() {
				luma[y*camW+x] = color.GrayModel.Convert(img.At(b.Min.X+ix, b.Min.Y+iy)).(color.Gray).Y
			}
		}
	}
	chroma := bytes.Repeat([]byte{0x80}, camW*camH/2) // U and V planes, neutral
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	fmt.Fprintf(w, "YUV4MPEG2 W%d H%d F10:1 Ip A1:1 C420jpeg\n", camW, camH)
	for range 4 {
		w.WriteString("FRAME\n")
		w.Write(luma)
		w.Write(chroma)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	// Written whole, then renamed: the browser opens the file when a
	// capture starts and must not read half of it.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// cameraShows puts the QR code of text in front of the camera.
func cameraShows(t testing.TB, path, text string) {
	t.Helper()
	m, err := qr.Encode(text)
	if err != nil {
		t.Fatal(err)
	}
	writeCamera(t, path, m.Image(1, 4))
}

// cameraShowsCanvas puts what the canvas sel of p's page shows in front
// of the camera (the canvas's own pixels, as a phone held to the screen
// would see them).
func cameraShowsCanvas(t testing.TB, path string, p *page, sel string) {
	t.Helper()
	url := eval[string](p, fmt.Sprintf(`__t.q(%s).toDataURL('image/png')`, js(sel)))
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(url, "data:image/png;base64,"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the canvas %s: %v", sel, err)
	}
	writeCamera(t, path, img)
}

// cameraBrowser is uiBrowser with the fake camera playing the file
// camera (which must exist when a capture starts).
func cameraBrowser(t testing.TB, n *webNet, base, camera string) *page {
	t.Helper()
	b := wasmtest.NewBrowser(t, "", chromedp.Flag("ignore-certificate-errors-spki-list", n.spki), chromedp.WindowSize(1280, 800),
		chromedp.Flag("use-fake-device-for-media-stream", true), chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-video-capture", camera))
	if _, err := chromedp.Call(b.Ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: uiHelpers}); err != nil {
		t.Fatal(err)
	}
	return &page{t: t, ctx: b.Ctx, base: base}
}

// uiFirstRunForm opens the app on p, makes the PIN gesture and waits for
// the activation form.
func uiFirstRunForm(p *page) {
	p.t.Helper()
	uiOpen(p)
	eval[any](p, fmt.Sprintf(`__t.pin(%s)`, js(webPIN)))
	uiWait(p, `!!document.getElementById('first-run')`, "the first-run form")
}

// uiScanInvite presses Scan invite on the first-run form and waits for the
// invite field to hold want, the scanner closed.
func uiScanInvite(p *page, want string) {
	p.t.Helper()
	eval[any](p, `__t.q('#fr-scan').click()`)
	uiWait(p, fmt.Sprintf(`__t.q('#fr-invite').value === %s && !document.querySelector('dialog.scan')`, js(want)), "the invite scanned with the camera")
	if s := eval[string](p, `__t.q('#first-run .status').textContent`); s != "Invite scanned." {
		p.t.Errorf("the first-run status after scanning: %q", s)
	}
}

// uiFinishFirstRun fills the rest of the form (code, username, PINs) and
// submits it; unless pairing, it waits for the chat list.
func uiFinishFirstRun(p *page, code, username string, pairing bool) {
	p.t.Helper()
	eval[any](p, fmt.Sprintf(`__t.fill('#fr-code', %s); __t.fill('#fr-username', %s);
		__t.fill('#fr-pin', %s); __t.fill('#fr-pin2', %s); __t.fill('#fr-duress', %s); __t.fill('#fr-duress2', %s);
		__t.q('#fr-pair').checked = %v; __t.submit('#first-run')`,
		js(code), js(username), js(webPIN), js(webPIN), js(webDuress), js(webDuress), pairing))
	if !pairing {
		uiWait(p, `__t.ready()`, username+"'s chat list after activation")
	}
}

// uiOpenSafety opens the safety-number dialog with the chat's other user
// (the open chat's Info, then the user's Safety number).
func uiOpenSafety(p *page, user string) {
	p.t.Helper()
	// A closed dialog leaves the page only at its close event, a task
	// later: every selector here names the open one, or the last
	// dialog's elements (same IDs) could be found and then vanish.
	eval[any](p, `document.querySelectorAll('dialog').forEach((d) => d.close()); __t.q('#members-btn').click()`)
	uiWait(p, fmt.Sprintf(`!!document.querySelector('dialog[open] .users button[aria-label="Safety number of %s"]')`, user), "the members dialog")
	eval[any](p, fmt.Sprintf(`document.querySelector('dialog[open] .users button[aria-label="Safety number of %s"]').click()`, user))
	uiWait(p, `!!document.querySelector('dialog[open] .safety canvas.qr') && !!document.querySelector('dialog[open] #safety-scan')`, "the safety number's QR code")
}

// uiScanSafety presses Scan their code in the open safety dialog and
// returns what the dialog then says (the scan's result line).
func uiScanSafety(p *page) string {
	p.t.Helper()
	eval[any](p, `document.querySelector('dialog[open] #safety-scan').click()`)
	uiWait(p, `!document.querySelector('dialog.scan') && !!document.querySelector('dialog[open] .safety .scan-ok, dialog[open] .safety .scan-bad, dialog[open] .safety .error')`, "the scanned safety code's result")
	return eval[string](p, `document.querySelector('dialog[open] .safety .scan-ok, dialog[open] .safety .scan-bad, dialog[open] .safety .error').textContent`)
}

// verifiedShown reports whether the safety dialog marks a device verified.
const verifiedShown = `[...document.querySelectorAll('dialog .safety .dev-id')].some((e) => e.textContent.includes('✔ verified'))`

// qrShots is the screenshots' directory of the QR tests.
func qrShots(t *testing.T) *shooter {
	dir := os.Getenv("ANOM_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &shooter{t: t, dir: dir}
}

// TestMessengerUIQR drives the QR codes of the messenger in Chromium
// with its fake camera playing what the test puts in front of it: alice
// activates by scanning the invite's QR code (encoded by the test from
// the real server's invite); carol's first run scans the invite alice's
// Devices screen shows; alice scans the safety number's QR code on
// carol's screen and carol's device is marked verified; a further device
// of alice's shows its pairing code as a QR code, which alice's Devices
// screen scans, then approves after the fingerprint matched.
func TestMessengerUIQR(t *testing.T) {
	wasmtest.Chromium(t)
	u := newUINet(t)
	shots := qrShots(t)
	camDir := t.TempDir()
	camA, camC := filepath.Join(camDir, "alice.y4m"), filepath.Join(camDir, "carol.y4m")

	// alice: the invite's QR code in front of the camera.
	cameraShows(t, camA, u.invite)
	alice := cameraBrowser(t, u.webNet, u.base, camA)
	uiFirstRunForm(alice)
	uiScanInvite(alice, u.invite)
	shots.take(alice, "scan-invite", "the first-run form with the invite read from its QR code by the camera")
	uiFinishFirstRun(alice, u.code(t), "alice", false)

	// alice's Devices show the network's invite as a QR code; carol's
	// first run scans it there.
	eval[any](alice, `__t.q('button[aria-label="Devices"]').click()`)
	uiWait(alice, `!!document.getElementById('invite-qr')`, "the invite's QR code in alice's Devices")
	shots.take(alice, "devices-qr", "Devices: the pairing form, Scan its code, and the invite's QR code for a further device")
	cameraShowsCanvas(t, camC, alice, "#invite-qr")
	eval[any](alice, `document.querySelectorAll('dialog').forEach((d) => d.close())`)
	carol := cameraBrowser(t, u.webNet, u.base, camC)
	uiFirstRunForm(carol)
	uiScanInvite(carol, u.invite)
	uiFinishFirstRun(carol, u.code(t), "carol", false)

	// A chat between them.
	eval[any](alice, `__t.q('button[aria-label="New chat"]').click()`)
	eval[any](alice, `__t.fill('#nc-user', 'carol'); __t.submit('dialog[open] form')`)
	uiWait(alice, `!__t.q('#chat').hidden && __t.q('#chat-title').textContent === 'carol'`, "alice's chat with carol")
	eval[any](alice, `__t.send('scan me')`)
	uiWait(carol, `!!__t.chatItem('alice')`, "carol's chat with alice")
	eval[any](carol, `__t.open('alice')`)
	uiWait(carol, `__t.hasText('scan me')`, "carol reading alice")

	// carol shows the safety number's QR code; alice scans it.
	uiOpenSafety(carol, "alice")
	shots.take(carol, "safety-qr", "the safety number as digits and as a QR code, with Scan their code")
	cameraShowsCanvas(t, camA, carol, "dialog[open] .safety canvas.qr")
	uiOpenSafety(alice, "carol")
	if eval[bool](alice, verifiedShown) {
		t.Fatal("carol's device is verified before any comparison")
	}
	if got := uiScanSafety(alice); !strings.Contains(got, "match") {
		t.Fatalf("alice scanning carol's safety code: %q", got)
	}
	uiWait(alice, verifiedShown, "carol's device verified by the scan")
	shots.take(alice, "safety-verified", "the safety number scanned from carol's screen: carol's device verified")

	// A further device of alice's (pasting the invite) shows its pairing
	// code as a QR code; alice's Devices scan it.
	dave := uiBrowser(t, u.webNet, u.base)
	uiFirstRunForm(dave)
	eval[any](dave, fmt.Sprintf(`__t.fill('#fr-invite', %s)`, js(u.invite)))
	uiFinishFirstRun(dave, u.code(t), "alice", true)
	uiWait(dave, `!!document.getElementById('fr-pair-qr') && !!document.getElementById('fr-pair-code')`, "the pairing code's QR code")
	shots.take(dave, "pairing-qr", "pairing a further device: the code, its QR code and the fingerprint")
	type shown struct{ Code, Fingerprint string }
	pc := eval[shown](dave, `({code: __t.q('#fr-pair-code').textContent, fingerprint: __t.q('#fr-pair-fingerprint').textContent})`)
	cameraShowsCanvas(t, camA, dave, "#fr-pair-qr")
	eval[any](alice, `document.querySelectorAll('dialog').forEach((d) => d.close()); __t.q('button[aria-label="Devices"]').click()`)
	uiWait(alice, `!!document.getElementById('pair-scan')`, "alice's Devices")
	eval[any](alice, `__t.q('#pair-scan').click()`)
	uiWait(alice, fmt.Sprintf(`__t.q('#pair-code').value === %s && __t.q('dialog .devices').textContent.includes(%s)`, js(pc.Code), js(pc.Fingerprint)),
		"the pairing code scanned and its fingerprint shown")
	eval[any](alice, `[...document.querySelectorAll('dialog .devices button')].find((b) => b.textContent === 'It matches: approve').click()`)
	uiWait(alice, `__t.q('dialog .devices').textContent.includes('Approved')`, "the new device approved")
	eval[any](dave, `__t.submit('#first-run')`)
	uiWait(dave, `__t.ready() && __t.q('.who').textContent === 'alice'`, "alice's second device activated")
}

// TestAttackMessengerUISafetyQRSwapped: alice scans safety codes that are
// not carol's comparison with her, from the camera: carol's code for her
// comparison with bob (a swapped QR code), and the code carol's screen
// would show with a device in between (mallory's key as alice's). Each is
// refused with a loud mismatch and carol's device stays unverified; the
// real code then verifies it, so the refusals were the comparison's, not
// the camera's.
func TestAttackMessengerUISafetyQRSwapped(t *testing.T) {
	wasmtest.Chromium(t)
	u := newUINet(t)
	shots := qrShots(t)
	camA := filepath.Join(t.TempDir(), "alice.y4m")
	cameraShows(t, camA, "not yet")
	alice := cameraBrowser(t, u.webNet, u.base, camA)
	carol := uiBrowser(t, u.webNet, u.base)
	bob := u.native(t, "bob")
	uiActivate(alice, nil, u.invite, u.code(t), "alice")
	uiActivate(carol, nil, u.invite, u.code(t), "carol")
	for _, with := range []string{"alice", "bob"} {
		eval[any](carol, `document.querySelectorAll('dialog').forEach((d) => d.close()); __t.q('button[aria-label="New chat"]').click()`)
		eval[any](carol, fmt.Sprintf(`__t.fill('#nc-user', %s); __t.submit('dialog[open] form')`, js(with)))
		uiWait(carol, fmt.Sprintf(`!__t.q('#chat').hidden && __t.q('#chat-title').textContent === %s`, js(with)), "carol's chat with "+with)
		eval[any](carol, fmt.Sprintf(`__t.send(%s)`, js("hello "+with)))
	}
	bob.waitText(t, "hello bob")
	uiWait(alice, `!!__t.chatItem('carol')`, "alice's chat with carol")
	eval[any](alice, `__t.open('carol')`)
	uiWait(alice, `__t.hasText('hello alice')`, "alice reading carol")

	// carol's screen with bob: her real code, for another comparison.
	uiOpenSafety(carol, "bob")
	cameraShowsCanvas(t, camA, carol, "dialog[open] .safety canvas.qr")
	uiOpenSafety(alice, "carol")
	got := uiScanSafety(alice)
	if !strings.Contains(got, "THE SAFETY NUMBERS DIFFER") || !strings.Contains(got, "another comparison") {
		t.Errorf("alice scanning carol's code with bob: %q, want a loud mismatch naming another comparison", got)
	}
	uiWait(alice, `__t.q('#banner').classList.contains('loud') && __t.q('#banner').textContent.includes('THE SAFETY NUMBERS DIFFER')`, "the loud banner")
	shots.take(alice, "safety-mismatch", "a swapped safety code scanned: the loud mismatch, the device not verified")
	if eval[bool](alice, verifiedShown) {
		t.Fatal("a swapped safety code marked carol's device verified")
	}

	// The code carol's screen shows when mallory sits between them:
	// carol's device, alice's device ID, the number of carol's key with
	// mallory's.
	aliceDev, err := identity.ParseDeviceID(eval[statusJSON](alice, `anom.status()`).DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	carolDev, err := identity.ParseDeviceID(eval[statusJSON](carol, `anom.status()`).DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	carolKey := signatureKey(t, bob, "carol", carolDev)
	mallory := make([]byte, len(carolKey))
	rand.Read(mallory)
	between := client.SafetyCode{Shower: carolDev, Other: aliceDev, Number: client.ComputeSafetyNumber(carolKey, mallory)}
	cameraShows(t, camA, between.String())
	uiOpenSafety(alice, "carol")
	if got := uiScanSafety(alice); !strings.Contains(got, "THE SAFETY NUMBERS DIFFER") || !strings.Contains(got, "not the one this device computes") {
		t.Errorf("alice scanning the code of a comparison with mallory in between: %q", got)
	}
	if eval[bool](alice, verifiedShown) {
		t.Fatal("a safety code with another key marked carol's device verified")
	}

	// Not a safety code at all: the invite.
	cameraShows(t, camA, u.invite)
	uiOpenSafety(alice, "carol")
	if got := uiScanSafety(alice); !strings.Contains(got, "not an anom safety number") {
		t.Errorf("alice scanning an invite as a safety code: %q", got)
	}

	// The real one.
	eval[any](carol, `document.querySelectorAll('dialog').forEach((d) => d.close()); __t.open('alice')`)
	uiWait(carol, `__t.q('#chat-title').textContent === 'alice'`, "carol's chat with alice")
	uiOpenSafety(carol, "alice")
	cameraShowsCanvas(t, camA, carol, "dialog[open] .safety canvas.qr")
	uiOpenSafety(alice, "carol")
	if got := uiScanSafety(alice); !strings.Contains(got, "match") {
		t.Fatalf("alice scanning carol's real code: %q", got)
	}
	uiWait(alice, verifiedShown, "carol's device verified by the real code")
}

// signatureKey is the signature key of user's device dev as the
// directory gives it to p.
func signatureKey(t testing.TB, p *nativePeer, user string, dev identity.DeviceID) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	devs, err := p.c.Devices(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.DeviceID == dev {
			return d.Key
		}
	}
	t.Fatalf("%s has no device %s in the directory", user, dev)
	return nil
}
