package client

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"anom/identity"
)

var (
	inviteCA   = sha256.Sum256([]byte("ca"))
	inviteRoot = identity.RootPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public().(ed25519.PublicKey))
)

func sameNetwork(a, b Network) bool {
	return a.Address == b.Address && a.CAFingerprint == b.CAFingerprint && bytes.Equal(a.Root, b.Root) && a.TLSServerName == b.TLSServerName &&
		slices.Equal(a.Alternates, b.Alternates)
}

// TestParseInvite: an invite reads back into the Network it was made of;
// one with a part missing, malformed, unknown or repeated is refused, with
// an error that says which.
func TestParseInvite(t *testing.T) {
	n := Network{Address: "127.0.0.1:8443", CAFingerprint: inviteCA, Root: inviteRoot}
	good := n.Invite()
	caHex, rootHex := hex.EncodeToString(inviteCA[:]), hex.EncodeToString(inviteRoot)
	if want := "anom://127.0.0.1:8443?ca=" + caHex + "&root=" + rootHex; good != want {
		t.Fatalf("invite = %q, want %q", good, want)
	}
	named := Network{Address: "[::1]:8443", CAFingerprint: inviteCA, Root: inviteRoot, TLSServerName: "server.anom"}
	relayed := Network{Address: "relay1.example:443", CAFingerprint: inviteCA, Root: inviteRoot, TLSServerName: "server.anom",
		Alternates: []string{"relay2.example:443", "[2001:db8::1]:8443"}}
	ca, root := "ca="+caHex, "root="+rootHex
	tests := []struct {
		name, in string
		want     Network
		err      string
	}{
		{"good", good, n, ""},
		{"spaces and a slash", "  anom://chat.example:443/?" + ca + "&" + root + "\n", Network{Address: "chat.example:443", CAFingerprint: inviteCA, Root: inviteRoot}, ""},
		{"tls name", named.Invite(), named, ""},
		{"upper-case hex", "anom://127.0.0.1:8443?ca=" + strings.ToUpper(caHex) + "&" + root, n, ""},
		{"empty", "", Network{}, "want an anom://"},
		{"https", "https://127.0.0.1:8443?" + ca + "&" + root, Network{}, "want an anom://"},
		{"no port", "anom://127.0.0.1?" + ca + "&" + root, Network{}, "want host:port"},
		{"no host", "anom://:8443?" + ca + "&" + root, Network{}, "want host:port"},
		{"no ca", "anom://127.0.0.1:8443?" + root, Network{}, "invite: ca:"},
		{"short ca", "anom://127.0.0.1:8443?ca=abcd&" + root, Network{}, "invite: ca:"},
		{"no root", "anom://127.0.0.1:8443?" + ca, Network{}, "invite: root:"},
		{"bad root", "anom://127.0.0.1:8443?" + ca + "&root=" + strings.Repeat("zz", 32), Network{}, "invite: root:"},
		{"long root", "anom://127.0.0.1:8443?" + ca + "&" + root + "00", Network{}, "invite: root:"},
		{"two roots", good + "&" + root, Network{}, `"root" given 2 times`},
		{"unknown field", good + "&x=1", Network{}, `unknown field "x"`},
		{"bad query", good + "&%zz", Network{}, "invite:"},
		{"user", "anom://me@127.0.0.1:8443?" + ca + "&" + root, Network{}, "unexpected parts"},
		{"path", "anom://127.0.0.1:8443/x?" + ca + "&" + root, Network{}, "unexpected parts"},
		{"opaque", "anom:127.0.0.1:8443?" + ca + "&" + root, Network{}, "unexpected parts"},
		{"fragment", good + "#x", Network{}, "unexpected parts"},
		{"alternates", relayed.Invite(), relayed, ""},
		{"old invite without alt", "anom://relay1.example:443?" + ca + "&" + root, Network{Address: "relay1.example:443", CAFingerprint: inviteCA, Root: inviteRoot}, ""},
		{"empty alt", good + "&alt=", Network{}, "invite: alt: address"},
		{"alt without port", good + "&alt=relay2.example", Network{}, "want host:port"},
		{"alt with empty entry", good + "&alt=relay2.example:443,,relay3.example:443", Network{}, "want host:port"},
		{"alt repeats address", good + "&alt=127.0.0.1:8443", Network{}, "given twice"},
		{"alt repeated", good + "&alt=a:1,a:1", Network{}, "given twice"},
		{"two alt fields", good + "&alt=a:1&alt=b:1", Network{}, `"alt" given 2 times`},
		{"too many alternates", good + "&alt=a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1", Network{}, "at most 7"},
		{"too long", good + "&name=" + strings.Repeat("a", MaxInviteLen), Network{}, "longer than"},
	}
	for _, tt := range tests {
		got, err := ParseInvite(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: ParseInvite error %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !sameNetwork(got, tt.want) {
			t.Errorf("%s: ParseInvite = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// FuzzParseInvite: ParseInvite never panics, and what it accepts makes an
// invite that parses to the same network.
func FuzzParseInvite(f *testing.F) {
	f.Add(Network{Address: "127.0.0.1:8443", CAFingerprint: inviteCA, Root: inviteRoot}.Invite())
	f.Add(Network{Address: "[::1]:1", CAFingerprint: inviteCA, Root: inviteRoot, TLSServerName: "server.anom"}.Invite())
	f.Add("anom://[fe80::1%25en0]:1?ca=" + strings.Repeat("00", 32) + "&root=" + strings.Repeat("00", 32) + "&name=a%20b")
	f.Add(Network{Address: "r1:443", CAFingerprint: inviteCA, Root: inviteRoot, Alternates: []string{"r2:443", "[::1]:1"}}.Invite())
	f.Add("anom://h:1?ca=00&root=00&alt=a:1,,b:2")
	f.Add("anom://h:1?ca=00&root=00")
	f.Add("anom://%zz")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseInvite(s)
		if err != nil {
			return
		}
		again, err := ParseInvite(n.Invite())
		if err != nil {
			t.Fatalf("re-made invite %q of %q does not parse: %v", n.Invite(), s, err)
		}
		if !sameNetwork(again, n) {
			t.Fatalf("round trip of %q: %+v != %+v", s, again, n)
		}
	})
}
