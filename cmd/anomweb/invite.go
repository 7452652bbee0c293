package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"anom/client"
	"anom/internal/identity"
)

// This is a copy of cmd/anom's invite parser (parseInvite in
// cmd/anom/invite.go), until the client library has it (client.ParseInvite):
// the two must read the same invites.
//
//	anom://HOST:PORT?ca=SHA256-OF-CA-HEX&root=ROOT-PUBLIC-KEY-HEX[&name=TLS-NAME]

const (
	inviteScheme = "anom"
	maxInvite    = 1024
)

// errBadInvite is returned for an invite that does not parse.
var errBadInvite = errors.New("invite")

// parseInvite reads an invite into what a device pins; every part is
// checked.
func parseInvite(s string) (client.Network, error) {
	var n client.Network
	bad := func(format string, args ...any) (client.Network, error) {
		return client.Network{}, fmt.Errorf("%w: %s", errBadInvite, fmt.Sprintf(format, args...))
	}
	s = strings.TrimSpace(s)
	if len(s) > maxInvite {
		return bad("longer than %d bytes", maxInvite)
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad("%v", err)
	}
	if u.Scheme != inviteScheme {
		return bad("want an anom://HOST:PORT?ca=...&root=... string, not %q", u.Scheme+"://")
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.Fragment != "" || u.Opaque != "" {
		return bad("unexpected parts (user, path or fragment)")
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return bad("server address %q: want host:port", u.Host)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("%v", err)
	}
	for k, v := range q {
		if len(v) != 1 {
			return bad("%q given %d times", k, len(v))
		}
		if k != "ca" && k != "root" && k != "name" {
			return bad("unknown field %q", k)
		}
	}
	ca, err := hex.DecodeString(q.Get("ca"))
	if err != nil || len(ca) != 32 {
		return bad("ca: want the 64 hex digits of the network CA's SHA-256")
	}
	root, err := hex.DecodeString(q.Get("root"))
	if err != nil || len(root) != 32 {
		return bad("root: want the 64 hex digits of the network root public key")
	}
	n.Address = u.Host
	copy(n.CAFingerprint[:], ca)
	n.Root = identity.RootPublicKey(root)
	n.TLSServerName = q.Get("name")
	return n, nil
}

// inviteString makes the invite of network n (the inverse of parseInvite).
func inviteString(n client.Network) string {
	q := url.Values{}
	q.Set("ca", hex.EncodeToString(n.CAFingerprint[:]))
	q.Set("root", hex.EncodeToString(n.Root))
	if n.TLSServerName != "" {
		q.Set("name", n.TLSServerName)
	}
	return (&url.URL{Scheme: inviteScheme, Host: n.Address, RawQuery: q.Encode()}).String()
}
