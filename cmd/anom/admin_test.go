package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"anom/client"
	"anom/identity"
)

// anomResult runs the anom binary and returns its stdout, stderr and exit
// code.
func anomResult(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(buildAnom(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	t.Fatalf("running anom %s: %v", strings.Join(args, " "), err)
	return "", "", 0
}

// adminNet is a network made by anom admin init with its server running.
type adminNet struct {
	data string
	addr string
	srv  *anomServer
}

func newAdminNet(t *testing.T) *adminNet {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the anom binary")
	}
	n := &adminNet{data: filepath.Join(t.TempDir(), "net"), addr: freeAddr(t)}
	runAnom(t, "admin", "init", "--data", n.data)
	n.srv = startAnomServer(t, n.data, n.addr)
	n.srv.waitLog(t, "invite (in ")
	return n
}

// admin runs anom admin VERB ARGS --data DATA and requires success.
func (n *adminNet) admin(t *testing.T, args ...string) (string, string) {
	t.Helper()
	stdout, stderr, code := anomResult(t, append(append([]string{"admin"}, args...), "--data", n.data)...)
	if code != 0 {
		t.Fatalf("anom admin %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout, stderr
}

// activate makes a device of username with code against the running
// server.
func (n *adminNet) activate(t *testing.T, username, code string) *client.Client {
	t.Helper()
	d := dataDir(n.data)
	ni, err := d.Info()
	if err != nil {
		t.Fatal(err)
	}
	inv, err := clientNetwork(ni, n.addr, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Create(client.Config{Dir: filepath.Join(t.TempDir(), username), KDF: client.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, KeyPackages: 1}, "314159", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Activate(context.Background(), inv, code, username); err != nil {
		t.Fatalf("activating %s: %v", username, err)
	}
	return c
}

// TestAdminCommands: anom admin init puts the admin key beside the data
// directory, not in it; every admin verb reaches the running server and
// prints the server's answer.
func TestAdminCommands(t *testing.T) {
	n := newAdminNet(t)
	d := dataDir(n.data)
	adm := d.AdminDir()
	if fi, err := os.Stat(adm); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("admin folder %s: %v, %v", adm, fi, err)
	}
	for _, f := range []string{adminKeyFile, adminCertFile} {
		if fi, err := os.Stat(filepath.Join(adm, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v", f, fi, err)
		}
	}

	out, _ := n.admin(t, "distributor", "add", "shop", "--quota", "3")
	if !strings.Contains(out, `distributor "shop" certified with a quota of 3 codes (0 issued so far)`) {
		t.Fatalf("distributor add printed %q", out)
	}
	codes, stderr := n.admin(t, "codes", "issue", "--distributor", "shop", "--count", "2", "--months", "12")
	if !strings.Contains(stderr, `2 activation codes of "shop" imported (2 of 3 issued)`) || len(strings.Fields(codes)) != 2 {
		t.Fatalf("codes issue printed %q / %q", codes, stderr)
	}
	// The distributor's key is in the admin folder, not the data dir.
	if _, err := os.Stat(filepath.Join(adm, "distributors", "shop.key")); err != nil {
		t.Fatal(err)
	}
	// Nothing that acts on the server is in its data directory.
	filepath.Walk(n.data, func(p string, fi os.FileInfo, err error) error {
		if err == nil && (fi.Name() == adminKeyFile || fi.Name() == "shop.key" || fi.Name() == "spool" || fi.Name() == "distributors") {
			t.Errorf("%s in the server's data directory", p)
		}
		return nil
	})
	// A new certificate keeps the count the server has.
	if out, _ := n.admin(t, "distributor", "add", "shop", "--quota", "5"); !strings.Contains(out, "quota of 5 codes (2 issued so far)") {
		t.Fatalf("distributor add again printed %q", out)
	}

	cs := strings.Fields(codes)
	alice := n.activate(t, "alice", cs[0])
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	req, err := identity.NewPairingRequest("alice", pub, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	out, _ = n.admin(t, "approve", req.Code(), "--fingerprint", req.Fingerprint())
	if !strings.Contains(out, "a new device of alice approved") || !strings.Contains(out, req.Fingerprint()) {
		t.Fatalf("approve printed %q", out)
	}
	bob := n.activate(t, "bob", cs[1])
	bid, err := bob.Identity()
	if err != nil {
		t.Fatal(err)
	}
	dev := bid.DeviceID.String()
	if out, _ := n.admin(t, "revoke", dev, "--reason", "test"); !strings.Contains(out, "device "+dev+" revoked") {
		t.Fatalf("revoke printed %q", out)
	}
	if out, _ := n.admin(t, "revoke", dev); !strings.Contains(out, "was revoked already") {
		t.Fatalf("revoke again printed %q", out)
	}
	aid, err := alice.Identity()
	if err != nil {
		t.Fatal(err)
	}
	dev = aid.DeviceID.String()
	if out, _ := n.admin(t, "wipe", dev, "--reason", "test wipe"); !strings.Contains(out, "wipe command for device "+dev+" recorded") {
		t.Fatalf("wipe printed %q", out)
	}
	n.srv.waitLog(t, "reason=test")
	// The lists: alice's device confirmed the wipe, bob is revoked.
	n.srv.waitLog(t, "wipe confirmed")
	out, _ = n.admin(t, "devices")
	for _, want := range []string{aid.DeviceID.String() + "  alice  wiped", bid.DeviceID.String() + "  bob    revoked"} {
		if !strings.Contains(out, want) {
			t.Fatalf("admin devices: no %q in\n%s", want, out)
		}
	}
	out, _ = n.admin(t, "users")
	for _, want := range []string{"alice  wiped    1", "bob    revoked  1"} {
		if !strings.Contains(out, want) {
			t.Fatalf("admin users: no %q in\n%s", want, out)
		}
	}
	if out, _ := n.admin(t, "alerts"); out != "no alerts\n" {
		t.Fatalf("alerts printed %q", out)
	}
}

// TestAttackAdminRefusalReported: when the server refuses, anom admin
// says so with the server's reason and exits non-zero; it never claims the
// request was handed over, and codes the server refused are not printed.
func TestAttackAdminRefusalReported(t *testing.T) {
	n := newAdminNet(t)
	n.admin(t, "distributor", "add", "shop", "--quota", "2")
	refused := func(wantCode string, args ...string) string {
		t.Helper()
		stdout, stderr, code := anomResult(t, append(append([]string{"admin"}, args...), "--data", n.data)...)
		if code == 0 || !strings.Contains(stderr, "the server refused") || !strings.Contains(stderr, wantCode) {
			t.Fatalf("anom admin %s: exit %d, stdout %q, stderr %q; want a refusal with %s", strings.Join(args, " "), code, stdout, stderr, wantCode)
		}
		return stdout
	}
	// An unknown device.
	if out := refused("ERROR_CODE_NOT_FOUND", "revoke", "00112233445566778899aabbccddeeff"); out != "" {
		t.Fatalf("a refused revocation printed %q", out)
	}
	refused("ERROR_CODE_NOT_FOUND", "wipe", "00112233445566778899aabbccddeeff")
	// Over the quota: no codes printed.
	if out := refused("ERROR_CODE_LIMIT_EXCEEDED", "codes", "issue", "--distributor", "shop", "--count", "3"); strings.TrimSpace(out) != "" {
		t.Fatalf("codes the server refused were printed: %q", out)
	}
	// A pairing request for a user who does not exist.
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	req, _ := identity.NewPairingRequest("nobody", pub, rand.Reader)
	refused("ERROR_CODE_NOT_FOUND", "approve", req.Code(), "--fingerprint", req.Fingerprint())
	// An admin key of another network (its root is not this server's).
	other := filepath.Join(t.TempDir(), "other")
	runAnom(t, "admin", "init", "--data", other)
	refused("ERROR_CODE_AUTH_FAILED", "revoke", "00112233445566778899aabbccddeeff", "--admin-key", dataDir(other).AdminDir())

	// A lost admin key: kept by a thief, replaced by anom admin adminkey;
	// once the new key has been used, the old one is refused.
	d := dataDir(n.data)
	lost := filepath.Join(t.TempDir(), "lost.admin")
	if err := os.CopyFS(lost, os.DirFS(d.AdminDir())); err != nil {
		t.Fatal(err)
	}
	n.admin(t, "adminkey")
	n.admin(t, "distributor", "add", "kiosk", "--quota", "1")
	refused("ERROR_CODE_AUTH_FAILED", "distributor", "add", "thief", "--admin-key", lost)

	// No server running: an error, not a claim of success.
	n.srv.stop(t)
	stdout, stderr, code := anomResult(t, "admin", "revoke", "00112233445566778899aabbccddeeff", "--data", n.data)
	if code == 0 || stdout != "" || !strings.Contains(stderr, "is the server running") {
		t.Fatalf("with no server: exit %d, %q, %q", code, stdout, stderr)
	}
}

func TestAdminDirOutsideData(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ data, want string }{
		{"net", "net.admin"},
		{"net/", "net.admin"},
		{"/srv/anom/net", "/srv/anom/net.admin"},
		{".", wd + ".admin"},
	} {
		if got := dataDir(tc.data).AdminDir(); got != tc.want {
			t.Errorf("adminDir(%q) = %q, want %q", tc.data, got, tc.want)
		}
		if err := refuseInside(dataDir(tc.data).AdminDir(), tc.data); err != nil {
			t.Errorf("adminDir(%q): %v", tc.data, err)
		}
		// The root folder follows the same rule (".root" beside "." would
		// be inside it).
		if got, want := dataDir(tc.data).RootDir(), strings.TrimSuffix(tc.want, ".admin")+".root"; got != want {
			t.Errorf("rootDir(%q) = %q, want %q", tc.data, got, want)
		}
		if err := refuseInside(dataDir(tc.data).RootDir(), tc.data); err != nil {
			t.Errorf("rootDir(%q): %v", tc.data, err)
		}
	}
	if err := refuseInside("net/keys", "net"); err == nil {
		t.Error("a folder inside the data directory accepted")
	}
	if err := refuseInside("..net.admin", "."); err == nil {
		t.Error("a folder inside the data directory accepted")
	}
}
