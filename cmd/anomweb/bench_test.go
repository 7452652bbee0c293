//go:build !js

package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"anom/client"
	"anom/internal/wasmtest"
)

// BenchmarkBrowserDefaultKDF measures, in headless Chromium, what the
// PIN's Argon2id costs the web app: create (the PIN's and the duress
// PIN's derivations) and unlock to the chat list (one derivation, the
// vault's opening, chats()), at the browser's default cost (browserKDF,
// what create uses without options: "browser") and at the terminal
// client's (client.DefaultKDF: "terminal", what the browser used before).
// Run it with -bench BrowserDefaultKDF -benchtime 1x.
func BenchmarkBrowserDefaultKDF(b *testing.B) {
	wasmtest.Chromium(b)
	n := newWebNet(b)
	base, _ := stageApp(b)
	d := client.DefaultKDF
	users := 0 // the benchmark runs again with a larger b.N: new names
	for _, cost := range []struct{ name, opts string }{
		{"browser", "undefined"},
		{"terminal", fmt.Sprintf("{kdf: {time: %d, memoryKiB: %d, threads: %d}}", d.Time, d.MemoryKiB, d.Threads)},
	} {
		b.Run(cost.name, func(b *testing.B) {
			br := wasmtest.NewBrowser(b, "", chromedp.Flag("ignore-certificate-errors-spki-list", n.spki))
			p := &page{t: b, ctx: br.Ctx, base: base}
			p.load()
			type timedResult struct {
				Ms float64 `json:"ms"`
			}
			// Argon2id over 256 MiB takes long on a loaded machine.
			slow := func(expr string) timedResult {
				b.Helper()
				ctx, cancel := context.WithTimeout(p.ctx, 5*time.Minute)
				defer cancel()
				r, err := chromedp.Run(ctx, chromedp.Evaluate[timedResult](expr, chromedp.EvalAwaitPromise))
				if err != nil {
					b.Fatalf("%s: %v", expr, err)
				}
				return r
			}
			var create, unlock float64
			for i := 0; i < b.N; i++ {
				c := slow(fmt.Sprintf(`timed(() => anom.create(%s, %s, %s))`, js(webPIN), js(webDuress), cost.opts))
				eval[any](p, fmt.Sprintf(`anom.activate(%s, %s, %s)`, js(n.net.Invite()), js(n.code(b)), js(fmt.Sprintf("%s%d", cost.name, users))))
				users++
				eval[any](p, `anom.lock()`)
				u := slow(fmt.Sprintf(`timed(() => anom.unlock(%s).then((r) => { if (r.result !== "ok") throw new Error(r.result); return anom.chats() }))`, js(webPIN)))
				eval[any](p, `anom.wipe()`)
				create += c.Ms
				unlock += u.Ms
			}
			b.ReportMetric(create/float64(b.N), "ms/create")
			b.ReportMetric(unlock/float64(b.N), "ms/unlock+chats")
		})
	}
}

// reportLatency reports the mean, p50 and p95 of ms, milliseconds each
// measured in the page.
func reportLatency(b *testing.B, ms []float64) {
	b.Helper()
	if len(ms) == 0 {
		return
	}
	var sum float64
	for _, v := range ms {
		sum += v
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	b.ReportMetric(sum/float64(len(s)), "mean-ms")
	b.ReportMetric(s[len(s)/2], "p50-ms")
	b.ReportMetric(s[min(len(s)-1, len(s)*95/100)], "p95-ms")
}

// drain empties a native peer's events (it would block once its buffer
// is full) until the benchmark ends.
func drain(b *testing.B, p *nativePeer) {
	done := make(chan struct{})
	b.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case <-p.events:
			case <-done:
				return
			}
		}
	}()
}

