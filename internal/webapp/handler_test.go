package webapp

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/andybalholm/brotli"

	"anom/web"
)

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func br(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := brotli.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// wasm is a stand-in for the WebAssembly: its magic number and some bulk.
var wasm = append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte("anom wasm "), 4000)...)

func testApp(t testing.TB) fstest.MapFS {
	t.Helper()
	return fstest.MapFS{
		"index.html":             {Data: []byte("<!doctype html><title>Calculator</title>")},
		"app.js":                 {Data: []byte("export {};\n")},
		"style.css":              {Data: []byte("body{}\n")},
		"icons/icon.svg":         {Data: []byte("<svg/>")},
		"dist/.keep":             {Data: []byte("placeholder")},
		"dist/anom.wasm.gz":      {Data: gz(t, wasm)},
		"dist/anom.wasm.br":      {Data: br(t, wasm)},
		"dist/wasm_exec.js":      {Data: []byte("globalThis.Go = class {};\n")},
		"dist/notes.txt":         {Data: []byte("not served: unknown type")},
		".hidden/secret.js":      {Data: []byte("secret")},
		"manifest.webmanifest":   {Data: []byte("{}")},
		"icons/icon-192.png":     {Data: []byte("\x89PNG")},
		"dist/wasm_exec.js.keep": {Data: []byte("x")},
	}
}

func newTestHandler(t *testing.T) *Handler {
	t.Helper()
	h, err := New(testApp(t))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func do(h http.Handler, method, path string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "https://anom.test"+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestSecurityHeaders: every response of the app, errors included,
// carries the strict Content-Security-Policy and the other security
// headers; the policy allows no inline or remote script or style.
func TestSecurityHeaders(t *testing.T) {
	h := newTestHandler(t)
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/", 200}, {"GET", "/app.js", 200}, {"HEAD", "/style.css", 200}, {"GET", "/dist/anom.wasm", 200},
		{"GET", "/release.json", 200}, {"GET", "/nope", 404}, {"POST", "/", 405}, {"PUT", "/app.js", 405},
	} {
		w := do(h, c.method, c.path)
		if w.Code != c.code {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, w.Code, c.code)
		}
		for _, kv := range securityHeaders {
			if got := w.Header().Get(kv[0]); got != kv[1] {
				t.Errorf("%s %s: %s %q, want %q", c.method, c.path, kv[0], got, kv[1])
			}
		}
		if c.code == 405 && w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q", c.method, c.path, w.Header().Get("Allow"))
		}
	}
	csp := ContentSecurityPolicy
	for _, want := range []string{"default-src 'self'", "script-src 'self' 'wasm-unsafe-eval';", "style-src 'self';", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP lacks %q: %s", want, csp)
		}
	}
	for _, bad := range []string{"unsafe-inline", "'unsafe-eval'", "http:", "https:", "data:", "*"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP allows %q: %s", bad, csp)
		}
	}
}

// TestContentTypes: each file is served with its type, index.html at /.
func TestContentTypes(t *testing.T) {
	h := newTestHandler(t)
	for path, want := range map[string]string{
		"/": "text/html; charset=utf-8", "/index.html": "text/html; charset=utf-8",
		"/app.js": "text/javascript; charset=utf-8", "/style.css": "text/css; charset=utf-8",
		"/dist/anom.wasm": "application/wasm", "/manifest.webmanifest": "application/manifest+json",
		"/icons/icon.svg": "image/svg+xml", "/icons/icon-192.png": "image/png", "/release.json": "application/json",
	} {
		w := do(h, "GET", path, "Accept-Encoding", "gzip")
		if w.Code != 200 || w.Header().Get("Content-Type") != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, w.Code, w.Header().Get("Content-Type"), want)
		}
		if path != "/release.json" && w.Header().Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", path, w.Header().Get("Cache-Control"))
		}
	}
}

