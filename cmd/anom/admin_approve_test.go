package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"anom/client"
	"anom/identity"
)

// anomInput runs the anom binary with stdin and returns its stdout, stderr
// and exit code.
func anomInput(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(buildAnom(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
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

// TestAttackAdminApproveShowsFingerprintFirst: anom admin approve shows the
// new device's fingerprint and approves only once the administrator
// confirms it (y on the terminal, or --fingerprint matching); a "no", no
// answer or another fingerprint approves nothing.
func TestAttackAdminApproveShowsFingerprintFirst(t *testing.T) {
	n := newAdminNet(t)
	n.admin(t, "distributor", "add", "shop", "--quota", "1")
	codes, _ := n.admin(t, "codes", "issue", "--distributor", "shop", "--count", "1")
	n.activate(t, "alice", strings.TrimSpace(codes))
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	req, err := identity.NewPairingRequest("alice", pub, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	approve := func(stdin string, extra ...string) (string, int) {
		t.Helper()
		stdout, stderr, code := anomInput(t, stdin, append([]string{"admin", "approve", req.Code(), "--data", n.data}, extra...)...)
		return stdout + stderr, code
	}
	for _, c := range []struct {
		name, stdin string
		extra       []string
	}{
		{"answered no", "n\n", nil},
		{"no answer", "", nil},
		{"another fingerprint", "", []string{"--fingerprint", "00000 00000 00000 00000 00000 00000"}},
	} {
		out, code := approve(c.stdin, c.extra...)
		if code == 0 || strings.Contains(out, "alice approved") {
			t.Fatalf("%s: exit %d, approved:\n%s", c.name, code, out)
		}
		if c.extra == nil && !strings.Contains(out, req.Fingerprint()) {
			t.Fatalf("%s: the fingerprint was not shown:\n%s", c.name, out)
		}
	}
	out, code := approve("y\n")
	if code != 0 || !strings.Contains(out, "a new device of alice approved") {
		t.Fatalf("confirmed: exit %d\n%s", code, out)
	}
	if i, j := strings.Index(out, req.Fingerprint()), strings.Index(out, "alice approved"); i < 0 || i > j {
		t.Fatalf("the fingerprint was not shown before the approval:\n%s", out)
	}
	// Non-interactive: the fingerprint on the command line, spaces optional.
	out, code = approve("", "--fingerprint", strings.ReplaceAll(req.Fingerprint(), " ", ""))
	if code != 0 || !strings.Contains(out, "alice approved") {
		t.Fatalf("--fingerprint: exit %d\n%s", code, out)
	}
}

// anom admin approve takes the short code a new device shows: it fetches
// the request from the server, shows its fingerprint and approves it; the
// new device then activates. An unknown short code approves nothing.
func TestAdminApproveShortCode(t *testing.T) {
	n := newAdminNet(t)
	n.admin(t, "distributor", "add", "shop", "--quota", "2")
	codes, _ := n.admin(t, "codes", "issue", "--distributor", "shop", "--count", "2")
	cs := strings.Fields(codes)
	n.activate(t, "alice", cs[0])

	d := dataDir(n.data)
	ni, err := d.Info()
	if err != nil {
		t.Fatal(err)
	}
	inv, err := clientNetwork(ni, n.addr, "")
	if err != nil {
		t.Fatal(err)
	}
	nd, err := client.Create(client.Config{Dir: filepath.Join(t.TempDir(), "alice2"), KDF: client.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, KeyPackages: 1}, "314159", "")
	if err != nil {
		t.Fatal(err)
	}
	defer nd.Close()
	ctx := context.Background()
	p, err := nd.PublishPairing(ctx, inv, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, out, code := anomInput(t, "", "admin", "approve", "0000-0000-00", "--fingerprint", p.Request.Fingerprint(), "--data", n.data); code == 0 {
		t.Fatalf("an unknown short code: exit 0\n%s", out)
	} else {
		t.Logf("an unknown short code: %s", strings.TrimSpace(out))
	}
	stdout, stderr, code := anomInput(t, "y\n", "admin", "approve", strings.ToLower(p.Code), "--data", n.data)
	out := stdout + stderr
	if code != 0 || !strings.Contains(out, "a new device of alice approved") {
		t.Fatalf("approving the short code: exit %d\n%s", code, out)
	}
	if i, j := strings.Index(out, p.Request.Fingerprint()), strings.Index(out, "alice approved"); i < 0 || i > j {
		t.Fatalf("the fingerprint was not shown before the approval:\n%s", out)
	}
	if err := nd.Activate(ctx, inv, cs[1], "alice"); err != nil {
		t.Fatalf("activating the device approved by short code: %v", err)
	}
}