// uiNoIdleLock keeps the messenger of p's pages from locking itself
// while a benchmark runs (nobody touches it for minutes).
func uiNoIdleLock(b *testing.B, p *page) {
	b.Helper()
	if _, err := chromedp.Call(p.ctx, cdppage.AddScriptToEvaluateOnNewDocument,
		cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: `globalThis.anomIdleMs = 24 * 3600 * 1000;`}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkBrowserSend1KiB measures, in headless Chromium, the browser
// side of sending a 1 KiB text in a 1:1 chat with a native client:
// anom.send (encrypt, seal the escrow record, send, store), timed in the
// page for each op (mean-ms, p50-ms, p95-ms); ns/op adds the DevTools
// round trip.
func BenchmarkBrowserSend1KiB(b *testing.B) {
	wasmtest.Chromium(b)
	n := newWebNet(b)
	base, _ := stageApp(b)
	drain(b, n.native(b, "bob"))
	br := wasmtest.NewBrowser(b, "", chromedp.Flag("ignore-certificate-errors-spki-list", n.spki))
	p := &page{t: b, ctx: br.Ctx, base: base}
	p.load()
	eval[any](p, fmt.Sprintf(`anom.create(%s, %s, %s).then(() => anom.activate(%s, %s, "alice"))`,
		js(webPIN), js(webDuress), cheapKDF, js(n.net.Invite()), js(n.code(b))))
	gid := eval[string](p, `anom.startChat("bob").then((c) => { globalThis.__gid = c.groupId; globalThis.__text = "x".repeat(1024); return c.groupId; })`)
	if gid == "" {
		b.Fatal("no chat with bob")
	}
	type timedSend struct {
		Ms      float64 `json:"ms"`
		Pending bool    `json:"pending"`
	}
	var ms []float64
	for b.Loop() {
		r := eval[timedSend](p, `timed(() => anom.send(__gid, __text)).then((r) => ({ms: r.ms, pending: !!r.value.pending}))`)
		if r.Pending {
			b.Fatal("a send was left pending: the page is not connected")
		}
		ms = append(ms, r.Ms)
	}
	reportLatency(b, ms)
}

// BenchmarkBrowserSendToRender measures send-to-render between two
// Chromium profiles through the messenger's UI: alice types a text in
// the chat and sends it; an op ends when carol's open chat shows it. The
// latency is from alice's send to the text added to carol's page (both
// timed by the pages' clocks, one machine): p50-ms and p95-ms (goal on
// loopback: p95 ≤ 100 ms). Run it with -benchtime 200x.
func BenchmarkBrowserSendToRender(b *testing.B) {
	wasmtest.Chromium(b)
	u := newUINet(b)
	alice, carol := uiBrowser(b, u.webNet, u.base), uiBrowser(b, u.webNet, u.base)
	uiNoIdleLock(b, alice)
	uiNoIdleLock(b, carol)
	uiActivate(alice, nil, u.invite, u.code(b), "alice")
	uiActivate(carol, nil, u.invite, u.code(b), "carol")
	eval[any](alice, `__t.q('button[aria-label="New chat"]').click()`)
	eval[any](alice, `__t.fill('#nc-user', 'carol'); __t.submit('dialog form')`)
	uiWait(alice, `!__t.q('#chat').hidden && __t.q('#chat-title').textContent === 'carol'`, "alice's chat with carol")
	eval[any](alice, `__t.send('hello carol')`)
	uiWait(carol, `!!__t.chatItem('alice')`, "carol's chat with alice")
	eval[any](carol, `__t.open('alice')`)
	uiWait(carol, `__t.hasText('hello carol')`, "carol reading alice's text")
	uiObserveRendered(carol)

	var lat []float64
	i := 0
	for b.Loop() {
		text := js(fmt.Sprintf("bench %d", i))
		i++
		sent := eval[float64](alice, fmt.Sprintf(`(() => { const t = Date.now(); __t.send(%s); return t; })()`, text))
		shown := eval[float64](carol, fmt.Sprintf(`new Promise((resolve) => { const poll = () => %s in __rendered ? resolve(__rendered[%s]) : setTimeout(poll, 1); poll(); })`, text, text))
		lat = append(lat, shown-sent)
	}
	reportLatency(b, lat)
}

// BenchmarkBrowserUnlockToChatList measures, through the messenger's UI
// with a cheap KDF (BenchmarkBrowserDefaultKDF has the real one), the PIN
// gesture on the locked calculator to the chat list shown (one chat in
// it), timed in the page; locking between ops is not timed.
func BenchmarkBrowserUnlockToChatList(b *testing.B) {
	wasmtest.Chromium(b)
	u := newUINet(b)
	bob := u.native(b, "bob")
	alice := uiBrowser(b, u.webNet, u.base)
	uiNoIdleLock(b, alice)
	uiActivate(alice, nil, u.invite, u.code(b), "alice")
	eval[any](alice, `__t.q('button[aria-label="New chat"]').click()`)
	eval[any](alice, `__t.fill('#nc-user', 'bob'); __t.submit('dialog form')`)
	uiWait(alice, `__t.q('#chat-title').textContent === 'bob'`, "alice's chat with bob")
	eval[any](alice, `__t.send('hello bob')`)
	bob.waitText(b, "hello bob")
	drain(b, bob)

	var ms []float64
	for b.Loop() {
		b.StopTimer()
		eval[any](alice, `__t.q('button.lock').click()`)
		uiWait(alice, `!document.getElementById('messenger') && !__t.q('#calculator').hidden`, "the calculator after Lock")
		uiWait(alice, `anom.status().then((s) => s.state === 'locked')`, "alice's device locked")
		b.StartTimer()
		ms = append(ms, uiUnlockMs(alice))
		b.StopTimer()
		uiWait(alice, `!!__t.chatItem('bob')`, "the chat with bob in the list")
		b.StartTimer()
	}
	reportLatency(b, ms)
}