// TestCompressionNegotiation: the WebAssembly is served brotli- or
// gzip-compressed as the browser accepts, decompressed for one that
// accepts neither, each with its own ETag and Vary: Accept-Encoding; all
// decode to the same bytes.
func TestCompressionNegotiation(t *testing.T) {
	h := newTestHandler(t)
	for _, c := range []struct {
		accept, want string
	}{
		{"gzip, deflate, br, zstd", "br"}, {"br", "br"}, {"gzip", "gzip"}, {"GZIP", "gzip"},
		{"br;q=0, gzip", "gzip"}, {"br;q=0.5, gzip;q=1", "br"}, {"*", "br"}, {"br;q=0, *", "gzip"},
		{"", ""}, {"identity", ""}, {"gzip;q=0, br;q=0", ""}, {"*;q=0", ""}, {"deflate", ""}, {"gzip;q=x", ""},
	} {
		w := do(h, "GET", "/dist/anom.wasm", "Accept-Encoding", c.accept)
		if w.Code != 200 {
			t.Fatalf("Accept-Encoding %q: %d", c.accept, w.Code)
		}
		if got := w.Header().Get("Content-Encoding"); got != c.want {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, want %q", c.accept, got, c.want)
		}
		if w.Header().Get("Vary") != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %q: Vary %q", c.accept, w.Header().Get("Vary"))
		}
		var body []byte
		switch c.want {
		case "br":
			body, _ = io.ReadAll(brotli.NewReader(w.Body))
		case "gzip":
			zr, err := gzip.NewReader(w.Body)
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(zr)
		default:
			body = w.Body.Bytes()
		}
		if !bytes.Equal(body, wasm) {
			t.Errorf("Accept-Encoding %q: body decodes to %d bytes, not the WebAssembly", c.accept, len(body))
		}
		etag := w.Header().Get("ETag")
		if suffix := map[string]string{"br": `-br"`, "gzip": `-gzip"`, "": `"`}[c.want]; !strings.HasSuffix(etag, suffix) || (c.want == "" && strings.Contains(etag, "-")) {
			t.Errorf("Accept-Encoding %q: ETag %q", c.accept, etag)
		}
	}
	// A file without compressed forms is sent as it is, without Vary.
	w := do(h, "GET", "/app.js", "Accept-Encoding", "br, gzip")
	if w.Header().Get("Content-Encoding") != "" || w.Header().Get("Vary") != "" || w.Body.String() != "export {};\n" {
		t.Errorf("GET /app.js: encoding %q vary %q body %q", w.Header().Get("Content-Encoding"), w.Header().Get("Vary"), w.Body.String())
	}
}

// TestConditionalRequests: a request with the ETag it has gets 304 and
// no body; a stale one gets the file.
func TestConditionalRequests(t *testing.T) {
	h := newTestHandler(t)
	for _, p := range []string{"/", "/dist/anom.wasm", "/release.json"} {
		w := do(h, "GET", p, "Accept-Encoding", "br")
		etag := w.Header().Get("ETag")
		if etag == "" {
			t.Fatalf("GET %s: no ETag", p)
		}
		w = do(h, "GET", p, "Accept-Encoding", "br", "If-None-Match", etag)
		if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
			t.Errorf("GET %s with its ETag: %d, %d bytes; want 304 and none", p, w.Code, w.Body.Len())
		}
		w = do(h, "GET", p, "Accept-Encoding", "br", "If-None-Match", `"stale"`)
		if w.Code != http.StatusOK || w.Body.Len() == 0 {
			t.Errorf("GET %s with a stale ETag: %d", p, w.Code)
		}
	}
	// The gzip form's ETag does not validate the brotli form.
	gzTag := do(h, "GET", "/dist/anom.wasm", "Accept-Encoding", "gzip").Header().Get("ETag")
	if w := do(h, "GET", "/dist/anom.wasm", "Accept-Encoding", "br", "If-None-Match", gzTag); w.Code != http.StatusOK {
		t.Errorf("brotli request with the gzip ETag: %d, want 200", w.Code)
	}
	// HEAD: the headers, no body.
	if w := do(h, "HEAD", "/dist/anom.wasm", "Accept-Encoding", "br"); w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD: %d, %d bytes, length %q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
	}
}

// TestAttackHiddenFilesAndListings: paths that are not files of the app
// are 404 (and not cached): directories (no listing), dot files, files of
// unknown types, the compressed forms by their own names, traversal.
func TestAttackHiddenFilesAndListings(t *testing.T) {
	h := newTestHandler(t)
	for _, p := range []string{
		"/nope", "/dist", "/dist/", "/icons/", "/dist/.keep", "/.hidden/secret.js", "/dist/notes.txt",
		"/dist/wasm_exec.js.keep", "/index.html/", "/../index.html", "/./index.html", "//index.html",
		"/INDEX.HTML", "/v1/ws", "/dist/anom", "/release.json/x",
	} {
		w := do(h, "GET", p)
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: Cache-Control %q", p, w.Header().Get("Cache-Control"))
		}
		if strings.Contains(w.Body.String(), "<a href") || strings.Contains(w.Body.String(), "anom.wasm") {
			t.Errorf("GET %s lists files: %q", p, w.Body.String())
		}
	}
	// The compressed forms are served under the file's name, with
	// Content-Encoding, not as files of their own.
	for _, p := range []string{"/dist/anom.wasm.gz", "/dist/anom.wasm.br"} {
		if w := do(h, "GET", p); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
	}
}

