package webtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// checkUpdateJS asks the controlling service worker to look for an update
// and returns its outcome.
const checkUpdateJS = `new Promise((resolve) => {
  const ch = new MessageChannel();
  ch.port1.onmessage = (e) => resolve(e.data);
  navigator.serviceWorker.controller.postMessage({ type: 'check-update' }, [ch.port2]);
})`

type updateOutcome struct {
	Updated bool
	Version string
	Error   string
}

func checkUpdate(tb testing.TB, ctx context.Context) updateOutcome {
	tb.Helper()
	o, err := chromedp.Run(timeout(tb, ctx, 20*time.Second), chromedp.Evaluate[updateOutcome](checkUpdateJS, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatal(err)
	}
	return o
}

const cacheNamesJS = `caches.keys().then((k) => k.filter((n) => n.startsWith('app-')))`

// TestAttackTamperedUpdateRefused: the service worker takes a new
// release only when every file matches the SHA-256 its release manifest
// lists: a release with a file that does not (here the server sends the
// old style sheet for the new one) is refused, leaving the running
// release and no partial cache; the intact release is taken, and the app
// then runs it offline.
func TestAttackTamperedUpdateRefused(t *testing.T) {
	s := startServer(t, appFiles(t))
	ctx := newProfile(t)
	calculatorOnly(t, ctx)
	openApp(t, ctx, s.url)
	waitServiceWorker(t, ctx)
	v1 := s.handler().Version()
	if o := checkUpdate(t, ctx); o.Updated || o.Version != v1 || o.Error != "" {
		t.Fatalf("no new release: outcome %+v, want the running %s", o, v1)
	}

	files := appFiles(t)
	oldCSS := files["style.css"].Data
	files["style.css"].Data = append(append([]byte(nil), oldCSS...), "\n/* release 2 */\n"...)
	v2 := s.setApp(t, files).Version()
	s.setTamper("/style.css", oldCSS)
	o := checkUpdate(t, ctx)
	if o.Updated || o.Version != v1 || !strings.Contains(o.Error, "/style.css: SHA-256") {
		t.Errorf("a release with a file unlike its hash: outcome %+v, want refused and %s running", o, v1)
	}
	if names, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](cacheNamesJS, chromedp.EvalAwaitPromise)); err != nil || len(names) != 1 || names[0] != "app-"+v1 {
		t.Errorf("caches after the refused release: %q (%v), want app-%s alone", names, err, v1)
	}

	s.setTamper("/style.css", nil)
	if o := checkUpdate(t, ctx); !o.Updated || o.Version != v2 || o.Error != "" {
		t.Errorf("the intact release: outcome %+v, want %s taken", o, v2)
	}
	if names, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](cacheNamesJS, chromedp.EvalAwaitPromise)); err != nil || len(names) != 1 || names[0] != "app-"+v2 {
		t.Errorf("caches after the update: %q (%v), want app-%s alone", names, err, v2)
	}
	s.stop()
	if err := chromedp.Do(timeout(t, ctx, 20*time.Second), chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitUsable(t, ctx)
	css, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch('style.css').then((r) => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil || !strings.Contains(css, "release 2") {
		t.Errorf("offline after the update, style.css is not release 2's (%v)", err)
	}
}
