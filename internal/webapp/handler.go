// Package webapp serves the web app (package anom/web) from the server's
// client port: the calculator at /, the messenger's WebAssembly
// precompressed, under a strict Content-Security-Policy, and a release
// manifest (/release.json) of every file's SHA-256 that the service worker
// checks what it caches against. tls.go chooses between the network's
// certificate and an operator's certificate for browsers.
package webapp

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"anom/internal/webrelease"

	"github.com/andybalholm/brotli"
)

// ContentSecurityPolicy is sent with every response of the app: scripts,
// styles and everything else only from the app's own origin, no inline
// script or style, no plugins, no framing, WebAssembly allowed to compile
// ('wasm-unsafe-eval', which permits no JavaScript eval). Images and
// media may also be blob: URLs (attachments the app decrypted itself).
const ContentSecurityPolicy = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
	"img-src 'self' blob:; media-src 'self' blob:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; " +
	"font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// securityHeaders are set on every response of the app, errors included.
var securityHeaders = [][2]string{
	{"Content-Security-Policy", ContentSecurityPolicy},
	{"X-Content-Type-Options", "nosniff"},
	{"Referrer-Policy", "no-referrer"},
	{"X-Frame-Options", "DENY"},
	{"Cross-Origin-Opener-Policy", "same-origin"},
	{"Cross-Origin-Resource-Policy", "same-origin"},
	{"Permissions-Policy", "camera=(self), microphone=(self), geolocation=(), payment=(), usb=()"},
}

// contentTypes are the types of the files served, by extension; a file of
// another extension is not served.
var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".wasm":        "application/wasm",
	".webmanifest": "application/manifest+json",
	".json":        "application/json",
	".svg":         "image/svg+xml",
	".png":         "image/png",
}

// WasmPath and WasmExecPath are where the messenger's WebAssembly and
// Go's JavaScript support for it are served.
const (
	WasmPath     = "/dist/anom.wasm"
	WasmExecPath = "/dist/wasm_exec.js"
	// ReleasePath serves the release manifest.
	ReleasePath = webrelease.ManifestPath
	// ProofPath serves the proof that the release is in the network's
	// transparency log (webrelease.Proof), when a ProofSource is set.
	ProofPath = webrelease.ProofPath
)

// asset is one file as served, in each form it was found in. The forms
// stay in the app's file system (embedded in the binary) and are read per
// request, not copied onto the heap.
type asset struct {
	ctype    string
	identity *form // nil when the file came only compressed
	gzip, br *form
	size     int64             // of the content, decoded
	sum      [sha256.Size]byte // of the content, decoded
	etag     string            // of the content; an encoding adds a suffix
}

// form is one stored form of a file: its path in the app's file system
// and its size.
type form struct {
	path string
	size int64
}

// Handler serves the app. Create it with New.
type Handler struct {
	fsys    fs.FS
	assets  map[string]*asset // by URL path
	release []byte
	version string
	digest  [32]byte

	proofMu sync.RWMutex
	proof   ProofSource
}

// Release is the release manifest served at /release.json: every file's
// SHA-256 (hex) by URL path, and the release's version, the SHA-256 of
// the sorted "path sum\n" lines (identity.WebReleaseDigest).
type Release = webrelease.Manifest

// ProofSource makes release-proof.json for the release served (the
// server: webrelease.NewProof over its log), with the consistency proof
// from the tree of size from, the tree head the device saw last (0:
// none; the query parameter from of ProofPath).
type ProofSource func(ctx context.Context, from uint64) ([]byte, error)

