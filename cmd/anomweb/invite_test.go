package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"anom/client"
)

var testNetwork = client.Network{Address: "127.0.0.1:8443", CAFingerprint: [32]byte{1, 2, 3}, Root: bytes.Repeat([]byte{7}, 32), TLSServerName: "server.anom"}

func TestParseInvite(t *testing.T) {
	good := inviteString(testNetwork)
	n, err := parseInvite("  " + good + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if n.Address != testNetwork.Address || n.CAFingerprint != testNetwork.CAFingerprint || !bytes.Equal(n.Root, testNetwork.Root) || n.TLSServerName != "server.anom" {
		t.Fatalf("parsed %+v", n)
	}
	for _, bad := range []string{
		"", "https://h:1?ca=00&root=00", "anom://h?ca=00&root=00", "anom://u@h:1/?ca=00",
		strings.Replace(good, "ca=", "ca=00", 1), strings.Replace(good, "root=", "root=zz", 1),
		good + "&extra=1", good + "&name=again", good + "#frag", "anom://h:1/path?" + good[strings.Index(good, "?")+1:],
		"anom://" + strings.Repeat("h", maxInvite),
	} {
		if _, err := parseInvite(bad); !errors.Is(err, errBadInvite) {
			t.Errorf("parseInvite(%q) = %v, want errBadInvite", bad, err)
		}
	}
}

func FuzzParseInvite(f *testing.F) {
	f.Add(inviteString(testNetwork))
	f.Add("anom://[::1]:1?ca=00&root=00")
	f.Add("anom://%zz")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseInvite(s)
		if err != nil {
			return
		}
		again, err := parseInvite(inviteString(n))
		if err != nil {
			t.Fatalf("re-encoded invite of %q does not parse: %v", s, err)
		}
		if again.Address != n.Address || again.CAFingerprint != n.CAFingerprint || !bytes.Equal(again.Root, n.Root) || again.TLSServerName != n.TLSServerName {
			t.Fatalf("round trip of %q: %+v != %+v", s, again, n)
		}
	})
}
