package webtest

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// waitMessenger waits until the WebAssembly has defined anom.
func waitMessenger(tb testing.TB, ctx context.Context) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := chromedp.Run(timeout(tb, ctx, 5*time.Second), chromedp.Evaluate[bool](`typeof anom === 'object' && typeof anom.unlock === 'function'`))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the WebAssembly did not define anom: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fakeWasmApp returns the app with testdata/fakeanom built as its
// messenger, precompressed as scripts/build does, with Go's wasm_exec.js.
func fakeWasmApp(t *testing.T) fstest.MapFS {
	t.Helper()
	out := filepath.Join(t.TempDir(), "anom.wasm")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/fakeanom")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the fake messenger: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	execJS, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		t.Fatal(err)
	}
	var gz, br bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	bw := brotli.NewWriterLevel(&br, 5)
	bw.Write(raw)
	bw.Close()
	app := appFiles(t)
	app["dist/anom.wasm.gz"] = &fstest.MapFile{Data: gz.Bytes()}
	app["dist/anom.wasm.br"] = &fstest.MapFile{Data: br.Bytes()}
	app["dist/wasm_exec.js"] = &fstest.MapFile{Data: execJS}
	return app
}

// TestMessengerWasm: with a messenger built (a stand-in WebAssembly from
// testdata/fakeanom), the app loads Go's wasm_exec.js and the WebAssembly,
// brotli-compressed as application/wasm, under its policy (no
// violation), after the calculator is usable; the PIN gesture reaches the
// WebAssembly's anom.unlock, a wrong PIN leaves the calculator, the right
// one announces the unlock.
func TestMessengerWasm(t *testing.T) {
	requireChromium(t)
	s := startServer(t, fakeWasmApp(t))
	if !s.handler().Messenger() {
		t.Fatal("the app with the fake WebAssembly has no messenger")
	}
	ctx := newProfile(t)
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `
window.unlockedEvents = 0;
window.addEventListener('anom:unlocked', () => { window.unlockedEvents++; });
window.violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.violations.push(e.effectiveDirective + ' ' + e.blockedURI));
`}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	wasm := map[string]string{}
	if err := chromedp.Listen(ctx, func(ev any) {
		if ev, ok := ev.(*network.EventResponseReceived); ok && strings.HasSuffix(ev.Response.URL, "/dist/anom.wasm") {
			mu.Lock()
			wasm["type"] = ev.Response.MimeType
			wasm["encoding"] = header(ev.Response.Headers, "Content-Encoding")
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	openApp(t, ctx, s.url)
	waitMessenger(t, ctx)
	mu.Lock()
	if wasm["type"] != "application/wasm" || wasm["encoding"] != "br" {
		t.Errorf("the WebAssembly came as %q, encoding %q; want application/wasm, br", wasm["type"], wasm["encoding"])
	}
	mu.Unlock()

	if got := press(t, ctx, "2468013579=="); got != "2468013579" {
		t.Errorf("a wrong PIN shows %q", got)
	}
	if got := press(t, ctx, "1357924680=="); got != "1357924680" {
		t.Errorf("the right PIN shows %q", got)
	}
	// The PINs reach the messenger once this load's check of the service
	// worker has run (release.js), within seconds.
	type result struct {
		Calls      []string
		Unlocked   int
		Violations []string
	}
	var r result
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		r, err = chromedp.Run(ctx, chromedp.Evaluate[result](`({calls: [...fakeUnlockCalls], unlocked: unlockedEvents, violations})`))
		if err != nil {
			t.Fatal(err)
		}
		if (len(r.Calls) >= 2 && r.Unlocked >= 1) || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(100 * time.Millisecond)
	r, err := chromedp.Run(ctx, chromedp.Evaluate[result](`({calls: [...fakeUnlockCalls], unlocked: unlockedEvents, violations})`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Calls, []string{"2468013579", "1357924680"}) || r.Unlocked != 1 {
		t.Errorf("unlock calls %q, %d anom:unlocked events; want the two PINs and one event", r.Calls, r.Unlocked)
	}
	if len(r.Violations) > 0 {
		t.Errorf("policy violations loading the WebAssembly: %q", r.Violations)
	}
}
