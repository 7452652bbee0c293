package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"anom/client"
	"anom/identity"
)

// An invite is what a device pins about its network, in one string to
// paste into anom chat --invite:
//
//	anom://HOST:PORT?ca=SHA256-OF-CA-HEX&root=ROOT-PUBLIC-KEY-HEX[&name=TLS-NAME]
//
// It holds nothing secret: whoever has it still needs an activation code.
// anom server writes DATA/invite when it starts; anom admin invite prints
// one for another address (a relay in front of the server, say).

const inviteScheme = "anom"

// maxInvite bounds what parseInvite reads.
const maxInvite = 1024

func init() {
	adminVerbs["invite"] = adminVerb{summary: "print the invite devices activate with (server address, CA fingerprint, root key)", run: runAdminInvite}
}

// inviteString makes the invite of a network at addr.
func inviteString(addr string, ni networkInfo, tlsName string) string {
	q := url.Values{}
	q.Set("ca", ni.CAFingerprint)
	q.Set("root", ni.RootPublicKey)
	if tlsName != "" {
		q.Set("name", tlsName)
	}
	u := url.URL{Scheme: inviteScheme, Host: addr, RawQuery: q.Encode()}
	return u.String()
}

// parseInvite reads an invite into what a device pins. Every part is
// checked: the address is host:port, the fingerprint and the root key are
// 32 bytes of hex.
func parseInvite(s string) (client.Network, error) {
	var n client.Network
	s = strings.TrimSpace(s)
	if len(s) > maxInvite {
		return n, fmt.Errorf("invite: longer than %d bytes", maxInvite)
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
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return n, fmt.Errorf("invite: server address %q: want host:port", u.Host)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return n, fmt.Errorf("invite: %w", err)
	}
	for k, v := range q {
		if len(v) != 1 {
			return n, fmt.Errorf("invite: %q given %d times", k, len(v))
		}
		if k != "ca" && k != "root" && k != "name" {
			return n, fmt.Errorf("invite: unknown field %q", k)
		}
	}
	ca, err := hex.DecodeString(q.Get("ca"))
	if err != nil || len(ca) != 32 {
		return n, errors.New("invite: ca: want the 64 hex digits of the network CA's SHA-256")
	}
	root, err := hex.DecodeString(q.Get("root"))
	if err != nil || len(root) != 32 {
		return n, errors.New("invite: root: want the 64 hex digits of the network root public key")
	}
	n.Address = u.Host
	copy(n.CAFingerprint[:], ca)
	n.Root = identity.RootPublicKey(root)
	n.TLSServerName = q.Get("name")
	return n, nil
}

// inviteAddr is the address an invite gives for a server listening on
// l: itself, unless it listens on every interface, where the first
// hostname of the server certificate other than localhost stands in.
func inviteAddr(l net.Addr, ni networkInfo) string {
	host, port, err := net.SplitHostPort(l.String())
	if err != nil {
		return l.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		for _, h := range ni.Hostnames {
			if h != "localhost" && h != "127.0.0.1" {
				host = h
				break
			}
		}
	}
	return net.JoinHostPort(host, port)
}

func runAdminInvite(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("admin invite", flag.ContinueOnError)
	data := dataFlag(fs)
	server := fs.String("server", "", "the address devices reach the server at, host:port (default: the one in DATA/invite, written by anom server)")
	tlsName := fs.String("tls-name", "", "the name the server's certificate must carry, when the address is not in it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d := dataDir(*data)
	ni, err := d.info()
	if err != nil {
		return err
	}
	addr := *server
	if addr == "" {
		b, err := os.ReadFile(d.path("invite"))
		if err != nil {
			return fmt.Errorf("no --server, and no invite written by anom server yet: %w", err)
		}
		n, err := parseInvite(string(b))
		if err != nil {
			return err
		}
		addr = n.Address
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("--server %q: want host:port", addr)
	}
	fmt.Println(inviteString(addr, ni, *tlsName))
	return nil
}