// TestRelease: /release.json lists every file served with its SHA-256
// (the decoded content for a compressed one), nothing else, and a version
// that changes with any file.
func TestRelease(t *testing.T) {
	h := newTestHandler(t)
	var rel Release
	if err := json.Unmarshal(do(h, "GET", "/release.json").Body.Bytes(), &rel); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{
		"/index.html": nil, "/app.js": nil, "/style.css": nil, "/icons/icon.svg": nil, "/dist/anom.wasm": wasm,
		"/dist/wasm_exec.js": nil, "/manifest.webmanifest": nil, "/icons/icon-192.png": nil,
	}
	if len(rel.Files) != len(want) {
		t.Errorf("release lists %d files, want %d: %v", len(rel.Files), len(want), rel.Files)
	}
	for p := range want {
		w := do(h, "GET", p)
		sum := sha256.Sum256(w.Body.Bytes())
		if rel.Files[p] != hex.EncodeToString(sum[:]) {
			t.Errorf("release: %s sum %q, want %x", p, rel.Files[p], sum)
		}
	}
	if rel.Version != h.Version() || len(rel.Version) != 64 {
		t.Errorf("version %q, handler's %q", rel.Version, h.Version())
	}
	app := testApp(t)
	app["app.js"] = &fstest.MapFile{Data: []byte("export {}; // changed\n")}
	h2, err := New(app)
	if err != nil {
		t.Fatal(err)
	}
	if h2.Version() == h.Version() {
		t.Error("a changed file left the version as it was")
	}
	if !h.Messenger() {
		t.Error("Messenger() false with the WebAssembly present")
	}
	raw, gzn, brn, ok := h.WasmSizes()
	if !ok || raw != len(wasm) || gzn == 0 || brn == 0 {
		t.Errorf("WasmSizes: %d %d %d %v", raw, gzn, brn, ok)
	}
}

// TestNewChecksCompressedForms: a compressed form that decodes to other
// content than its file (a stale build), or does not decode, is refused;
// so is an app without index.html. Without the WebAssembly, the app is
// the calculator alone.
func TestNewChecksCompressedForms(t *testing.T) {
	app := testApp(t)
	app["dist/anom.wasm.gz"] = &fstest.MapFile{Data: gz(t, []byte("\x00asm old build"))}
	if _, err := New(app); err == nil || !strings.Contains(err.Error(), "anom.wasm") {
		t.Errorf("New with a stale .gz: %v", err)
	}
	app = testApp(t)
	app["dist/anom.wasm.br"] = &fstest.MapFile{Data: []byte("not brotli")}
	if _, err := New(app); err == nil {
		t.Error("New with a corrupt .br: no error")
	}
	app = testApp(t)
	app["dist/anom.wasm"] = &fstest.MapFile{Data: []byte("\x00asm other")}
	if _, err := New(app); err == nil {
		t.Error("New with a raw file unlike its compressed forms: no error")
	}
	app = testApp(t)
	delete(app, "index.html")
	if _, err := New(app); err == nil {
		t.Error("New without index.html: no error")
	}
	app = testApp(t)
	delete(app, "dist/anom.wasm.gz")
	delete(app, "dist/anom.wasm.br")
	h, err := New(app)
	if err != nil {
		t.Fatal(err)
	}
	if h.Messenger() {
		t.Error("Messenger() true without the WebAssembly")
	}
	if _, _, _, ok := h.WasmSizes(); ok {
		t.Error("WasmSizes ok without the WebAssembly")
	}
	if w := do(h, "GET", "/dist/anom.wasm"); w.Code != 404 {
		t.Errorf("GET /dist/anom.wasm without it: %d", w.Code)
	}
}

