package webtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"testing/fstest"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// withWorker returns files with sw.js marked: the worker answers the
// message {type: "which-worker"} with mark, and, when hostile, takes over
// on install without waiting for the page.
func withWorker(files fstest.MapFS, mark string, hostile bool) fstest.MapFS {
	out := fstest.MapFS{}
	for p, f := range files {
		out[p] = &fstest.MapFile{Data: f.Data}
	}
	out["sw.js"].Data = append(append([]byte(nil), files["sw.js"].Data...), markedWorker(mark, hostile)...)
	return out
}

func markedWorker(mark string, hostile bool) string {
	js := "\nself.addEventListener('message', (e) => {\n" +
		"  if (e.data && e.data.type === 'which-worker' && e.ports[0]) e.ports[0].postMessage('" + mark + "');\n});\n"
	if hostile {
		js += "self.addEventListener('install', () => self.skipWaiting());\n"
	}
	return js
}

// whichWorkerJS asks the worker controlling the page for its mark.
const whichWorkerJS = `(async () => {
  const c = navigator.serviceWorker.controller;
  if (!c) return 'none';
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    const t = setTimeout(() => resolve('no answer'), 2000);
    ch.port1.onmessage = (e) => { clearTimeout(t); resolve(String(e.data)); };
    c.postMessage({ type: 'which-worker' }, [ch.port2]);
  });
})()`

func whichWorker(tb testing.TB, ctx context.Context) string {
	tb.Helper()
	w, err := chromedp.Run(timeout(tb, ctx, 10*time.Second), chromedp.Evaluate[string](whichWorkerJS, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

// waitWorker waits (at most 15 s) until the worker controlling the page
// answers mark, and returns the last answer.
func waitWorker(tb testing.TB, ctx context.Context, mark string) string {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		w := whichWorker(tb, ctx)
		if w == mark || time.Now().After(deadline) {
			return w
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

const listenRefusalsJS = `window.refusals = []; window.addEventListener('anom:release-refused', (e) => window.refusals.push(e.detail)); true`

type refusal struct {
	Version     string
	Worker      string
	Controlling bool
}

func refusals(tb testing.TB, ctx context.Context) []refusal {
	tb.Helper()
	r, err := chromedp.Run(ctx, chromedp.Evaluate[[]refusal](`window.refusals || []`))
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// TestAttackUnverifiedWorkerWaits: the browser installs a changed sw.js
// by itself, but it takes over only once the page found its SHA-256 in a
// release verified in the log. Release A runs, verified; the server then
// serves another sw.js, in no logged release: the browser installs it,
// the page refuses it (reported, recorded), and A's worker keeps
// controlling the page, after a reload too. Once a logged release lists
// that sw.js, the page lets it take over.
func TestAttackUnverifiedWorkerWaits(t *testing.T) {
	start := time.Now()
	base := fakeWasmApp(t)
	appA := withWorker(base, "A", false)
	s := startServer(t, appA)
	a := s.handler()
	ctx := newProfile(t)
	openApp(t, ctx, s.url)
	waitServiceWorker(t, ctx)
	waitMessenger(t, ctx)
	o := checkUpdate(t, ctx)
	if o.Updated || o.Version != a.Version() || o.Error != "" || o.Worker == nil || o.Worker.Refused || o.Worker.Hash != sum(appA["sw.js"].Data) {
		t.Fatalf("release A alone: outcome %+v, worker %+v", o, o.Worker)
	}
	if w := whichWorker(t, ctx); w != "A" {
		t.Fatalf("the worker controlling the page answers %q, want A", w)
	}

	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](listenRefusalsJS)); err != nil {
		t.Fatal(err)
	}
	swB := withWorker(base, "B", false)["sw.js"].Data
	s.setTamper("/sw.js", swB)
	o = checkUpdate(t, ctx)
	if o.Worker == nil || !o.Worker.Refused || o.Worker.Controlling || o.Worker.Activated || o.Worker.Hash != sum(swB) || o.Version != a.Version() {
		t.Errorf("an unlogged sw.js: outcome %+v, worker %+v; want it refused, waiting", o, o.Worker)
	}
	if r := refusals(t, ctx); len(r) != 1 || r[0].Worker != sum(swB) || r[0].Controlling {
		t.Errorf("anom:release-refused events: %+v, want one for the new worker", r)
	}
	if w := whichWorker(t, ctx); w != "A" {
		t.Errorf("after the refusal, the worker controlling the page answers %q, want A", w)
	}
	waiting, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`navigator.serviceWorker.getRegistration().then((r) => !!r.waiting)`, chromedp.EvalAwaitPromise))
	if err != nil || !waiting {
		t.Errorf("the refused worker is not waiting (%v)", err)
	}

	reloadStyle(t, ctx)
	if w := whichWorker(t, ctx); w != "A" {
		t.Errorf("after a reload, the worker controlling the page answers %q, want A", w)
	}
	waitMessenger(t, ctx)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](listenRefusalsJS)); err != nil {
		t.Fatal(err)
	}
	o = checkUpdate(t, ctx)
	if o.Worker == nil || !o.Worker.Refused || o.Worker.Controlling || o.Version != a.Version() {
		t.Errorf("after a reload: outcome %+v, worker %+v; want the waiting worker refused again", o, o.Worker)
	}
	if w := whichWorker(t, ctx); w != "A" {
		t.Errorf("after a reload and a check, the worker controlling the page answers %q, want A", w)
	}
	if refused, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`anomRelease.workerRefused()`)); err != nil || refused {
		t.Errorf("A's worker controlling the page counts as refused (%v)", err)
	}

	// A release listing that sw.js, logged: the page lets the worker take
	// over.
	s.setTamper("/sw.js", nil)
	appC := withWorker(base, "B", false)
	c := s.setApp(t, appC)
	s.logApp(t)
	o = checkUpdate(t, ctx)
	if !o.Updated || o.Version != c.Version() || o.Worker == nil || !o.Worker.Activated || o.Worker.Refused {
		t.Errorf("the sw.js in a logged release: outcome %+v, worker %+v; want it taken", o, o.Worker)
	}
	if w := waitWorker(t, ctx, "B"); w != "B" {
		t.Errorf("after the logged release, the worker controlling the page answers %q, want B", w)
	}
	t.Logf("the service worker gate in Chromium: %v", time.Since(start).Round(time.Millisecond))
}

