package main

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestServerStoreHeldByAnother: a second server on the same data directory
// says another server holds the store, not "resource temporarily
// unavailable".
func TestServerStoreHeldByAnother(t *testing.T) {
	n := newAdminNet(t)
	stdout, stderr, code := anomResult(t, "server", "--data", n.data, "--listen", freeAddr(t), "--metrics-listen", "off")
	out := stdout + stderr
	if code == 0 || !strings.Contains(out, "another server holds "+filepath.Join(n.data, "store")) || strings.Contains(out, "resource temporarily unavailable") {
		t.Fatalf("second server: exit %d\n%s", code, out)
	}
}

// TestServerListenCheckedBeforeNetwork: with its listen address taken, anom
// server fails before it makes a network in a new data directory.
func TestServerListenCheckedBeforeNetwork(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	data := filepath.Join(t.TempDir(), "net")
	stdout, stderr, code := anomResult(t, "server", "--data", data, "--listen", l.Addr().String(), "--metrics-listen", "off")
	if code == 0 || !strings.Contains(stderr, l.Addr().String()) {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	for _, p := range []string{data, data + ".root", data + ".admin"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s made although the server could not listen: %v", p, err)
		}
	}
}

// TestRootKeyOneName: admin init, the server's start-up line and the invite
// name the root by one value, its public key, under one name.
func TestRootKeyOneName(t *testing.T) {
	data := filepath.Join(t.TempDir(), "net")
	initOut := runAnom(t, "admin", "init", "--data", data)
	srv := startAnomServer(t, data, freeAddr(t))
	srv.waitLog(t, "invite (in ")
	logb, _ := os.ReadFile(srv.log)
	all := initOut + string(logb)
	re := regexp.MustCompile(`(?i)root[a-z ]*[=: ]\s*([0-9a-f]{64})`)
	seen := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(all, -1) {
		seen[m[1]] = true
	}
	if len(seen) != 1 {
		t.Fatalf("the root goes by %d values:\n%s", len(seen), all)
	}
	if strings.Contains(all, "root fingerprint") {
		t.Fatalf("a root fingerprint beside the root key:\n%s", all)
	}
}

// TestCodesIssueLabels: codes issue says how long the subscription each
// code carries lasts and by when it must be redeemed, each labelled.
func TestCodesIssueLabels(t *testing.T) {
	n := newAdminNet(t)
	n.admin(t, "distributor", "add", "shop", "--quota", "1")
	_, stderr := n.admin(t, "codes", "issue", "--distributor", "shop", "--count", "1", "--months", "12", "--valid", "240h")
	if !regexp.MustCompile(`subscription: 12 months`).MatchString(stderr) || !regexp.MustCompile(`redeem by: \d{4}-\d\d-\d\d`).MatchString(stderr) {
		t.Fatalf("codes issue printed %q", stderr)
	}
}

// TestServerNATSFlags: the NATS flags fail clearly when they cannot work,
// and a server on NATS never makes a network of its own on the fly (each
// of several servers would make another one).
func TestServerNATSFlags(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "net")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--nats-creds", "x.creds"}, "need --nats"},
		{[]string{"--nats", "nats://127.0.0.1:1", "--nats-cert", "c.pem"}, "--nats-cert and --nats-key go together"},
		{[]string{"--nats", " , "}, "--nats: no URL given"},
		{[]string{"--nats", "nats://127.0.0.1:1"}, "holds no network: with --nats, make it first"},
	} {
		args := append([]string{"server", "--data", empty, "--listen", freeAddr(t), "--metrics-listen", "off"}, c.args...)
		stdout, stderr, code := anomResult(t, args...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("anom %s: exit %d, want %q\n%s%s", strings.Join(args, " "), code, c.want, stdout, stderr)
		}
		if _, err := os.Stat(filepath.Join(empty, "network.json")); !os.IsNotExist(err) {
			t.Fatalf("anom %s made a network: %v", strings.Join(args, " "), err)
		}
	}
	// Servers on NATS share one archive token: one whose copy of the
	// directory lacks it refuses to make its own, before it connects.
	data := filepath.Join(t.TempDir(), "net")
	if _, stderr, code := anomResult(t, "admin", "init", "--data", data); code != 0 {
		t.Fatalf("admin init: %s", stderr)
	}
	if err := os.Remove(filepath.Join(data, "archive.token")); err != nil {
		t.Fatalf("admin init made no archive token: %v", err)
	}
	args := []string{"server", "--data", data, "--listen", freeAddr(t), "--metrics-listen", "off", "--nats", "nats://127.0.0.1:1"}
	stdout, stderr, code := anomResult(t, args...)
	if code == 0 || !strings.Contains(stderr, "archive.token is missing: the servers sharing NATS need one archive token") {
		t.Errorf("anom %s: exit %d, want a missing archive token\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(data, "archive.token")); !os.IsNotExist(err) {
		t.Errorf("a server on NATS made an archive token of its own: %v", err)
	}
}
