package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"anom/client"
	"anom/identity"
)

// TestAttackServerDataDirHoldsRoot: after the README's set-up (the first
// server run makes the network, escrow init, a distributor, codes, the
// server again), whoever reads the server's data directory finds no root
// key: not its seed (raw or hex), not the Ed25519 private key, not the TLS
// CA's private key, in any file (the store included). They are in the
// root folder beside it, which a real deployment keeps offline.
func TestAttackServerDataDirHoldsRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the anom binary")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "net")
	d := dataDir(data)
	addr := freeAddr(t)
	srv := startAnomServer(t, data, addr)
	srv.waitLog(t, "invite (in")
	// Admin commands go to the running server.
	runAnom(t, "admin", "distributor", "add", "shop", "--quota", "10", "--data", data)
	runAnom(t, "admin", "codes", "issue", "--distributor", "shop", "--count", "2", "--months", "12", "--data", data)
	srv.stop(t)
	runAnom(t, "admin", "escrow", "init", "--data", data, "--out", filepath.Join(dir, "escrow-keys"), "--custodians", "A,B,C", "--threshold", "2")
	srv = startAnomServer(t, data, addr)
	srv.waitLog(t, "invite (in")
	srv.stop(t)

	st, err := os.Stat(d.RootDir())
	if err != nil || st.Mode().Perm() != 0o700 || d.RootDir() != data+".root" {
		t.Fatalf("root folder %s: %v, mode %v", d.RootDir(), err, st.Mode())
	}
	root, err := d.RootKey()
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(d.RootPath("ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(caPEM)
	if blk == nil {
		t.Fatal("no PEM in the root folder's ca.key")
	}
	secrets := map[string][]byte{
		"root seed":              root.Seed(),
		"root seed (hex)":        []byte(hex.EncodeToString(root.Seed())),
		"root seed (HEX)":        []byte(strings.ToUpper(hex.EncodeToString(root.Seed()))),
		"root private key":       root.Signer(),
		"root private key (hex)": []byte(hex.EncodeToString(root.Signer())),
		"TLS CA private key":     blk.Bytes,
		"TLS CA private key PEM": bytes.TrimSpace(caPEM),
	}
	scan := func(top string) (found []string, files int) {
		err := filepath.WalkDir(top, func(path string, e fs.DirEntry, err error) error {
			if err != nil || !e.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			for what, s := range secrets {
				if bytes.Contains(b, s) {
					found = append(found, what+" in "+path)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return found, files
	}
	found, files := scan(data)
	if len(found) > 0 {
		t.Fatalf("the server's data directory holds the root's secrets:\n%s", strings.Join(found, "\n"))
	}
	if files < 10 {
		t.Fatalf("scanned only %d files in %s", files, data)
	}
	// The scan finds them where they are.
	if found, _ := scan(d.RootDir()); len(found) < 2 {
		t.Fatalf("the scan does not find the root's secrets in the root folder: %v", found)
	}
	t.Logf("scanned %d files in %s: no root key, no CA key", files, data)
}

// TestAttackStolenDirectoryKeyServedAfterRotation: `anom admin rotate --role directory`, then
// a server restart: a device activated under the old key connects and
// accepts the new chain (the new key's certificate logged, serial 2), and
// a device activated under the new key is verified by it. A server run
// with the old, stolen key afterwards (its certificate still within its
// validity) is refused by the device that saw the new key's tree head:
// TestAttackStolenDirectoryKeyAfterRotation from the client's seat.
func TestAttackStolenDirectoryKeyServedAfterRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the anom binary")
	}
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "net")
	d := dataDir(data)
	runAnom(t, "admin", "init", "--data", data)
	// The thief's copy of the directory key, before the rotation.
	stolen := map[string][]byte{}
	for _, f := range []string{"directory.key", "directory.cert"} {
		b, err := os.ReadFile(d.Path(f))
		if err != nil {
			t.Fatal(err)
		}
		stolen[f] = b
	}

	addr := freeAddr(t)
	srv := startAnomServer(t, data, addr)
	srv.waitLog(t, "invite (in")
	// Admin commands go to the running server.
	runAnom(t, "admin", "distributor", "add", "shop", "--quota", "10", "--data", data)
	var codes []string
	for _, f := range strings.Fields(runAnom(t, "admin", "codes", "issue", "--distributor", "shop", "--count", "2", "--months", "12", "--data", data)) {
		if _, err := identity.ParseActivationCode(f); err == nil {
			codes = append(codes, f)
		}
	}
	ni, err := d.Info()
	if err != nil {
		t.Fatal(err)
	}
	rootPub, err := readRootPublic(d.Path("root.pub"))
	if err != nil {
		t.Fatal(err)
	}
	network := client.Network{Address: addr, Root: rootPub}
	fp, _ := hex.DecodeString(ni.CAFingerprint)
	copy(network.CAFingerprint[:], fp)
	activate := func(name, code string) *client.Client {
		c, err := client.Create(client.Config{Dir: filepath.Join(dir, name), KDF: client.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, KeyPackages: 2}, "314159", "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Activate(ctx, network, code, name); err != nil {
			t.Fatalf("activating %s: %v", name, err)
		}
		return c
	}
	alice := activate("alice", codes[0])
	srv.stop(t)

	out := runAnom(t, "admin", "rotate", "--role", "directory", "--data", data)
	if !strings.Contains(out, "serial 2") {
		t.Fatalf("admin rotate said:\n%s", out)
	}
	if b, _ := os.ReadFile(d.Path("directory.key")); bytes.Equal(b, stolen["directory.key"]) {
		t.Fatal("rotate kept the directory key")
	}
	srv = startAnomServer(t, data, addr)
	srv.waitLog(t, "serial=2")
	connect := func(c *client.Client) error {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		var err error
		for range 50 {
			if err = c.Connect(cctx); err == nil || errors.Is(err, identity.ErrRolledBack) {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
		return err
	}
	if err := connect(alice); err != nil {
		t.Fatalf("alice (certified under the old key) after the rotation: %v", err)
	}
	bob := activate("bob", codes[1])
	devs, err := alice.Devices(ctx, "bob")
	if err != nil || len(devs) != 1 || devs[0].Signer.Serial != 2 {
		t.Fatalf("alice looking up bob, certified under the new key: %v, %v", devs, err)
	}
	if _, err := bob.Devices(ctx, "alice"); err != nil {
		t.Fatalf("bob looking up alice, certified under the old key: %v", err)
	}
	srv.stop(t)

	// The thief runs the server with the old key.
	for f, b := range stolen {
		if err := os.WriteFile(d.Path(f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv = startAnomServer(t, data, addr)
	srv.waitLog(t, "invite (in")
	if err := connect(alice); !errors.Is(err, identity.ErrRolledBack) {
		t.Fatalf("alice connecting to a server signing with the retired directory key: %v, want ErrRolledBack", err)
	}
}

// TestAdminRotateCountersignKey: the escrow countersigning key rotates the
// same way; the server logs the new certificate at its next start and
// countersigns under NAME/2.
func TestAdminRotateCountersignKey(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the anom binary")
	}
	data := filepath.Join(t.TempDir(), "net")
	d := dataDir(data)
	runAnom(t, "admin", "init", "--data", data)
	runAnom(t, "admin", "escrow", "init", "--data", data, "--out", filepath.Join(t.TempDir(), "escrow-keys"), "--custodians", "A,B,C", "--threshold", "2")
	_, before, err := d.CountersignKey()
	if err != nil {
		t.Fatal(err)
	}
	if out := runAnom(t, "admin", "rotate", "--role", "countersign", "--data", data); !strings.Contains(out, "serial 2") {
		t.Fatalf("admin rotate said:\n%s", out)
	}
	_, after, err := d.CountersignKey()
	if err != nil || after.Serial != 2 || bytes.Equal(after.Key, before.Key) || after.Role != identity.RoleCountersign {
		t.Fatalf("after the rotation: %+v, %v", after, err)
	}
	if got := strings.TrimSpace(runAnom(t, "admin", "escrow", "server-key", "--data", data)); !strings.HasPrefix(got, "anom/2=") {
		t.Fatalf("escrow server-key: %q", got)
	}
	srv := startAnomServer(t, data, freeAddr(t))
	srv.waitLog(t, "role=escrow-countersign serial=2")
	srv.waitLog(t, "countersigning key anom/2=")
	cmd := exec.Command(buildAnom(t), "admin", "rotate", "--role", "root", "--data", data)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("rotate --role root: %s", out)
	}
}
