package webtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"anom/internal/webapp"
)

// waitServiceWorker waits until a service worker controls ctx's page and
// has cached the release.
func waitServiceWorker(tb testing.TB, ctx context.Context) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := chromedp.Run(timeout(tb, ctx, 5*time.Second), chromedp.Evaluate[bool](
			`navigator.serviceWorker.ready.then(async () => !!navigator.serviceWorker.controller && (await caches.keys()).some((k) => k.startsWith('app-')))`,
			chromedp.EvalAwaitPromise))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no service worker controls the page: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// releaseFiles is the set of paths the app is made of: its release
// manifest's files, / and the manifest itself, and the proof that the
// release is in the network's log.
func releaseFiles(tb testing.TB, s *appServer) map[string]bool {
	tb.Helper()
	rec := httptest.NewRecorder()
	s.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, webapp.ReleasePath, nil))
	var rel webapp.Release
	if err := json.Unmarshal(rec.Body.Bytes(), &rel); err != nil {
		tb.Fatal(err)
	}
	files := map[string]bool{"/": true, webapp.ReleasePath: true, webapp.ProofPath: true}
	for p := range rel.Files {
		files[p] = true
	}
	return files
}

// TestNoRequestBeforeUnlock: opening the app, calculating, a wrong PIN,
// the service worker's install and a reload make no request but for the
// app's own static files, to its own origin: no API call, no WebSocket,
// no other origin. Recorded from the page's network events and by the
// server (which also sees the service worker's fetches).
func TestNoRequestBeforeUnlock(t *testing.T) {
	s := startServer(t)
	ctx := newProfile(t)
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var requests, sockets []string
	var docHeaders network.Headers
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.violations = []; document.addEventListener('securitypolicyviolation', (e) => window.violations.push(e.effectiveDirective + ' ' + e.blockedURI));`,
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			requests = append(requests, ev.Request.URL)
		case *network.EventWebSocketCreated:
			sockets = append(sockets, ev.URL)
		case *network.EventResponseReceived:
			if ev.Type == network.ResourceTypeDocument && docHeaders == nil {
				docHeaders = ev.Response.Headers
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	openApp(t, ctx, s.url)
	for _, row := range calcTable[:10] {
		press(t, ctx, row.keys)
	}
	press(t, ctx, "97531246==") // a PIN gesture, with no messenger to take it
	waitServiceWorker(t, ctx)
	if err := chromedp.Do(timeout(t, ctx, 20*time.Second), chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitUsable(t, ctx)
	press(t, ctx, "123456==")
	time.Sleep(300 * time.Millisecond) // anything late would show now
	if s.handler().Messenger() {
		// The real WebAssembly, when built: loaded, and silent too; sent
		// once (the service worker revalidated the page's copy).
		waitMessenger(t, ctx)
		press(t, ctx, "24681357==")
		time.Sleep(300 * time.Millisecond)
		if n := s.fullResponses(webapp.WasmPath); n != 1 {
			t.Errorf("the WebAssembly was sent %d times, want once", n)
		}
	}
	if v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.violations`)); err != nil || len(v) > 0 {
		t.Errorf("policy violations in the app's own run: %q (%v)", v, err)
	}

	files := releaseFiles(t, s)
	origin := strings.TrimSuffix(s.url, "/")
	mu.Lock()
	defer mu.Unlock()
	t.Logf("the page requested %q; the server served %q", requests, s.served())
	if len(requests) < 3 {
		t.Fatalf("recorded %d requests: %q", len(requests), requests)
	}
	for _, r := range requests {
		u, err := url.Parse(r)
		if err != nil || u.Scheme+"://"+u.Host != origin || !files[u.Path] || u.RawQuery != "" {
			t.Errorf("the page requested %s: not one of the app's files", r)
		}
	}
	if len(sockets) > 0 {
		t.Errorf("the page opened WebSockets: %q", sockets)
	}
	served := s.served()
	for _, p := range served {
		if !files[p] {
			t.Errorf("the server was asked for %s: not one of the app's files", p)
		}
	}
	for _, want := range []string{"/", "/app.js", "/calc.js", "/sw.js", webapp.ReleasePath} {
		if !contains(served, want) {
			t.Errorf("the server never served %s (recorded %q)", want, served)
		}
	}
	if got := header(docHeaders, "Content-Security-Policy"); got != webapp.ContentSecurityPolicy {
		t.Errorf("the document's CSP %q", got)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func header(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}

// cspProbe tries what the policy forbids, in the page, and reports what
// happened.
const cspProbe = `(async () => {
  const violations = [];
  document.addEventListener('securitypolicyviolation', (e) => violations.push(e.effectiveDirective));
  window.inlineRan = false;
  window.handlerRan = false;
  window.remoteRan = false;
  const s = document.createElement('script');
  s.textContent = 'window.inlineRan = true';
  document.body.appendChild(s);
  const d = document.createElement('div');
  d.setAttribute('onclick', 'window.handlerRan = true');
  document.body.appendChild(d);
  d.click();
  const st = document.createElement('style');
  st.textContent = '#display { color: rgb(1, 2, 3) !important }';
  document.head.appendChild(st);
  const r = document.createElement('script');
  r.src = 'https://remote.example/x.js';
  document.body.appendChild(r);
  let fetchBlocked = false;
  try { await fetch('https://remote.example/'); } catch (e) { fetchBlocked = true; }
  await new Promise((res) => setTimeout(res, 200));
  const color = getComputedStyle(document.getElementById('display')).color;
  for (const el of [s, d, st, r]) el.remove();
  return { inlineRan: window.inlineRan, handlerRan: window.handlerRan, remoteRan: window.remoteRan,
    fetchBlocked, color, violations: [...new Set(violations)].sort() };
})()`

// TestAttackInjectedScriptBlocked: in Chromium, the app's policy blocks an
// injected inline script, an inline event handler, an inline style, a
// remote script and a fetch to another origin, and reports each; the
// calculator works on.
func TestAttackInjectedScriptBlocked(t *testing.T) {
	s := startServer(t)
	ctx := newProfile(t)
	calculatorOnly(t, ctx)
	openApp(t, ctx, s.url)
	type probe struct {
		InlineRan, HandlerRan, RemoteRan, FetchBlocked bool
		Color                                          string
		Violations                                     []string
	}
	got, err := chromedp.Run(timeout(t, ctx, 10*time.Second), chromedp.Evaluate[probe](cspProbe, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if got.InlineRan || got.HandlerRan || got.RemoteRan {
		t.Errorf("ran despite the policy: inline script %v, inline handler %v, remote script %v", got.InlineRan, got.HandlerRan, got.RemoteRan)
	}
	if !got.FetchBlocked {
		t.Error("a fetch to another origin was not blocked")
	}
	if got.Color == "rgb(1, 2, 3)" {
		t.Error("an injected inline style applied")
	}
	for _, want := range []string{"connect-src", "script-src-attr", "script-src-elem", "style-src-elem"} {
		if !contains(got.Violations, want) {
			t.Errorf("no %s violation reported (got %q)", want, got.Violations)
		}
	}
	if got := press(t, ctx, "6*7="); got != "42" {
		t.Errorf("after the probe, 6*7= shows %q", got)
	}
}

// rect is an element's box on screen.
type rect struct {
	Label                    string
	Left, Top, Right, Bottom float64
}

const layoutJS = `[...document.querySelectorAll('#display, .keys button')].map((e) => {
  const r = e.getBoundingClientRect();
  return { label: e.getAttribute('aria-label') || e.textContent.trim(), left: r.left, top: r.top, right: r.right, bottom: r.bottom };
})`

// TestLayout: at a phone's 390×844 and a desktop's 1280×800 every key is
// on screen, at least 44 px square (a finger's target), and none overlaps
// another; every key has an accessible name. Screenshots of both are
// written to $ANOM_SCREENSHOTS (else the test's temporary directory).
func TestLayout(t *testing.T) {
	s := startServer(t)
	ctx := newProfile(t)
	calculatorOnly(t, ctx)
	dir := screenshotDir(t)
	for _, size := range []struct {
		w, h   int64
		mobile bool
	}{{390, 844, true}, {1280, 800, false}} {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
		if size.mobile {
			opts = []chromedp.EmulateViewportOption{chromedp.EmulateScale(3), chromedp.EmulateMobile, chromedp.EmulateTouch}
		}
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(size.w, size.h, opts...)); err != nil {
			t.Fatal(err)
		}
		openApp(t, ctx, s.url)
		press(t, ctx, "1234.5*2")
		rects, err := chromedp.Run(ctx, chromedp.Evaluate[[]rect](layoutJS))
		if err != nil {
			t.Fatal(err)
		}
		if len(rects) != 20 {
			t.Fatalf("%dx%d: %d elements, want the display and 19 keys", size.w, size.h, len(rects))
		}
		for i, r := range rects {
			if r.Label == "" {
				t.Errorf("%dx%d: element %d has no accessible name", size.w, size.h, i)
			}
			if r.Left < 0 || r.Top < 0 || r.Right > float64(size.w) || r.Bottom > float64(size.h) {
				t.Errorf("%dx%d: %q at %+v is off screen", size.w, size.h, r.Label, r)
			}
			if i > 0 && (r.Right-r.Left < 44 || r.Bottom-r.Top < 44) {
				t.Errorf("%dx%d: key %q is %.0f×%.0f px, under 44", size.w, size.h, r.Label, r.Right-r.Left, r.Bottom-r.Top)
			}
			for _, o := range rects[:i] {
				if r.Left < o.Right-0.5 && o.Left < r.Right-0.5 && r.Top < o.Bottom-0.5 && o.Top < r.Bottom-0.5 {
					t.Errorf("%dx%d: %q overlaps %q", size.w, size.h, r.Label, o.Label)
				}
			}
		}
		shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, fmt.Sprintf("calculator-%dx%d.png", size.w, size.h))
		if err := os.WriteFile(name, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", name)
	}
}

// TestOffline: once the service worker has cached the release, the app
// opens and calculates with the server stopped, in a reload and in a new
// tab.
func TestOffline(t *testing.T) {
	s := startServer(t)
	ctx := newProfile(t)
	calculatorOnly(t, ctx)
	openApp(t, ctx, s.url)
	waitServiceWorker(t, ctx)
	s.stop()
	if err := chromedp.Do(timeout(t, ctx, 20*time.Second), chromedp.Reload()); err != nil {
		t.Fatalf("reloading offline: %v", err)
	}
	waitUsable(t, ctx)
	if got := press(t, ctx, "12*12="); got != "144" {
		t.Errorf("offline, 12*12= shows %q", got)
	}
	tab := newTab(t, ctx)
	openApp(t, tab, s.url)
	if title, err := chromedp.Run(tab, chromedp.Title()); err != nil || title != "Calculator" {
		t.Errorf("offline, a new tab's title is %q (%v)", title, err)
	}
	if got := press(t, tab, "99+1="); got != "100" {
		t.Errorf("offline, in a new tab, 99+1= shows %q", got)
	}
}
