package netsetup

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"anom/identity"
)

func TestSiblings(t *testing.T) {
	dir := t.TempDir()
	d := Dir(filepath.Join(dir, "net") + string(filepath.Separator))
	if got, want := d.RootDir(), filepath.Join(dir, "net.root"); got != want {
		t.Errorf("root folder %s, want %s", got, want)
	}
	if got, want := d.AdminDir(), filepath.Join(dir, "net.admin"); got != want {
		t.Errorf("admin folder %s, want %s", got, want)
	}
	if got, want := d.RootPath("root.key"), filepath.Join(dir, "net.root", "root.key"); got != want {
		t.Errorf("root file %s, want %s", got, want)
	}
	// "." names the directory by where one stands: its siblings are
	// beside it, never inside.
	t.Chdir(dir)
	if got, want := Dir(".").RootDir(), dir+".root"; got != want {
		t.Errorf("root folder of . is %s, want %s", got, want)
	}
}

func TestHoldsNetwork(t *testing.T) {
	dir := t.TempDir()
	check := func(d Dir, wantHolds, wantFresh bool) {
		t.Helper()
		holds, fresh, err := d.HoldsNetwork()
		if err != nil || holds != wantHolds || fresh != wantFresh {
			t.Errorf("%s: holds %v fresh %v (%v), want %v %v", d, holds, fresh, err, wantHolds, wantFresh)
		}
	}
	check(Dir(filepath.Join(dir, "missing")), false, true)
	check(Dir(dir), false, true)
	if err := os.WriteFile(filepath.Join(dir, "other"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	check(Dir(dir), false, false)
	if err := os.WriteFile(filepath.Join(dir, "network.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	check(Dir(dir), true, false)
}

func TestInfoAndAddress(t *testing.T) {
	d := Dir(t.TempDir())
	if _, err := d.Info(); err == nil || !strings.Contains(err.Error(), "anom admin init") {
		t.Fatalf("Info without network.json: %v", err)
	}
	// A network.json from before root_public_key is filled from root.pub.
	if err := WriteSecret(d.Path("network.json"), []byte(`{"name":"n","ca_fingerprint":"ab"}`)); err != nil {
		t.Fatal(err)
	}
	if err := WriteSecret(d.Path("root.pub"), []byte("cafe\n")); err != nil {
		t.Fatal(err)
	}
	if err := d.SetAddress("127.0.0.1:4433"); err != nil {
		t.Fatal(err)
	}
	ni, err := d.Info()
	if err != nil {
		t.Fatal(err)
	}
	if ni.Name != "n" || ni.CAFingerprint != "ab" || ni.RootPublicKey != "cafe" || ni.Address != "127.0.0.1:4433" {
		t.Errorf("network info %+v", ni)
	}
	if err := d.SetAddress("127.0.0.1:4433"); err != nil {
		t.Errorf("setting the same address again: %v", err)
	}
	if fi, err := os.Stat(d.Path("network.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("network.json: %v %v, want mode 0600", fi.Mode(), err)
	}
}

func TestWriteFiles(t *testing.T) {
	d := Dir(t.TempDir())
	if err := WriteSecret(d.Path("s"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := WriteSecret(d.Path("s"), []byte("2")); err == nil {
		t.Error("WriteSecret overwrote a file")
	}
	if b, err := d.SecretFile("s"); err != nil || string(b) != "1" {
		t.Errorf("secret file %q %v", b, err)
	}
	for _, v := range []string{"a", "b"} {
		if err := WritePublic(d.Path("p"), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile(d.Path("p")); err != nil || string(b) != "b" {
		t.Errorf("public file %q %v", b, err)
	}
	if _, err := d.SecretFile("missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing secret file: %v", err)
	}
}

func TestOnlineKeys(t *testing.T) {
	d := Dir(t.TempDir())
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteSecret(d.RootPath("root.key"), nil); err == nil {
		t.Fatal("the root folder should not exist yet")
	}
	if err := os.MkdirAll(d.RootDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteSecret(d.RootPath("root.key"), []byte(hex.EncodeToString(root.Seed())+"\n")); err != nil {
		t.Fatal(err)
	}
	if got, err := d.RootKey(); err != nil || string(got.Public()) != string(root.Public()) {
		t.Fatalf("root key read back: %v", err)
	}
	if ok, err := d.HaveOnlineKey(CountersignRole); ok || err != nil {
		t.Fatalf("countersigning key before it was made: %v %v", ok, err)
	}
	for serial := uint64(1); serial <= 2; serial++ {
		c, err := d.CertifyOnlineKey(root, CountersignRole, OnlineKeyName("My Net!"), serial)
		if err != nil {
			t.Fatal(err)
		}
		k, got, err := d.CountersignKey()
		if err != nil || got.Serial != serial || string(k.Public()) != string(c.Key) {
			t.Fatalf("serial %d read back as %v: %v", serial, got, err)
		}
	}
	if ok, err := d.HaveOnlineKey(CountersignRole); !ok || err != nil {
		t.Errorf("countersigning key after it was made: %v %v", ok, err)
	}
	if _, err := d.CertifyOnlineKey(root, DirectoryRole, "n", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DirectorySigner(); err != nil {
		t.Errorf("directory signer: %v", err)
	}
	// A certificate filed under the other role is refused.
	cert, err := os.ReadFile(d.Path("directory.cert"))
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePublic(d.Path("countersign.cert"), cert); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.CountersignKey(); !errors.Is(err, identity.ErrWrongRole) {
		t.Errorf("a directory certificate as the countersigning key's: %v", err)
	}
	if got := OnlineKeyName("My Net!"); got != "my-net-" {
		t.Errorf("OnlineKeyName = %q", got)
	}
	if got := OnlineKeyName(""); got != "server" {
		t.Errorf("OnlineKeyName of nothing = %q", got)
	}
	if CountersignRole.KeyFile() != "countersign.key" {
		t.Errorf("KeyFile = %q", CountersignRole.KeyFile())
	}
}
