package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"anom/client"
	"anom/identity"
)

var (
	testCA   = sha256.Sum256([]byte("ca"))
	testRoot = identity.RootPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public().(ed25519.PublicKey))
	testInfo = networkInfo{CAFingerprint: hex.EncodeToString(testCA[:]), RootPublicKey: hex.EncodeToString(testRoot)}
)

// TestInvite: the invite of a network.json is the client's invite of its
// network; a network.json with a malformed fingerprint or root key makes
// none. (client.ParseInvite has its own tests and fuzz target.)
func TestInvite(t *testing.T) {
	good := mustInvite(t, "127.0.0.1:8443", testInfo, "")
	if want := "anom://127.0.0.1:8443?ca=" + testInfo.CAFingerprint + "&root=" + testInfo.RootPublicKey; good != want {
		t.Fatalf("invite = %q, want %q", good, want)
	}
	n, err := client.ParseInvite(mustInvite(t, "[::1]:8443", testInfo, "server.anom"))
	if err != nil {
		t.Fatal(err)
	}
	if n.Address != "[::1]:8443" || n.CAFingerprint != testCA || !bytes.Equal(n.Root, testRoot) || n.TLSServerName != "server.anom" {
		t.Errorf("invite reads back as %+v", n)
	}
	for _, bad := range []networkInfo{
		{CAFingerprint: "abcd", RootPublicKey: testInfo.RootPublicKey},
		{CAFingerprint: testInfo.CAFingerprint, RootPublicKey: strings.Repeat("zz", 32)},
		{CAFingerprint: testInfo.CAFingerprint},
	} {
		if inv, err := inviteString("127.0.0.1:8443", bad, ""); err == nil || !strings.Contains(err.Error(), "network.json") {
			t.Errorf("network %+v: invite %q, error %v", bad, inv, err)
		}
	}
}

// mustInvite is the invite of network ni at addr.
func mustInvite(t testing.TB, addr string, ni networkInfo, tlsName string) string {
	t.Helper()
	inv, err := inviteString(addr, ni, tlsName)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestNetworkFromFlags(t *testing.T) {
	inv := mustInvite(t, "127.0.0.1:8443", testInfo, "")
	other := sha256.Sum256([]byte("other ca"))
	tests := []struct {
		name     string
		f        chatFlags
		addr, nm string
		ca       [32]byte
		err      string
	}{
		{"invite", chatFlags{invite: inv}, "127.0.0.1:8443", "", testCA, ""},
		{"invite, another address", chatFlags{invite: inv, server: "relay.example:443", tlsNm: "localhost"}, "relay.example:443", "localhost", testCA, ""},
		{"invite, another CA", chatFlags{invite: inv, caFingerprint: hex.EncodeToString(other[:])}, "127.0.0.1:8443", "", other, ""},
		{"parts", chatFlags{server: "10.0.0.1:1", caFingerprint: testInfo.CAFingerprint, root: testInfo.RootPublicKey}, "10.0.0.1:1", "", testCA, ""},
		{"parts without root", chatFlags{server: "10.0.0.1:1", caFingerprint: testInfo.CAFingerprint}, "", "", testCA, "root key:"},
		{"bad invite", chatFlags{invite: "anom://x"}, "", "", testCA, "want host:port"},
		{"invite, bad root", chatFlags{invite: inv, root: "00"}, "", "", testCA, "root key:"},
	}
	for _, tt := range tests {
		n, err := networkFromFlags(&tt.f)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if n.Address != tt.addr || n.TLSServerName != tt.nm || n.CAFingerprint != tt.ca || !bytes.Equal(n.Root, testRoot) {
			t.Errorf("%s: network %+v", tt.name, n)
		}
	}
}

// TestServerMakesNetwork: anom server on a new directory makes a network
// (as admin init), puts the root public key in network.json and writes an
// invite that holds the server's address, the CA fingerprint and the root
// key; on a directory that holds other files and no network it refuses.
func TestServerMakesNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the anom binary")
	}
	data := filepath.Join(t.TempDir(), "net")
	addr := freeAddr(t)
	srv := startAnomServer(t, data, addr)
	srv.waitLog(t, "invite (in ")
	srv.stop(t)
	log, err := os.ReadFile(srv.log)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"no network in " + data + " yet: making one", "network \"anom\" made in " + data, "anom admin codes issue --distributor shop"} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("server output lacks %q:\n%s", want, log)
		}
	}
	d := dataDir(data)
	pub, err := os.ReadFile(d.Path("root.pub"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(d.Path("network.json"))
	if err != nil || !bytes.Contains(b, []byte(`"root_public_key": "`+strings.TrimSpace(string(pub))+`"`)) {
		t.Fatalf("network.json lacks the root public key %s: %v\n%s", pub, err, b)
	}
	ni, err := d.Info()
	if err != nil {
		t.Fatal(err)
	}
	inv, err := os.ReadFile(d.Path("invite"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(log, bytes.TrimSpace(inv)) {
		t.Errorf("the server did not print its invite %s", inv)
	}
	n, err := client.ParseInvite(string(inv))
	if err != nil {
		t.Fatal(err)
	}
	if n.Address != addr || hex.EncodeToString(n.CAFingerprint[:]) != ni.CAFingerprint || hex.EncodeToString(n.Root) != strings.TrimSpace(string(pub)) {
		t.Fatalf("invite %s does not match the network %+v at %s", inv, ni, addr)
	}
	if got := strings.TrimSpace(runAnom(t, "admin", "invite", "--data", data, "--server", "relay.example:443")); got != mustInvite(t, "relay.example:443", ni, "") {
		t.Errorf("admin invite --server printed %q", got)
	}
	// Relays in front of the server: the first is the address, the
	// others the alternates the device fails over to.
	got := strings.TrimSpace(runAnom(t, "admin", "invite", "--data", data, "--relays", "relay1.example:443, relay2.example:443"))
	if rn, err := client.ParseInvite(got); err != nil || rn.Address != "relay1.example:443" || len(rn.Alternates) != 1 || rn.Alternates[0] != "relay2.example:443" || rn.CAFingerprint != n.CAFingerprint {
		t.Errorf("admin invite --relays printed %q (%+v, %v)", got, rn, err)
	}
	if got := strings.TrimSpace(runAnom(t, "admin", "invite", "--data", data)); got != strings.TrimSpace(string(inv)) {
		t.Errorf("admin invite printed %q, want the server's %s", got, inv)
	}

	// A second start keeps the network.
	srv = startAnomServer(t, data, addr)
	srv.waitLog(t, "invite (in ")
	srv.stop(t)
	if log, _ := os.ReadFile(srv.log); bytes.Contains(log, []byte("making one")) {
		t.Fatalf("the second start made a network again:\n%s", log)
	}
	if ni2, err := d.Info(); err != nil || !reflect.DeepEqual(ni2, ni) {
		t.Fatalf("network changed: %+v, %v", ni2, err)
	}

	// Not a network, not empty: refused, and nothing written.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "notes"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(buildAnom(t), "server", "--data", other, "--listen", addr)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is not empty but holds no network") {
		t.Fatalf("anom server on a non-empty directory: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(other, "network.json")); !os.IsNotExist(err) {
		t.Fatalf("a network was made in a non-empty directory: %v", err)
	}
}
