package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"anom/identity"
)

// TestAttackActivationWrongNetworkSpendsNothing: an invite with a wrong
// root key (or a wrong CA fingerprint) fails before the activation code is
// sent: the code and the username stay free (the right invite activates
// with them afterwards), and no half-made home folder is left.
func TestAttackActivationWrongNetworkSpendsNothing(t *testing.T) {
	n := newAdminNet(t)
	n.admin(t, "distributor", "add", "shop", "--quota", "1")
	codes, _ := n.admin(t, "codes", "issue", "--distributor", "shop", "--count", "1")
	dir := t.TempDir()
	codeFile := filepath.Join(dir, "code")
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(codeFile, []byte(strings.TrimSpace(codes)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pinFile, []byte("314159\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ni, err := dataDir(n.data).Info()
	if err != nil {
		t.Fatal(err)
	}
	right := mustInvite(t, n.addr, ni, "")
	other, _ := identity.GenerateRootKey(rand.Reader)
	wrongRoot := strings.Replace(right, "root="+ni.RootPublicKey, "root="+hex.EncodeToString(other.Public()), 1)
	wrongCA := strings.Replace(right, "ca="+ni.CAFingerprint, "ca="+strings.Repeat("ab", 32), 1)
	if wrongRoot == right || wrongCA == right {
		t.Fatalf("invite %s has no root= or ca= to change", right)
	}
	home := filepath.Join(dir, "alice")
	chatArgs := func(invite string) []string {
		return []string{"chat", "--home", home, "--invite", invite, "--code-file", codeFile, "--username", "alice", "--pin-file", pinFile}
	}
	for _, c := range []struct{ name, invite, want string }{
		{"wrong root key", wrongRoot, "root key"},
		{"wrong CA", wrongCA, "CA fingerprint"},
	} {
		stdout, stderr, code := anomInput(t, "/quit\n", chatArgs(c.invite)...)
		if code == 0 || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "the code was not sent") {
			t.Fatalf("%s: exit %d\n%s%s", c.name, code, stdout, stderr)
		}
		if _, err := os.Stat(home); !os.IsNotExist(err) {
			t.Fatalf("%s: the home folder is left: %v", c.name, err)
		}
	}
	// An empty folder made beforehand is left empty.
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, code := anomInput(t, "/quit\n", chatArgs(wrongRoot)...); code == 0 {
		t.Fatal("wrong root key activated")
	}
	if ents, err := os.ReadDir(home); err != nil || len(ents) != 0 {
		t.Fatalf("the empty home folder holds %d files after a failed activation: %v", len(ents), err)
	}
	// The same code and username with the right invite.
	stdout, stderr, code := anomInput(t, "/quit\n", chatArgs(right)...)
	if code != 0 || !strings.Contains(stderr, "Activated: alice") {
		t.Fatalf("the right invite: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestActivationCodeOffTheCommandLine: the code can come from a file, so
// it is never in the process's arguments (what ps shows); given with
// --code, anom chat warns that ps shows it.
func TestActivationCodeOffTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	codeFile := filepath.Join(dir, "code")
	if err := os.WriteFile(codeFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := anomInput(t, "", "chat", "--home", filepath.Join(dir, "h"), "--code-file", codeFile)
	if code == 0 || !strings.Contains(stderr, "activation code file's first line is empty") {
		t.Fatalf("--code-file: exit %d\n%s", code, stderr)
	}
	_, stderr, _ = anomInput(t, "", "chat", "--home", filepath.Join(dir, "h"), "--code", "X")
	if !strings.Contains(stderr, "shows in the process list (ps)") {
		t.Fatalf("--code: no warning\n%s", stderr)
	}
}
