package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	"anom/client"
	"anom/identity"
)

// An invite (client.Network.Invite, client.ParseInvite) is what a device
// pins about its network, in one string to paste into anom chat --invite.
// anom server writes DATA/invite when it starts; anom admin invite prints
// one for another address (a relay in front of the server, say).

func init() {
	adminVerbs["invite"] = adminVerb{summary: "print the invite devices activate with (server address, CA fingerprint, root key)", run: runAdminInvite}
}

// clientNetwork is what a device pins about the network ni describes,
// reached at addr, whose certificate must name tlsName ("": the chain is
// checked, not the name).
func clientNetwork(ni networkInfo, addr, tlsName string) (client.Network, error) {
	n := client.Network{Address: addr, TLSServerName: tlsName}
	ca, err := hex.DecodeString(ni.CAFingerprint)
	if err != nil || len(ca) != len(n.CAFingerprint) {
		return n, fmt.Errorf("network.json: ca_fingerprint %q: want 64 hex digits", ni.CAFingerprint)
	}
	copy(n.CAFingerprint[:], ca)
	root, err := hex.DecodeString(ni.RootPublicKey)
	if err != nil || len(root) != ed25519.PublicKeySize {
		return n, fmt.Errorf("network.json: root_public_key %q: want 64 hex digits", ni.RootPublicKey)
	}
	n.Root = identity.RootPublicKey(root)
	return n, nil
}

// inviteString makes the invite of network ni at addr.
func inviteString(addr string, ni networkInfo, tlsName string) (string, error) {
	n, err := clientNetwork(ni, addr, tlsName)
	if err != nil {
		return "", err
	}
	return n.Invite(), nil
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
	relays := fs.String("relays", "", "relays in front of the server (anom relay), host:port, comma-separated: devices connect to them in turn, failing over; without --server the invite lists only the relays")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d := dataDir(*data)
	ni, err := d.Info()
	if err != nil {
		return err
	}
	var alts []string
	for _, a := range strings.Split(*relays, ",") {
		if a = strings.TrimSpace(a); a != "" {
			alts = append(alts, a)
		}
	}
	addr := *server
	if addr == "" && len(alts) > 0 {
		addr, alts = alts[0], alts[1:]
	}
	if addr == "" {
		b, err := os.ReadFile(d.Path("invite"))
		if err != nil {
			return fmt.Errorf("no --server, and no invite written by anom server yet: %w", err)
		}
		n, err := client.ParseInvite(string(b))
		if err != nil {
			return err
		}
		addr = n.Address
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("--server %q: want host:port", addr)
	}
	n, err := clientNetwork(ni, addr, *tlsName)
	if err != nil {
		return err
	}
	n.Alternates = alts
	inv := n.Invite()
	// The invite must read back: addresses well formed, none twice,
	// not too many.
	if _, err := client.ParseInvite(inv); err != nil {
		return fmt.Errorf("--relays: %w", err)
	}
	fmt.Println(inv)
	return nil
}