// New reads the app from fsys (rooted at the app's directory, as
// web.Files). NAME.gz and NAME.br are NAME compressed with gzip and
// brotli: each is checked to decode to the same content as NAME and the
// other, and served to browsers that accept it; NAME itself may be
// absent. Files and directories whose names start with a dot are not
// served, nor files of an extension the app does not use.
func New(fsys fs.FS) (*Handler, error) {
	h := &Handler{fsys: fsys, assets: map[string]*asset{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		name, enc := p, ""
		if n, ok := strings.CutSuffix(p, ".gz"); ok {
			name, enc = n, "gzip"
		} else if n, ok := strings.CutSuffix(p, ".br"); ok {
			name, enc = n, "br"
		}
		ctype, ok := contentTypes[path.Ext(name)]
		if !ok {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("reading the web app: %w", err)
		}
		f := &form{path: p, size: info.Size()}
		a := h.assets["/"+name]
		if a == nil {
			a = &asset{ctype: ctype}
			h.assets["/"+name] = a
		}
		switch enc {
		case "gzip":
			a.gzip = f
		case "br":
			a.br = f
		default:
			a.identity = f
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the web app: %w", err)
	}
	rel := Release{Files: map[string]string{}}
	for p, a := range h.assets {
		if err := a.check(fsys); err != nil {
			return nil, fmt.Errorf("web app file %s: %w", p, err)
		}
		a.etag = hex.EncodeToString(a.sum[:16])
		rel.Files[p] = hex.EncodeToString(a.sum[:])
	}
	if _, ok := h.assets["/index.html"]; !ok {
		return nil, errors.New("reading the web app: no index.html")
	}
	m, err := webrelease.NewManifest(rel.Files)
	if err != nil {
		return nil, fmt.Errorf("making the release manifest: %w", err)
	}
	rel = m
	h.version = rel.Version
	h.digest, _ = m.Digest()
	h.release, err = json.Marshal(rel)
	if err != nil {
		return nil, fmt.Errorf("encoding the release manifest: %w", err)
	}
	return h, nil
}

// check sets a.sum and a.size from its content and checks that every
// form of it decodes to the same bytes.
func (a *asset) check(fsys fs.FS) error {
	type result struct {
		sum  [sha256.Size]byte
		size int64
	}
	var results []result
	for _, f := range []struct {
		form   *form
		decode func(io.Reader) (io.Reader, error)
	}{
		{a.identity, func(r io.Reader) (io.Reader, error) { return r, nil }},
		{a.gzip, func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
		{a.br, func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil }},
	} {
		if f.form == nil {
			continue
		}
		file, err := fsys.Open(f.form.path)
		if err != nil {
			return err
		}
		r, err := f.decode(file)
		if err != nil {
			file.Close()
			return fmt.Errorf("decoding %s: %w", f.form.path, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, r)
		file.Close()
		if err != nil {
			return fmt.Errorf("decoding %s: %w", f.form.path, err)
		}
		results = append(results, result{[sha256.Size]byte(h.Sum(nil)), n})
	}
	for _, r := range results[1:] {
		if r != results[0] {
			return errors.New("its compressed forms hold other content than it (rebuild with scripts/build)")
		}
	}
	a.sum, a.size = results[0].sum, results[0].size
	return nil
}

// open opens a stored form for reading; close when done.
func (h *Handler) open(f *form) (io.ReadSeeker, func(), error) {
	file, err := h.fsys.Open(f.path)
	if err != nil {
		return nil, nil, err
	}
	if rs, ok := file.(io.ReadSeeker); ok {
		return rs, func() { file.Close() }, nil
	}
	b, err := io.ReadAll(file)
	file.Close()
	return bytes.NewReader(b), func() {}, err
}

// decoded returns a file's content decoded from a compressed form, for a
// browser that accepts neither encoding.
func (h *Handler) decoded(a *asset) ([]byte, error) {
	f, dec := a.gzip, "gzip"
	if f == nil {
		f, dec = a.br, "br"
	}
	r, closeFile, err := h.open(f)
	if err != nil {
		return nil, err
	}
	defer closeFile()
	var zr io.Reader
	if dec == "gzip" {
		if zr, err = gzip.NewReader(r); err != nil {
			return nil, err
		}
	} else {
		zr = brotli.NewReader(r)
	}
	return io.ReadAll(zr)
}

// Messenger reports whether the messenger's WebAssembly was built into
// the app (else it is a calculator alone).
func (h *Handler) Messenger() bool {
	return h.assets[WasmPath] != nil && h.assets[WasmExecPath] != nil
}

// Version is the release's version (its manifest's hash).
func (h *Handler) Version() string { return h.version }

// Digest is the release's digest, the bytes of Version, which the server
// logs (identity.WebRelease).
func (h *Handler) Digest() [32]byte { return h.digest }

// Manifest is release.json as served.
func (h *Handler) Manifest() []byte { return h.release }

// SetProofSource makes the handler serve /release-proof.json from src;
// without one that path is 404.
func (h *Handler) SetProofSource(src ProofSource) {
	h.proofMu.Lock()
	h.proof = src
	h.proofMu.Unlock()
}

// WasmSizes returns the WebAssembly's size in each form it is served in
// (0 for a form not present): raw, gzip and brotli. ok is false when it
// was not built.
func (h *Handler) WasmSizes() (raw, gz, br int, ok bool) {
	a := h.assets[WasmPath]
	if a == nil {
		return 0, 0, 0, false
	}
	if a.gzip != nil {
		gz = int(a.gzip.size)
	}
	if a.br != nil {
		br = int(a.br.size)
	}
	return int(a.size), gz, br, true
}

// ServeHTTP serves the app's files (GET and HEAD): / is index.html.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	for _, kv := range securityHeaders {
		hd.Set(kv[0], kv[1])
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if p == "/" {
		p = "/index.html"
	}
	if p == ReleasePath {
		hd.Set("Content-Type", "application/json")
		hd.Set("Cache-Control", "no-cache")
		hd.Set("ETag", `"`+h.version[:32]+`"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(h.release))
		return
	}
	if p == ProofPath {
		h.serveProof(w, r)
		return
	}
	a := h.assets[p]
	if a == nil {
		hd.Set("Cache-Control", "no-store")
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	hd.Set("Content-Type", a.ctype)
	// Files keep their names across releases: the browser revalidates
	// each use (a 304 when unchanged); the service worker keeps the
	// offline copy.
	hd.Set("Cache-Control", "no-cache")
	if a.gzip != nil || a.br != nil {
		hd.Add("Vary", "Accept-Encoding")
	}
	var body io.ReadSeeker
	var size int64
	f, enc := a.identity, ""
	ae := r.Header.Get("Accept-Encoding")
	switch {
	case a.br != nil && accepts(ae, "br"):
		f, enc = a.br, "br"
	case a.gzip != nil && accepts(ae, "gzip"):
		f, enc = a.gzip, "gzip"
	}
	if f != nil {
		rs, closeFile, err := h.open(f)
		if err != nil {
			http.Error(w, "reading the file", http.StatusInternalServerError)
			return
		}
		defer closeFile()
		body, size = rs, f.size
	} else {
		b, err := h.decoded(a)
		if err != nil {
			http.Error(w, "decompressing", http.StatusInternalServerError)
			return
		}
		body, size = bytes.NewReader(b), int64(len(b))
	}
	etag := a.etag
	if enc != "" {
		hd.Set("Content-Encoding", enc)
		etag += "-" + enc
		// ServeContent leaves out the length of encoded content, and
		// ranges of it are of no use here: whole files, with a length.
		r.Header.Del("Range")
		hd.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	hd.Set("ETag", `"`+etag+`"`)
	http.ServeContent(w, r, "", time.Time{}, body)
}

// accepts reports whether an Accept-Encoding header value accepts coding
// (by name or by *, with a quality above 0).
func accepts(header, coding string) bool {
	star := false
	for part := range strings.SplitSeq(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.TrimSpace(name)
		q := 1.0
		for param := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(param), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					f = 0
				}
				q = f
			}
		}
		switch {
		case strings.EqualFold(name, coding):
			return q > 0
		case name == "*":
			star = q > 0
		}
	}
	return star
}

// serveProof serves release-proof.json, made per request (its tree head
// is the log's current one), never cached.
func (h *Handler) serveProof(w http.ResponseWriter, r *http.Request) {
	h.proofMu.RLock()
	src := h.proof
	h.proofMu.RUnlock()
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	if src == nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var from uint64
	if q := r.URL.Query().Get("from"); q != "" {
		n, err := strconv.ParseUint(q, 10, 64)
		if err != nil {
			http.Error(w, "from: not a tree size", http.StatusBadRequest)
			return
		}
		from = n
	}
	b, err := src(r.Context(), from)
	if err != nil {
		http.Error(w, "the release's proof is unavailable", http.StatusServiceUnavailable)
		return
	}
	hd.Set("Content-Type", "application/json")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}
