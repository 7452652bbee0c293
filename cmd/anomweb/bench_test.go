//go:build !js

package main

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"

	"anom/internal/wasmtest"
)

// BenchmarkBrowserDefaultKDF measures, in headless Chromium, what the
// PIN's Argon2id at the default cost (client.DefaultKDF) costs the web
// app: create (the PIN's and the duress PIN's derivations) and unlock to
// the chat list (one derivation, the vault's opening, chats()). Run it
// with
// -bench BrowserDefaultKDF -benchtime 1x.
func BenchmarkBrowserDefaultKDF(b *testing.B) {
	wasmtest.Chromium(b)
	n := newWebNet(b)
	base, _ := stageApp(b)
	br := wasmtest.NewBrowser(b, "", chromedp.Flag("ignore-certificate-errors-spki-list", n.spki))
	p := &page{t: b, ctx: br.Ctx, base: base}
	p.load()
	type timedResult struct {
		Ms float64 `json:"ms"`
	}
	var create, unlock float64
	for i := 0; i < b.N; i++ {
		c := eval[timedResult](p, fmt.Sprintf(`timed(() => anom.create(%s, %s))`, js(webPIN), js(webDuress)))
		eval[any](p, fmt.Sprintf(`anom.activate(%s, %s, %s)`, js(inviteString(n.net)), js(n.code(b)), js(fmt.Sprintf("user%d", i))))
		eval[any](p, `anom.lock()`)
		u := eval[timedResult](p, fmt.Sprintf(`timed(() => anom.unlock(%s).then((r) => { if (r.result !== "ok") throw new Error(r.result); return anom.chats() }))`, js(webPIN)))
		eval[any](p, `anom.wipe()`)
		create += c.Ms
		unlock += u.Ms
	}
	b.ReportMetric(create/float64(b.N), "ms/create")
	b.ReportMetric(unlock/float64(b.N), "ms/unlock+chats")
}
