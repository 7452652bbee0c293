package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"anom/identity"
	"anom/internal/adminapi"
)

// The administrator's key and the admin API. `anom admin` verbs that act
// on a running server (distributor, codes, revoke, wipe, approve) sign a
// request with the admin key from the admin folder (dataDir.adminDir, or
// --admin-key DIR), send it to the server's /v1/admin over TLS checked
// against the network CA, and print the server's answer; a refusal is
// an error, so the command exits non-zero with the server's reason.

func init() {
	adminVerbs["adminkey"] = adminVerb{summary: "adminkey [--out DIR]: make an admin key certified by the root (for anom admin on this or another machine)", run: runAdminKey}
}

func readHexFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	v, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return v, nil
}

// loadAdminKey reads the admin key and its certificate from dir.
func loadAdminKey(dir string) (*identity.AdminKey, *identity.OnlineKeyCertificate, error) {
	seed, err := readHexFile(filepath.Join(dir, adminKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("reading admin key: %w (anom admin adminkey makes one)", err)
	}
	key, err := identity.AdminKeyFromSeed(seed)
	if err != nil {
		return nil, nil, err
	}
	cb, err := readHexFile(filepath.Join(dir, adminCertFile))
	if err != nil {
		return nil, nil, fmt.Errorf("reading admin key certificate: %w", err)
	}
	cert, err := identity.DecodeOnlineKeyCertificate(cb)
	if err != nil {
		return nil, nil, err
	}
	if !cert.Key.Equal(key.Public()) {
		return nil, nil, fmt.Errorf("%s: the certificate is of another key", dir)
	}
	return key, cert, nil
}

// adminTarget is where a verb sends its request, from its flags.
type adminTarget struct {
	data, keyDir, server, ca *string
}

func adminTargetFlags(fs *flag.FlagSet) *adminTarget {
	return &adminTarget{
		data:   dataFlag(fs),
		keyDir: fs.String("admin-key", "", "folder of the admin key and its certificate (default: DATA.admin beside the data directory)"),
		server: fs.String("server", "", "the server's address, host:port (default: where anom server last listened, from DATA/network.json)"),
		ca:     fs.String("ca", "", "the network's TLS CA certificate, PEM (default: DATA/ca.crt)"),
	}
}

func (a *adminTarget) dir() dataDir { return dataDir(*a.data) }

// client makes the admin API client the flags describe.
func (a *adminTarget) client() (*adminapi.Client, error) {
	d := a.dir()
	keyDir := *a.keyDir
	if keyDir == "" {
		keyDir = d.AdminDir()
	}
	key, cert, err := loadAdminKey(keyDir)
	if err != nil {
		return nil, err
	}
	addr := *a.server
	if addr == "" {
		ni, err := d.Info()
		if err != nil {
			return nil, fmt.Errorf("%w; or give --server HOST:PORT and --ca FILE", err)
		}
		if ni.Address == "" {
			return nil, fmt.Errorf("no server address in %s: start the server (anom server --data %s) or give --server HOST:PORT", d.Path("network.json"), d.Path())
		}
		addr = ni.Address
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("--server %q: want host:port", addr)
	}
	caFile := *a.ca
	if caFile == "" {
		caFile = d.Path("ca.crt")
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the network CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("reading the network CA: no certificate in %s", caFile)
	}
	return &adminapi.Client{Addr: addr, Roots: pool, Key: key, Cert: cert}, nil
}

// send sends a request of op and returns the server's answer; a refusal
// is an error carrying the server's reason.
func (a *adminTarget) send(ctx context.Context, op adminapi.Op, body []byte) (*adminapi.Answer, error) {
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	ans, err := c.Do(ctx, op, body)
	var re *adminapi.RemoteError
	if errors.As(err, &re) {
		return ans, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w (is the server running? anom admin needs it)", err)
	}
	return ans, nil
}

func runAdminKey(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("admin adminkey", flag.ContinueOnError)
	data := dataFlag(fs)
	out := fs.String("out", "", "folder to write admin.key and admin.cert to (default: DATA.admin); an admin key there is replaced")
	name := fs.String("name", "admin", "the administrator's name, in the certificate and the server's admin log; a new key of a name retires the earlier ones once used")
	valid := fs.Duration("valid", defaultAdminValidity, "how long the certificate lasts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d := dataDir(*data)
	root, err := d.RootKey()
	if err != nil {
		return err
	}
	dir := *out
	if dir == "" {
		dir = d.AdminDir()
	}
	if err := refuseInside(dir, d.Path()); err != nil {
		return err
	}
	cert, err := makeAdminKey(dir, *name, root, *valid, rand.Reader)
	if err != nil {
		return err
	}
	fmt.Printf("admin key %q written to %s, certified by the root until %s\n", cert.Name, dir, cert.NotAfter.UTC().Format(time.DateOnly))
	fmt.Printf("once the server has had a request signed with it, earlier keys named %q are refused\n", cert.Name)
	return nil
}