// TestEmbeddedApp: the app in package web loads; every file index.html,
// the manifest and the service worker refer to is served; and the app
// itself has no inline script, inline style or remote resource, which
// its policy would block.
func TestEmbeddedApp(t *testing.T) {
	h, err := New(web.Files())
	if err != nil {
		t.Fatal(err)
	}
	index := do(h, "GET", "/").Body.String()
	if !strings.Contains(index, "<title>Calculator</title>") {
		t.Error("index.html is not titled Calculator")
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(index, -1)
	manifest := do(h, "GET", "/manifest.webmanifest").Body.String()
	refs = append(refs, regexp.MustCompile(`"src": "([^"]+)"`).FindAllStringSubmatch(manifest, -1)...)
	if len(refs) < 8 {
		t.Fatalf("found %d references, want the script, style, manifest and icons", len(refs))
	}
	for _, r := range refs {
		if w := do(h, "GET", "/"+r[1]); w.Code != 200 {
			t.Errorf("index.html or the manifest refers to %s: %d", r[1], w.Code)
		}
	}
	for _, p := range []string{"/app.js", "/calc.js", "/sw.js", "/style.css"} {
		if w := do(h, "GET", p); w.Code != 200 {
			t.Errorf("GET %s: %d", p, w.Code)
		}
	}
	if regexp.MustCompile(`<script(?:\s[^>]*)?>`).FindAllString(index, -1)[0] != `<script type="module" src="app.js">` {
		t.Error("index.html's script is not the module app.js")
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s+type="[^"]*")?\s*>`), // inline script
		regexp.MustCompile(`<style`), regexp.MustCompile(`\sstyle=`), regexp.MustCompile(`\son[a-z]+=`),
		regexp.MustCompile(`(?i)(src|href)="(https?:)?//`), regexp.MustCompile(`javascript:`),
	} {
		if bad.MatchString(index) {
			t.Errorf("index.html has %s", bad)
		}
	}
	for _, p := range []string{"/app.js", "/calc.js", "/sw.js"} {
		body := do(h, "GET", p).Body.String()
		for _, bad := range []string{"eval(", "new Function", "innerHTML", "http://", "https://", "document.write"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s uses %s", p, bad)
			}
		}
	}
}

// plainFS hides everything of its regular files but fs.File (no Seek,
// no ReadAt).
type plainFS struct{ fs.FS }

func (p plainFS) Open(name string) (fs.File, error) {
	f, err := p.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return f, nil
	}
	return struct{ fs.File }{f}, nil
}

// TestPlainFiles: files that cannot seek are served all the same (read
// whole), and the ones that can are served from where they are.
func TestPlainFiles(t *testing.T) {
	h, err := New(plainFS{testApp(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, accept := range []string{"br", "gzip", ""} {
		w := do(h, "GET", "/dist/anom.wasm", "Accept-Encoding", accept)
		if w.Code != 200 || w.Header().Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
			t.Errorf("Accept-Encoding %q: %d, length %q for %d bytes", accept, w.Code, w.Header().Get("Content-Length"), w.Body.Len())
		}
	}
	if w := do(h, "GET", "/app.js"); w.Body.String() != "export {};\n" {
		t.Errorf("GET /app.js: %q", w.Body.String())
	}
}

// /release-proof.json is served from the proof source, made per request
// and never cached; without a source it is 404, and a source's failure
// is a 503.
func TestReleaseProof(t *testing.T) {
	h := newTestHandler(t)
	if rec := do(h, http.MethodGet, ProofPath); rec.Code != http.StatusNotFound {
		t.Errorf("no proof source: %d", rec.Code)
	}
	calls := 0
	var froms []uint64
	h.SetProofSource(func(ctx context.Context, from uint64) ([]byte, error) {
		froms = append(froms, from)
		calls++
		if calls == 2 {
			return nil, errors.New("log unavailable")
		}
		return []byte(`{"version":"` + h.Version() + `"}`), nil
	})
	rec := do(h, http.MethodGet, ProofPath)
	if rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "no-store" || !strings.Contains(rec.Body.String(), h.Version()) ||
		rec.Header().Get("Content-Security-Policy") != ContentSecurityPolicy {
		t.Errorf("with a source: %d %q %s", rec.Code, rec.Header().Get("Cache-Control"), rec.Body)
	}
	if rec := do(h, http.MethodGet, ProofPath); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("a failing source: %d", rec.Code)
	}
	if rec := do(h, http.MethodGet, ProofPath+"?from=17"); rec.Code != http.StatusOK {
		t.Errorf("from a tree size: %d", rec.Code)
	}
	if rec := do(h, http.MethodGet, ProofPath+"?from=x"); rec.Code != http.StatusBadRequest {
		t.Errorf("from not a size: %d", rec.Code)
	}
	if len(froms) != 3 || froms[0] != 0 || froms[2] != 17 {
		t.Errorf("the source was asked from %v, want [0 0 17]", froms)
	}
	d := h.Digest()
	if hex.EncodeToString(d[:]) != h.Version() {
		t.Errorf("digest %x, version %s", d, h.Version())
	}
}
