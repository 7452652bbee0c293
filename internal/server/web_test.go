package server

import (
	"io"
	"net/http"
	"testing"
)

// TestWebMounted: with Config.Web, the client port serves the web app at
// / and every other path outside the API, while the API's routes still
// reach the API; without it such paths are not found.
func TestWebMounted(t *testing.T) {
	web := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "app:"+r.URL.Path)
	})
	n := newNetwork(t, func(c *Config) { c.Web = web })
	hc := n.httpClient()
	get := func(path string) (int, string) {
		t.Helper()
		res, err := hc.Get("https://" + n.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for _, p := range []string{"/", "/index.html", "/dist/anom.wasm"} {
		if code, body := get(p); code != http.StatusOK || body != "app:"+p {
			t.Errorf("GET %s: %d %q, want the web app", p, code, body)
		}
	}
	// A plain GET of the WebSocket route is the API's (it wants an
	// upgrade), not the app's.
	if code, body := get("/v1/ws"); code == http.StatusOK || body == "app:/v1/ws" {
		t.Errorf("GET /v1/ws: %d %q, went to the web app", code, body)
	}
	if code, body := get("/v1/blobs/x"); body == "app:/v1/blobs/x" {
		t.Errorf("GET /v1/blobs/x: %d %q, went to the web app", code, body)
	}

	bare := newNetwork(t, nil)
	res, err := bare.httpClient().Get("https://" + bare.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET / without a web app: %d, want 404", res.StatusCode)
	}
}