// TestAttackHostileWorkerRefused: a sw.js in no logged release that does
// not wait for the page (it calls skipWaiting itself) takes over, as the
// web platform lets it; the page finds the worker controlling it in no
// verified release, reports it and stays a calculator: the PIN is not
// handed to the messenger.
func TestAttackHostileWorkerRefused(t *testing.T) {
	base := fakeWasmApp(t)
	appA := withWorker(base, "A", false)
	s := startServer(t, appA)
	ctx := newProfile(t)
	openApp(t, ctx, s.url)
	waitServiceWorker(t, ctx)
	waitMessenger(t, ctx)
	if o := checkUpdate(t, ctx); o.Error != "" || o.Worker == nil || o.Worker.Refused {
		t.Fatalf("release A alone: outcome %+v", o)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](listenRefusalsJS+`; window.unlockedEvents = 0; window.addEventListener('anom:unlocked', () => { window.unlockedEvents++; }); true`)); err != nil {
		t.Fatal(err)
	}
	swH := withWorker(base, "H", true)["sw.js"].Data
	s.setTamper("/sw.js", swH)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`navigator.serviceWorker.getRegistration().then((r) => r.update()).then(() => true)`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	// It calls skipWaiting; the page's messages to the old worker may
	// hold the activation back (Chromium then parks it), so the test
	// repeats it as the worker would (or as the browser does once no tab
	// uses the old worker), sending the old worker nothing meanwhile.
	took, err := chromedp.Run(timeout(t, ctx, 30*time.Second), chromedp.Evaluate[bool](`navigator.serviceWorker.getRegistration().then(async (r) => {
  for (let i = 0; i < 100 && r.installing; i++) await new Promise((ok) => setTimeout(ok, 100));
  if (!r.waiting) return true;
  return new Promise((resolve) => {
    navigator.serviceWorker.addEventListener('controllerchange', () => resolve(true), { once: true });
    const t = setInterval(() => r.waiting ? r.waiting.postMessage({ type: 'activate-worker' }) : clearInterval(t), 300);
    setTimeout(() => resolve(false), 20000);
  });
})`, chromedp.EvalAwaitPromise))
	if err != nil || !took {
		t.Fatalf("the hostile worker did not take over (%v)", err)
	}
	if w := whichWorker(t, ctx); w != "H" {
		t.Fatalf("the worker controlling the page answers %q, want H", w)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		refused, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`anomRelease.workerRefused()`))
		if err == nil && refused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page did not refuse the hostile worker controlling it (%v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	found := false
	for _, r := range refusals(t, ctx) {
		found = found || (r.Controlling && r.Worker == sum(swH))
	}
	if !found {
		t.Errorf("anom:release-refused events %+v: none for the controlling worker", refusals(t, ctx))
	}
	if got := press(t, ctx, "1357924680=="); got != "1357924680" {
		t.Errorf("the PIN shows %q", got)
	}
	time.Sleep(200 * time.Millisecond)
	type result struct {
		Calls    []string
		Unlocked int
	}
	r, err := chromedp.Run(ctx, chromedp.Evaluate[result](`({calls: [...fakeUnlockCalls], unlocked: unlockedEvents})`))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Calls) != 0 || r.Unlocked != 0 {
		t.Errorf("under a refused worker the PIN reached the messenger: calls %q, %d unlock events", r.Calls, r.Unlocked)
	}
}

