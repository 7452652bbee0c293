package webtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"anom/identity"
	"anom/internal/server"
	"anom/internal/servertest"
	"anom/internal/store/pebble"
	"anom/internal/tlstest"
	"anom/internal/webapp"
	"anom/web"
)

// webHost is the web app's DNS name in the tests; Chromium resolves it
// to loopback.
const webHost = "anom.test"

// chromiumPath finds the browser: $ANOM_CHROMIUM, else Debian's chromium
// (or another Chromium or Chrome) on the PATH; "" when there is none.
func chromiumPath() string {
	if p := os.Getenv("ANOM_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// requireChromium skips the test when no browser is installed.
func requireChromium(tb testing.TB) string {
	tb.Helper()
	p := chromiumPath()
	if p == "" {
		tb.Skip("no chromium binary found (apt-get install chromium, or set ANOM_CHROMIUM): the web app's browser tests did not run")
	}
	return p
}

// appServer is an anom server serving the web app on loopback, with the
// network's certificate and an operator certificate for webHost.
type appServer struct {
	url      string // https://anom.test:PORT/
	addr     string
	stop     func()
	mu       sync.Mutex
	app      *webapp.Handler
	srv      *server.Server
	proveAs  *[32]byte                // the release whose proof is served; nil: the app's
	proof    []byte                   // served as the proof instead, when set
	proofFn  func(from uint64) []byte // makes the proof instead, when set
	tamper   map[string][]byte        // served instead of the app's file at a path
	requests []string                 // paths the web app was asked for
	full     map[string]int           // responses with a body (200), by path
}

// statusWriter notes a response's status.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// fullResponses returns how many times path was sent with a body (200).
func (s *appServer) fullResponses(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.full[path]
}

// appFiles returns the embedded app as a map, to change in a test.
func appFiles(tb testing.TB) fstest.MapFS {
	tb.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(web.Files(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(web.Files(), p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// setApp makes the server serve the app in fsys from now on.
func (s *appServer) setApp(tb testing.TB, fsys fs.FS) *webapp.Handler {
	tb.Helper()
	app, err := webapp.New(fsys)
	if err != nil {
		tb.Fatal(err)
	}
	app.SetProofSource(func(ctx context.Context, from uint64) ([]byte, error) {
		s.mu.Lock()
		srv, d, fixed, fn := s.srv, app.Digest(), s.proof, s.proofFn
		if s.proveAs != nil {
			d = *s.proveAs
		}
		s.mu.Unlock()
		if fixed != nil {
			return fixed, nil
		}
		if fn != nil {
			return fn(from), nil
		}
		if srv == nil {
			return nil, errors.New("no server yet")
		}
		return srv.WebReleaseProof(ctx, d, from)
	})
	s.mu.Lock()
	s.app = app
	s.mu.Unlock()
	return app
}

// logApp appends the release of the app being served to the server's
// transparency log and returns its index.
func (s *appServer) logApp(tb testing.TB) uint64 {
	tb.Helper()
	s.mu.Lock()
	srv, d := s.srv, s.app.Digest()
	s.mu.Unlock()
	idx, err := srv.LogWebRelease(context.Background(), identity.WebRelease{Digest: d})
	if err != nil {
		tb.Fatal(err)
	}
	return idx
}

// setProveAs makes the server serve the proof of the release of digest
// (nil: of the app it serves), as a server lying about an unlogged
// release would.
func (s *appServer) setProveAs(digest *[32]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proveAs = digest
}

// setProof makes the server serve proof as release-proof.json (nil: its
// own proof again).
func (s *appServer) setProof(proof []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proof = proof
}

// setProofFunc makes the server serve fn(from) as release-proof.json
// (nil: its own proof again), as a server keeping a log of its own.
func (s *appServer) setProofFunc(fn func(from uint64) []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proofFn = fn
}

// handler returns the app being served.
func (s *appServer) handler() *webapp.Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.app
}

// setTamper makes the server answer path with body instead of the app's
// file (nil: the app's file again).
func (s *appServer) setTamper(path string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tamper == nil {
		s.tamper = map[string][]byte{}
	}
	if body == nil {
		delete(s.tamper, path)
	} else {
		s.tamper[path] = body
	}
}

func (s *appServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.URL.Path)
	app, body, tampered := s.app, s.tamper[r.URL.Path], s.tamper[r.URL.Path] != nil
	s.mu.Unlock()
	if tampered {
		w.Header().Set("Content-Security-Policy", webapp.ContentSecurityPolicy)
		w.Header().Set("Content-Type", mime.TypeByExtension(path.Ext(r.URL.Path)))
		w.Write(body)
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	app.ServeHTTP(sw, r)
	if sw.code == http.StatusOK {
		s.mu.Lock()
		if s.full == nil {
			s.full = map[string]int{}
		}
		s.full[r.URL.Path]++
		s.mu.Unlock()
	}
}

// startServer starts a server serving the embedded app, or the app in
// fsys when given.
func startServer(tb testing.TB, fsys ...fs.FS) *appServer {
	tb.Helper()
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	netPKI := tlstest.New(tb, "127.0.0.1", "localhost", "server.anom")
	opPKI, _ := operatorPKI(tb)
	tc, _, err := webapp.OperatorTLS(netPKI.Server, opPKI.Server.Certificates[0])
	if err != nil {
		tb.Fatal(err)
	}
	s := &appServer{}
	if len(fsys) > 0 {
		s.setApp(tb, fsys[0])
	} else {
		s.setApp(tb, web.Files())
	}
	st, err := pebble.Open(filepath.Join(tb.TempDir(), "server"), pebble.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := server.Config{Store: st, TLS: tc, Name: "test.anom", Web: s, WebRelease: &identity.WebRelease{Digest: s.handler().Digest()}}
	servertest.Keys(tb, &cfg, root)
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	s.addr, s.stop = servertest.Serve(tb, srv, st, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(s.addr)
	s.url = "https://" + webHost + ":" + port + "/"
	return s
}

// served returns the paths the web app was asked for so far.
func (s *appServer) served() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// The browser is one headless Chromium for the whole test run, with a
// temporary user data directory, trusting the operator certificate by its
// key and resolving webHost to loopback; each test gets a profile of its
// own in it (newProfile).
var shared struct {
	sync.Once
	op   *tlstest.PKI // the operator's certificate for webHost
	spki []string     // base64 SHA-256 of its keys, for Chromium
	ctx  context.Context
	stop func()
	err  error
}

// operatorPKI returns the operator's certificate, made once.
func operatorPKI(tb testing.TB) (*tlstest.PKI, []string) {
	tb.Helper()
	opOnce.Do(func() {
		shared.op = tlstest.New(tb, webHost)
		for _, der := range shared.op.Server.Certificates[0].Certificate {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				tb.Fatal(err)
			}
			sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
			shared.spki = append(shared.spki, base64.StdEncoding.EncodeToString(sum[:]))
		}
	})
	return shared.op, shared.spki
}

var opOnce sync.Once

// startBrowser starts the shared Chromium once.
func startBrowser(tb testing.TB) context.Context {
	tb.Helper()
	exe := requireChromium(tb)
	_, spki := operatorPKI(tb)
	shared.Do(func() {
		dir, err := os.MkdirTemp("", "anom-chromium")
		if err != nil {
			shared.err = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(exe),
			chromedp.Flag("headless", "new"),
			chromedp.UserDataDir(dir),
			chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(spki, ",")),
			chromedp.Flag("host-resolver-rules", "MAP "+webHost+" 127.0.0.1"),
			chromedp.Flag("disable-gpu", true),
			chromedp.Flag("no-proxy-server", true),
			chromedp.WindowSize(1280, 800),
		)
		if os.Geteuid() == 0 {
			opts = append(opts, chromedp.NoSandbox)
		}
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancel := chromedp.NewContext(allocCtx)
		shared.ctx = ctx
		shared.stop = func() {
			cancel()
			cancelAlloc()
			for range 50 { // Chromium's children may still write for a moment
				if os.RemoveAll(dir) == nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		if err := chromedp.Do(ctx); err != nil {
			shared.err = fmt.Errorf("starting %s: %w", exe, err)
		}
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.ctx
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	os.Exit(code)
}

// newProfile returns the first tab of a new, empty browser profile (its
// own storage, caches and service workers), closed when the test ends.
func newProfile(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := chromedp.NewContext(startBrowser(tb), chromedp.WithNewBrowserContext())
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		tb.Fatal(err)
	}
	tb.Cleanup(cancel)
	return ctx
}

// calculatorOnly keeps the messenger's WebAssembly out of ctx's pages
// (a stand-in anom that takes no PIN stops the app from loading it), for
// the tests of the calculator alone: loading and compiling the real one
// in every test would make them several times slower.
func calculatorOnly(tb testing.TB, ctx context.Context) {
	tb.Helper()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.anom = { unlock: async () => ({ result: 'wrong' }) };`,
	}); err != nil {
		tb.Fatal(err)
	}
}

// newTab opens another tab in profile's browser profile.
func newTab(tb testing.TB, profile context.Context) context.Context {
	tb.Helper()
	ctx, cancel := chromedp.NewContext(profile)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		tb.Fatal(err)
	}
	tb.Cleanup(cancel)
	return ctx
}

// timeout bounds one step of a test.
func timeout(tb testing.TB, ctx context.Context, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(ctx, d)
	tb.Cleanup(cancel)
	return ctx
}

// openApp navigates ctx's tab to the app and waits until the calculator
// answers a key (the module has run).
func openApp(tb testing.TB, ctx context.Context, url string) {
	tb.Helper()
	if err := chromedp.Do(timeout(tb, ctx, 20*time.Second), chromedp.Navigate(url)); err != nil {
		tb.Fatalf("opening %s: %v", url, err)
	}
	waitUsable(tb, ctx)
}

// usableJS presses 7 and AC and reports whether the display showed 7.
const usableJS = `(() => {
  const k = document.querySelector('button[data-key="7"]');
  const d = document.getElementById('display');
  if (!k || !d) return false;
  k.click();
  const ok = d.textContent === '7';
  document.querySelector('button[data-key="clear"]').click();
  document.querySelector('button[data-key="clear"]').click();
  return ok;
})()`

func waitUsable(tb testing.TB, ctx context.Context) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, err := chromedp.Run(timeout(tb, ctx, 5*time.Second), chromedp.Evaluate[bool](usableJS))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the calculator did not answer a key: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pressJS clicks the buttons of the keys in order and returns the
// display's text.
func pressJS(keys []string) string {
	var b strings.Builder
	b.WriteString("(() => {")
	for _, k := range keys {
		fmt.Fprintf(&b, "document.querySelector('button[data-key=%q]').click();", k)
	}
	b.WriteString("return document.getElementById('display').textContent; })()")
	return b.String()
}

// keysOf splits a key sequence written compactly: each character a key,
// but s for the sign, C for clear (C or AC), = for equals.
func keysOf(seq string) []string {
	var keys []string
	for _, r := range seq {
		switch r {
		case 's':
			keys = append(keys, "sign")
		case 'C':
			keys = append(keys, "clear")
		case ' ':
		default:
			keys = append(keys, string(r))
		}
	}
	return keys
}

// press clicks the keys of seq (keysOf) after an all clear and returns
// the display.
func press(tb testing.TB, ctx context.Context, seq string) string {
	tb.Helper()
	keys := append([]string{"clear", "clear"}, keysOf(seq)...)
	got, err := chromedp.Run(timeout(tb, ctx, 10*time.Second), chromedp.Evaluate[string](pressJS(keys)))
	if err != nil {
		tb.Fatalf("pressing %q: %v", seq, err)
	}
	return got
}

// screenshotDir is where screenshots go: $ANOM_SCREENSHOTS, else the
// test's temporary directory.
func screenshotDir(tb testing.TB) string {
	if d := os.Getenv("ANOM_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
		return d
	}
	return tb.TempDir()
}
