package client

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"anom/identity"
)

// An invite is what a device pins about its network, in one string to
// paste (anom chat --invite):
//
//	anom://HOST:PORT?ca=SHA256-OF-CA-HEX&root=ROOT-PUBLIC-KEY-HEX[&name=TLS-NAME][&alt=HOST:PORT,...]
//
// It holds nothing secret: whoever has it still needs an activation code.
// It carries the Network's Address, CAFingerprint, Root, TLSServerName
// and Alternates (alt: more addresses of the network, relays in front of
// its servers, which the client fails over to); not CACert, which the
// server sends in its chain. An invite without alt, as made before there
// were alternates, reads as before.

const inviteScheme = "anom"

// MaxInviteLen bounds the invite ParseInvite reads, in bytes.
const MaxInviteLen = 1024

// Invite is the invite of network n, which ParseInvite reads back into n
// (without CACert). It is well formed when n has an Address of host:port
// and a Root of 32 bytes.
func (n Network) Invite() string {
	q := url.Values{}
	q.Set("ca", hex.EncodeToString(n.CAFingerprint[:]))
	q.Set("root", hex.EncodeToString(n.Root))
	if n.TLSServerName != "" {
		q.Set("name", n.TLSServerName)
	}
	if len(n.Alternates) > 0 {
		q.Set("alt", strings.Join(n.Alternates, ","))
	}
	u := url.URL{Scheme: inviteScheme, Host: n.Address, RawQuery: q.Encode()}
	return u.String()
}

// ParseInvite reads an invite into the Network it pins. Every part is
// checked: each address is host:port (and given once), the fingerprint
// and the root key are 32 bytes of hex, no field is unknown or given
// twice. Space around the
// invite is ignored.
func ParseInvite(s string) (Network, error) {
	var n Network
	s = strings.TrimSpace(s)
	if len(s) > MaxInviteLen {
		return n, fmt.Errorf("invite: longer than %d bytes", MaxInviteLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return n, fmt.Errorf("invite: %w", err)
	}
	if u.Scheme != inviteScheme {
		return n, fmt.Errorf("invite: want an anom://HOST:PORT?ca=...&root=... string, not %q", u.Scheme+"://")
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.Fragment != "" || u.Opaque != "" {
		return n, errors.New("invite: unexpected parts (user, path or fragment)")
	}
	if err := checkAddress(u.Host); err != nil {
		return n, fmt.Errorf("invite: server address %w", err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return n, fmt.Errorf("invite: %w", err)
	}
	for k, v := range q {
		if len(v) != 1 {
			return n, fmt.Errorf("invite: %q given %d times", k, len(v))
		}
		if k != "ca" && k != "root" && k != "name" && k != "alt" {
			return n, fmt.Errorf("invite: unknown field %q", k)
		}
	}
	ca, err := hex.DecodeString(q.Get("ca"))
	if err != nil || len(ca) != len(n.CAFingerprint) {
		return n, errors.New("invite: ca: want the 64 hex digits of the network CA's SHA-256")
	}
	root, err := hex.DecodeString(q.Get("root"))
	if err != nil || len(root) != ed25519.PublicKeySize {
		return n, errors.New("invite: root: want the 64 hex digits of the network root public key")
	}
	var alts []string
	if q.Has("alt") {
		alts = strings.Split(q.Get("alt"), ",")
		if len(alts) >= MaxAddresses {
			return n, fmt.Errorf("invite: alt: %d addresses, at most %d", len(alts), MaxAddresses-1)
		}
		seen := map[string]bool{u.Host: true}
		for _, a := range alts {
			if err := checkAddress(a); err != nil {
				return n, fmt.Errorf("invite: alt: address %w", err)
			}
			if seen[a] {
				return n, fmt.Errorf("invite: alt: address %q given twice", a)
			}
			seen[a] = true
		}
	}
	n.Address = u.Host
	n.Alternates = alts
	copy(n.CAFingerprint[:], ca)
	n.Root = identity.RootPublicKey(root)
	n.TLSServerName = q.Get("name")
	return n, nil
}

// checkAddress checks that a is host:port, short enough for the device
// record (255 bytes).
func checkAddress(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("%q: want host:port", a)
	}
	if len(a) > 255 {
		return fmt.Errorf("%q: longer than 255 bytes", a[:32]+"...")
	}
	return nil
}
