//go:build !js

// Package wasmtest runs GOOS=js GOARCH=wasm code in headless Chromium from
// tests on the host: it builds a package's test binary (or a program) for
// the browser, serves it on loopback with Go's wasm_exec.js, drives
// Chromium with chromedp and reports the output and exit code. A test
// skips, saying why, when no Chromium is installed.
package wasmtest

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

//go:embed index.html
var indexHTML []byte

//go:embed run.js
var runJS []byte

// Chromium returns the path of the Chromium (or Chrome) binary to test
// with: $ANOM_CHROMIUM, or the first found of the usual names. It skips
// the test when there is none.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ANOM_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Skip("no Chromium found (install chromium, or set ANOM_CHROMIUM): the browser tests need one")
	return ""
}

// WasmExec returns Go's wasm_exec.js, the JavaScript side of GOOS=js.
func WasmExec(t testing.TB) []byte {
	t.Helper()
	root := runtime.GOROOT()
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		root = strings.TrimSpace(string(out))
	}
	for _, p := range []string{"lib/wasm/wasm_exec.js", "misc/wasm/wasm_exec.js"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err == nil {
			return b
		}
	}
	t.Fatalf("wasm_exec.js not found under %s", root)
	return nil
}

// goBuild runs the go command for GOOS=js GOARCH=wasm.
func goBuild(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s (js/wasm): %v\n%s", strings.Join(args, " "), err, out)
	}
}

// BuildTest builds the test binary of package pkg (an import path or
// ./dir) for the browser into out.
func BuildTest(t testing.TB, pkg, out string) {
	t.Helper()
	goBuild(t, "test", "-c", "-o", out, pkg)
}

// Build builds the program pkg for the browser into out.
func Build(t testing.TB, pkg, out string) {
	t.Helper()
	goBuild(t, "build", "-o", out, pkg)
}

// Serve serves dir over HTTP on loopback until the test ends and returns
// its base URL (ending in /). Loopback is a secure context for Chromium,
// so IndexedDB and the Web Locks API work without TLS.
func Serve(t testing.TB, dir string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// Browser is a headless Chromium with its own profile.
type Browser struct {
	// Ctx is the chromedp context of its first tab.
	Ctx context.Context
}

// NewBrowser starts a headless Chromium for the test (closed when it
// ends) with a fresh profile in profileDir (a new temporary one if
// empty), with extra command-line flags.
func NewBrowser(t testing.TB, profileDir string, flags ...chromedp.ExecAllocatorOption) *Browser {
	t.Helper()
	bin := Chromium(t)
	if profileDir == "" {
		profileDir = t.TempDir()
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(profileDir),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	opts = append(opts, flags...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return &Browser{Ctx: ctx}
}

// Result is how a Go program ended in the browser.
type Result struct {
	Output string
	Exit   int
}

// RunWasm loads the Go program wasm (a file in the directory base serves)
// with arguments args on the runner page and waits for it to exit, at most
// timeout.
func (b *Browser) RunWasm(base, wasm string, args []string, timeout time.Duration) (Result, error) {
	a, _ := json.Marshal(args)
	u := base + "wasmtest.html?wasm=" + url.QueryEscape(wasm) + "&args=" + url.QueryEscape(string(a))
	ctx, cancel := context.WithTimeout(b.Ctx, timeout)
	defer cancel()
	var res Result
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		return res, fmt.Errorf("loading %s: %w", u, err)
	}
	for {
		type state struct {
			Out  string `json:"out"`
			Exit *int   `json:"exit"`
		}
		st, err := chromedp.Run(ctx, chromedp.Evaluate[state](`globalThis.__wasmtest || {out: "", exit: null}`))
		if err != nil {
			return Result{Output: res.Output}, fmt.Errorf("waiting for %s to exit: %w", wasm, err)
		}
		res.Output = st.Out
		if st.Exit != nil {
			res.Exit = *st.Exit
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("%s did not exit within %v", wasm, timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// StageRunner writes the runner page (wasmtest.html, run.js) and
// wasm_exec.js into dir.
func StageRunner(t testing.TB, dir string) {
	t.Helper()
	for name, b := range map[string][]byte{"wasmtest.html": indexHTML, "run.js": runJS, "wasm_exec.js": WasmExec(t)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// RunTests builds package pkg's tests for the browser and runs them (with
// -test.v and the given flags) in a new headless Chromium, failing t with
// their output if they fail.
func RunTests(t *testing.T, pkg string, timeout time.Duration, flags ...string) {
	t.Helper()
	Chromium(t)
	dir := t.TempDir()
	BuildTest(t, pkg, filepath.Join(dir, "test.wasm"))
	StageRunner(t, dir)
	base := Serve(t, dir)
	b := NewBrowser(t, "")
	args := append([]string{"-test.v", "-test.timeout=" + timeout.String()}, flags...)
	res, err := b.RunWasm(base, "test.wasm", args, timeout+30*time.Second)
	if err != nil {
		t.Fatalf("running %s's tests in Chromium: %v\noutput:\n%s", pkg, err, res.Output)
	}
	if res.Exit != 0 {
		t.Fatalf("%s's tests failed in Chromium (exit %d):\n%s", pkg, res.Exit, res.Output)
	}
	if testing.Verbose() {
		t.Logf("%s's tests in Chromium:\n%s", pkg, res.Output)
	}
}
