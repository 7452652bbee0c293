package netsetup

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInit makes a network and opens everything the server and the
// administrator read from it.
func TestInit(t *testing.T) {
	d := Dir(filepath.Join(t.TempDir(), "net"))
	var out bytes.Buffer
	if err := Init(d, "Test Net", []string{" example.org ", "localhost", "10.0.0.1"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `network "Test Net" made in`) {
		t.Errorf("Init printed %q", out.String())
	}
	if holds, _, err := d.HoldsNetwork(); !holds || err != nil {
		t.Fatalf("HoldsNetwork after Init: %v %v", holds, err)
	}
	ni, err := d.Info()
	if err != nil {
		t.Fatal(err)
	}
	root, err := d.RootKey()
	if err != nil {
		t.Fatal(err)
	}
	if ni.Name != "Test Net" || ni.RootFingerprint != root.Public().Fingerprint() || len(ni.CAFingerprint) != 64 ||
		strings.Join(ni.Hostnames, ",") != "localhost,127.0.0.1,example.org,10.0.0.1" {
		t.Errorf("network info %+v", ni)
	}
	if _, err := d.TLSConfig(); err != nil {
		t.Errorf("TLS config: %v", err)
	}
	pool, err := d.CAPool()
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(mustRead(t, d.Path("server.crt")))
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "example.org"}); err != nil {
		t.Errorf("server certificate for example.org: %v", err)
	}
	if _, err := d.DirectorySigner(); err != nil {
		t.Errorf("directory key: %v", err)
	}
	if _, c, err := d.CountersignKey(); err != nil || c.Name != OnlineKeyName("Test Net") || c.Serial != 1 {
		t.Errorf("countersigning key: %v %v", c, err)
	}
	// Secrets: the root and CA keys in the root folder, nothing of them
	// in the data directory; every secret file 0600.
	for _, p := range []string{d.RootPath("root.key"), d.RootPath("ca.key"), d.Path("server.key"), d.Path("blob.key"),
		d.Path(ArchiveTokenFile), filepath.Join(d.AdminDir(), AdminKeyFile), filepath.Join(d.AdminDir(), AdminCertFile)} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v", p, err)
		}
	}
	if tok := strings.TrimSpace(string(mustRead(t, d.Path(ArchiveTokenFile)))); len(tok) != 64 {
		t.Errorf("archive token %q, want 64 hex digits", tok)
	}
	for _, name := range []string{"root.key", "ca.key"} {
		if _, err := os.Stat(d.Path(name)); err == nil {
			t.Errorf("%s in the data directory", name)
		}
	}
	// A second Init refuses to overwrite.
	if err := Init(d, "again", nil, &out); err == nil {
		t.Error("a second Init succeeded")
	}
}

// TestRefuseInside keeps secrets out of the server's data directory,
// links resolved.
func TestRefuseInside(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "net")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := RefuseInside(filepath.Join(data, "keys", "new"), data); err == nil {
		t.Error("a folder inside the data directory was allowed")
	}
	if err := RefuseInside(data, data); err == nil {
		t.Error("the data directory itself was allowed")
	}
	if err := RefuseInside(Dir(data).AdminDir(), data); err != nil {
		t.Errorf("the admin folder beside it: %v", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(data, link); err != nil {
		t.Fatal(err)
	}
	if err := RefuseInside(filepath.Join(link, "x"), data); err == nil {
		t.Error("a folder inside the data directory through a link was allowed")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
