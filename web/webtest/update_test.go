package webtest

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/chromedp/chromedp"

	"anom/internal/webrelease"
	"anom/internal/webrelease/webreleasetest"
)

// checkUpdateJS runs the update gate (web/release.js) and returns its
// outcome, once the page has started it.
const checkUpdateJS = `(async () => {
  for (let i = 0; i < 400 && typeof anomRelease !== 'object'; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return anomRelease.check();
})()`

type updateOutcome struct {
	Updated bool
	Version string
	Staged  string
	Refused *struct {
		Version string
		Error   string
	}
	Worker *workerOutcome
	Error  string
}

// workerOutcome is the update gate's check of the service worker.
type workerOutcome struct {
	Hash        string
	Activated   bool
	Refused     bool
	Controlling bool
	Error       string
}

func checkUpdate(tb testing.TB, ctx context.Context) updateOutcome {
	tb.Helper()
	o, err := chromedp.Run(timeout(tb, ctx, 30*time.Second), chromedp.Evaluate[updateOutcome](checkUpdateJS, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatal(err)
	}
	return o
}

// releaseInfo is what anomRelease.info() tells of the release the page
// runs.
type releaseInfo struct {
	Version  string
	LogIndex *uint64
	Verified bool
	Root     string
}

func runningRelease(tb testing.TB, ctx context.Context) releaseInfo {
	tb.Helper()
	i, err := chromedp.Run(timeout(tb, ctx, 30*time.Second), chromedp.Evaluate[releaseInfo](`(async () => {
  for (let i = 0; i < 400 && typeof anomRelease !== 'object'; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return anomRelease.info();
})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatal(err)
	}
	return i
}

const cacheNamesJS = `caches.keys().then((k) => k.filter((n) => n.startsWith('app-')))`

func appCaches(tb testing.TB, ctx context.Context) []string {
	tb.Helper()
	names, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](cacheNamesJS, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatal(err)
	}
	return names
}

// withStyle returns files with a comment added to the style sheet: a new
// release.
func withStyle(files fstest.MapFS, comment string) fstest.MapFS {
	out := fstest.MapFS{}
	for p, f := range files {
		out[p] = &fstest.MapFile{Data: f.Data}
	}
	out["style.css"].Data = append(append([]byte(nil), files["style.css"].Data...), "\n/* "+comment+" */\n"...)
	return out
}

func reloadStyle(tb testing.TB, ctx context.Context) string {
	tb.Helper()
	if err := chromedp.Do(timeout(tb, ctx, 20*time.Second), chromedp.Reload()); err != nil {
		tb.Fatal(err)
	}
	waitUsable(tb, ctx)
	css, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch('style.css').then((r) => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatal(err)
	}
	return css
}

// TestAttackTamperedUpdateRefused: the service worker takes a new
// release only when every file matches the SHA-256 its release manifest
// lists: a release with a file that does not (here the server sends the
// old style sheet for the new one) is refused, leaving the running
// release and no partial cache; the intact release, logged, is taken, and
// the app then runs it offline.
func TestAttackTamperedUpdateRefused(t *testing.T) {
	app := fakeWasmApp(t)
	s := startServer(t, app)
	ctx := newProfile(t)
	openApp(t, ctx, s.url)
	waitServiceWorker(t, ctx)
	waitMessenger(t, ctx)
	v1 := s.handler().Version()
	if o := checkUpdate(t, ctx); o.Updated || o.Version != v1 || o.Error != "" {
		t.Fatalf("no new release: outcome %+v, want the running %s", o, v1)
	}

	files := withStyle(app, "release 2")
	v2 := s.setApp(t, files).Version()
	s.logApp(t)
	s.setTamper("/style.css", app["style.css"].Data)
	o := checkUpdate(t, ctx)
	if o.Updated || o.Version != v1 || !strings.Contains(o.Error, "/style.css: SHA-256") {
		t.Errorf("a release with a file unlike its hash: outcome %+v, want refused and %s running", o, v1)
	}
	if names := appCaches(t, ctx); len(names) != 1 || names[0] != "app-"+v1 {
		t.Errorf("caches after the refused release: %q, want app-%s alone", names, v1)
	}

	s.setTamper("/style.css", nil)
	if o := checkUpdate(t, ctx); !o.Updated || o.Version != v2 || o.Error != "" {
		t.Errorf("the intact release: outcome %+v, want %s taken", o, v2)
	}
	if names := appCaches(t, ctx); len(names) != 1 || names[0] != "app-"+v2 {
		t.Errorf("caches after the update: %q, want app-%s alone", names, v2)
	}
	s.stop()
	if css := reloadStyle(t, ctx); !strings.Contains(css, "release 2") {
		t.Errorf("offline after the update, style.css is not release 2's")
	}
}

// TestAttackUnloggedReleaseRefused: the update gate. Release A, logged
// by the server at start, is installed and runs with its log entry shown.
// The server then serves release B, which it has not logged, with A's
// proof (the proof it has): the page's WebAssembly refuses B, the service
// worker drops it and keeps A (a reload still runs A), and the refusal is
// reported (the outcome and the event anom:release-refused). Once B is in
// the log, the update is taken and a reload runs B, its entry shown.
func TestAttackUnloggedReleaseRefused(t *testing.T) {
	start := time.Now()
	appA := fakeWasmApp(t)
	s := startServer(t, appA)
	a := s.handler()
	ctx := newProfile(t)
	openApp(t, ctx, s.url)
	waitServiceWorker(t, ctx)
	waitMessenger(t, ctx)
	if o := checkUpdate(t, ctx); o.Updated || o.Version != a.Version() || o.Error != "" {
		t.Fatalf("release A alone: outcome %+v", o)
	}
	info := runningRelease(t, ctx)
	if info.Version != a.Version() || !info.Verified || info.LogIndex == nil {
		t.Fatalf("running A: %+v, want its log entry", info)
	}
	idxA := *info.LogIndex

	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.refusals = []; window.addEventListener('anom:release-refused', (e) => window.refusals.push(e.detail)); true`)); err != nil {
		t.Fatal(err)
	}
	b := s.setApp(t, withStyle(appA, "release B"))
	digestA := a.Digest()
	s.setProveAs(&digestA)
	o := checkUpdate(t, ctx)
	if o.Updated || o.Version != a.Version() || o.Refused == nil || o.Refused.Version != b.Version() ||
		!strings.Contains(o.Refused.Error, "not in the transparency log") {
		t.Errorf("unlogged release B: outcome %+v, want refused and A running", o)
	}
	refusals, err := chromedp.Run(ctx, chromedp.Evaluate[[]map[string]string](`window.refusals`))
	if err != nil || len(refusals) != 1 || refusals[0]["version"] != b.Version() {
		t.Errorf("anom:release-refused events: %v (%v), want one for B", refusals, err)
	}
	if names := appCaches(t, ctx); len(names) != 1 || names[0] != "app-"+a.Version() {
		t.Errorf("caches after the refusal: %q, want A's alone", names)
	}
	if css := reloadStyle(t, ctx); strings.Contains(css, "release B") {
		t.Error("after the refusal, the page runs B's style sheet")
	}
	if info := runningRelease(t, ctx); info.Version != a.Version() || info.LogIndex == nil || *info.LogIndex != idxA {
		t.Errorf("after the refusal, running %+v, want A at %d", info, idxA)
	}

	// B logged, but in another network's log (its own root, which its
	// proof names): refused, the root pinned on first use is not its.
	other := webreleasetest.New(t)
	bm, err := webrelease.ParseManifest(b.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	s.setProof(other.Proof(t, b.Version(), other.Append(t, bm)))
	o = checkUpdate(t, ctx)
	if o.Updated || o.Version != a.Version() || o.Refused == nil || !strings.Contains(o.Refused.Error, "tree head not of this network") {
		t.Errorf("release B in another network's log: outcome %+v, want refused and A running", o)
	}
	s.setProof(nil)

	idxB := s.logApp(t)
	s.setProveAs(nil)
	if o := checkUpdate(t, ctx); !o.Updated || o.Version != b.Version() || o.Error != "" {
		t.Errorf("release B logged: outcome %+v, want B taken", o)
	}
	if css := reloadStyle(t, ctx); !strings.Contains(css, "release B") {
		t.Error("after the update, the page does not run B's style sheet")
	}
	if info := runningRelease(t, ctx); info.Version != b.Version() || !info.Verified || info.LogIndex == nil || *info.LogIndex != idxB {
		t.Errorf("after the update, running %+v, want B at %d", info, idxB)
	}
	t.Logf("the update gate in Chromium: %v", time.Since(start).Round(time.Millisecond))
}
