package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"anom/internal/identity"
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