// TestAttackWorkerActivatedWhileClosed: a changed sw.js in no logged
// release waits, refused, while the app is open; once no tab uses the
// old worker (here the one tab leaves the app), the browser activates it
// without asking the page. On the next load the page checks the worker
// controlling it before any PIN reaches the messenger: it is in no
// verified release, so it is reported and unregistered, and a PIN typed
// at once stays a calculation.
func TestAttackWorkerActivatedWhileClosed(t *testing.T) {
	base := fakeWasmApp(t)
	appA := withWorker(base, "A", false)
	s := startServer(t, appA)
	ctx := newProfile(t)
	openApp(t, ctx, s.url)
	waitServiceWorker(t, ctx)
	waitMessenger(t, ctx)
	if o := checkUpdate(t, ctx); o.Error != "" || o.Worker == nil || o.Worker.Refused {
		t.Fatalf("release A alone: outcome %+v", o)
	}
	swB := withWorker(base, "B", false)["sw.js"].Data
	s.setTamper("/sw.js", swB)
	if o := checkUpdate(t, ctx); o.Worker == nil || !o.Worker.Refused || o.Worker.Controlling {
		t.Fatalf("the unlogged sw.js: outcome %+v, worker %+v; want it refused, waiting", o, o.Worker)
	}
	if w := whichWorker(t, ctx); w != "A" {
		t.Fatalf("the worker controlling the page answers %q, want A", w)
	}

	// Every tab of the app closed (the one tab leaves it): the browser
	// activates the waiting worker. Then the app is opened again, the
	// PIN typed as soon as the calculator answers.
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.unlockedEvents = 0; window.addEventListener('anom:unlocked', () => { window.unlockedEvents++; }); ` + listenRefusalsJS,
	}); err != nil {
		t.Fatal(err)
	}
	var got string
	for i := 0; i < 10 && got != "B"; i++ {
		if err := chromedp.Do(timeout(t, ctx, 20*time.Second), chromedp.Navigate("about:blank")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(500*(i+1)) * time.Millisecond)
		if err := chromedp.Do(timeout(t, ctx, 20*time.Second), chromedp.Navigate(s.url)); err != nil {
			t.Fatal(err)
		}
		waitUsable(t, ctx)
		got = whichWorker(t, ctx)
	}
	if got != "B" {
		t.Fatalf("the browser did not activate the waiting worker with the app closed: %q controls the page", got)
	}
	press(t, ctx, "1357924680==")
	deadline := time.Now().Add(30 * time.Second)
	for {
		refused, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof anomRelease === 'object' && anomRelease.workerRefused()`))
		if err == nil && refused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page did not refuse the worker activated while it was closed (%v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	type result struct {
		Calls      []string
		Unlocked   int
		Registered bool
	}
	r, err := chromedp.Run(timeout(t, ctx, 10*time.Second), chromedp.Evaluate[result](`navigator.serviceWorker.getRegistration().then((reg) =>
  ({calls: [...(globalThis.fakeUnlockCalls || [])], unlocked: unlockedEvents, registered: !!reg}))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Calls) != 0 || r.Unlocked != 0 {
		t.Errorf("under the worker activated while the app was closed, the PIN reached the messenger: calls %q, %d unlock events", r.Calls, r.Unlocked)
	}
	if r.Registered {
		t.Error("the refused worker is still registered")
	}
	found := false
	for _, f := range refusals(t, ctx) {
		found = found || (f.Controlling && f.Worker == sum(swB))
	}
	if !found {
		t.Errorf("anom:release-refused events %+v: none for the controlling worker", refusals(t, ctx))
	}
}
