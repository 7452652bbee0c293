package webapp

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzAccepts: any Accept-Encoding value parses without a panic; a value
// of one coding (no list, no *) accepts only that coding, and never with
// q=0.
func FuzzAccepts(f *testing.F) {
	for _, s := range []string{"", "br", "gzip, deflate, br, zstd", "br;q=0, *", "*;q=0.5", "gzip;q=x", ";;,,", "br;q=1;q=0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		for _, coding := range []string{"br", "gzip"} {
			if strings.ContainsAny(header, ",*") || !accepts(header, coding) {
				continue
			}
			name, _, _ := strings.Cut(header, ";")
			if !strings.EqualFold(strings.TrimSpace(name), coding) {
				t.Errorf("%q accepts %s", header, coding)
			}
			if accepts(header+";q=0", coding) {
				t.Errorf("%q;q=0 accepts %s", header, coding)
			}
		}
	})
}

// FuzzHandler: any path, Accept-Encoding and If-None-Match get 200, 304
// or 404 with the security headers, and 200 only for a file of the app.
func FuzzHandler(f *testing.F) {
	h, err := New(testApp(f))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/", "/dist/anom.wasm", "/dist/", "/.hidden/secret.js", "/release.json", "/%2e%2e/x", "/index.html/"} {
		f.Add(s, "br", "")
	}
	f.Fuzz(func(t *testing.T, path, accept, inm string) {
		u, err := url.Parse("https://anom.test" + path)
		if err != nil || !strings.HasPrefix(path, "/") {
			return
		}
		r := httptest.NewRequest(http.MethodGet, "https://anom.test/", nil)
		r.URL = u
		r.Header.Set("Accept-Encoding", accept)
		r.Header.Set("If-None-Match", inm)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case 200, 304:
			p := u.Path
			if p == "/" {
				p = "/index.html"
			}
			if h.assets[p] == nil && p != ReleasePath {
				t.Errorf("GET %q: %d for a path not in the app", path, w.Code)
			}
		case 404:
		default:
			t.Errorf("GET %q: %d", path, w.Code)
		}
		if w.Header().Get("Content-Security-Policy") != ContentSecurityPolicy {
			t.Errorf("GET %q: no CSP", path)
		}
	})
}
