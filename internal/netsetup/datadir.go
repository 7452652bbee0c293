package netsetup

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"anom/identity"
	"anom/internal/fsutil"
)

// The data directory of a network, made by `anom admin init`. It holds no
// root key: that and the TLS CA's private key are in the root folder
// DATA.root/ (Dir.RootDir), which in a real deployment lives on an offline
// machine and is brought out only to certify distributors, sign escrow
// policies and rotate online keys.
//
//	DATA.root/root.key   network root key seed (hex), 0600
//	DATA.root/ca.key     TLS CA private key (PEM), 0600
//
//	root.pub          network root public key (hex)
//	ca.crt            TLS CA certificate (PEM)
//	directory.*, countersign.*   the server's online keys (onlinekeys.go)
//	server.crt/.key   TLS server certificate for the hostnames (PEM)
//	blob.key          HMAC key of blob capability tokens, 0600
//	archive.token     bearer token of the archive pulling the escrow outbox, 0600
//	escrow-policy     signed escrow policy; empty until the escrow is set up
//	network.json      name, hostnames, fingerprints and the root public key
//	invite            the invite devices activate with (anom server writes it)
//	store/            the Pebble store of `anom server`
//
// Beside it, never inside, the administrator's folder DATA.admin/ (0700,
// Dir.AdminDir): what `anom admin` signs requests to the running server with.
//
//	admin.key         the admin key's seed (hex), 0600
//	admin.cert        its root-signed certificate (hex), RoleAdmin
//	distributors/     NAME.key (seed) of each distributor made here
//
// On a real deployment the admin folder lives on the administrator's
// machine (anom admin --admin-key DIR --server HOST:PORT --ca FILE).
type Dir string

// Path is the data directory joined with parts.
func (d Dir) Path(parts ...string) string {
	return filepath.Join(append([]string{string(d)}, parts...)...)
}

// NetworkInfo is network.json: what devices pin and anom admin reads.
type NetworkInfo struct {
	Name            string   `json:"name"`
	Hostnames       []string `json:"hostnames"`
	RootFingerprint string   `json:"root_fingerprint"`
	// RootPublicKey is the root public key in hex, as in root.pub; a
	// network made before it was added here has it filled from root.pub.
	RootPublicKey string `json:"root_public_key"`
	CAFingerprint string `json:"ca_fingerprint"`
	// Address is where the server last listened (host:port), written by
	// anom server when it starts; anom admin sends its requests there.
	Address string `json:"address,omitempty"`
}

// WriteSecret writes a file readable by its owner only, refusing to
// overwrite.
func WriteSecret(path string, data []byte) error {
	return fsutil.WriteNew(path, data, 0o600)
}

// WritePublic replaces a file that holds nothing secret (mode 0644),
// through a temporary file so a reader never sees half of it.
func WritePublic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// AdminDir is the administrator's folder of the network in d: the sibling
// DATA.admin, so that nothing in it is in the server's data directory.
func (d Dir) AdminDir() string { return d.Sibling(".admin") }

// RootDir is the root folder of the network in d: DATA.root beside it.
func (d Dir) RootDir() string { return d.Sibling(".root") }

// Sibling is the folder beside the data directory named like it with
// suffix. "--data ." (or "..") names the directory by where one stands, and
// "." + ".root" would be a folder inside it: such a sibling is found
// through the directory's absolute name.
func (d Dir) Sibling(suffix string) string {
	p := filepath.Clean(string(d))
	if base := filepath.Base(p); base == "." || base == ".." || base == string(filepath.Separator) {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
	}
	return p + suffix
}

// RootPath is a file in the root folder.
func (d Dir) RootPath(name string) string { return filepath.Join(d.RootDir(), name) }

// RootKey reads the network root key from the root folder.
func (d Dir) RootKey() (*identity.RootKey, error) {
	b, err := os.ReadFile(d.RootPath("root.key"))
	if err != nil {
		return nil, fmt.Errorf("reading root key from the root folder %s: %w (run anom admin init, or bring the offline root folder)", d.RootDir(), err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("reading root key: %w", err)
	}
	return identity.RootKeyFromSeed(seed)
}

// SetAddress records in network.json where the server listens.
func (d Dir) SetAddress(addr string) error {
	b, err := os.ReadFile(d.Path("network.json"))
	if err != nil {
		return fmt.Errorf("recording the server address: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("recording the server address: reading network.json: %w", err)
	}
	if m["address"] == addr {
		return nil
	}
	m["address"] = addr
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := d.Path("network.json.tmp")
	_ = os.Remove(tmp)
	if err := WriteSecret(tmp, append(out, '\n')); err != nil {
		return fmt.Errorf("recording the server address: %w", err)
	}
	if err := os.Rename(tmp, d.Path("network.json")); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("recording the server address: %w", err)
	}
	return nil
}

// Info reads network.json.
func (d Dir) Info() (NetworkInfo, error) {
	var ni NetworkInfo
	b, err := os.ReadFile(d.Path("network.json"))
	if err != nil {
		return ni, fmt.Errorf("reading network info: %w (run anom admin init)", err)
	}
	if err := json.Unmarshal(b, &ni); err != nil {
		return ni, fmt.Errorf("reading network info: %w", err)
	}
	if ni.RootPublicKey == "" {
		pub, err := os.ReadFile(d.Path("root.pub"))
		if err != nil {
			return ni, fmt.Errorf("reading root public key: %w", err)
		}
		ni.RootPublicKey = strings.TrimSpace(string(pub))
	}
	return ni, nil
}

// HoldsNetwork reports whether d was made by admin init; fresh is true
// when d does not exist or is empty, so a network may be made in it.
func (d Dir) HoldsNetwork() (holds, fresh bool, err error) {
	if _, err := os.Stat(d.Path("network.json")); err == nil {
		return true, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, false, err
	}
	ents, err := os.ReadDir(d.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return false, true, nil
	}
	if err != nil {
		return false, false, err
	}
	return false, len(ents) == 0, nil
}

// TLSConfig is the server's TLS configuration: its certificate, with
// the network CA in the chain.
func (d Dir) TLSConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(d.Path("server.crt"), d.Path("server.key"))
	if err != nil {
		return nil, fmt.Errorf("loading TLS certificate: %w", err)
	}
	// The chain carries the network CA, so a device that pinned only its
	// fingerprint (anom chat --ca-fingerprint) can check it.
	caPEM, err := os.ReadFile(d.Path("ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("loading TLS CA: %w", err)
	}
	if blk, _ := pem.Decode(caPEM); blk != nil && blk.Type == "CERTIFICATE" {
		cert.Certificate = append(cert.Certificate, blk.Bytes)
	} else {
		return nil, errors.New("loading TLS CA: no certificate in ca.crt")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}, nil
}

// CAPool holds the network CA certificate.
func (d Dir) CAPool() (*x509.CertPool, error) {
	b, err := os.ReadFile(d.Path("ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("reading CA: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, errors.New("reading CA: no certificate")
	}
	return p, nil
}

// SecretFile reads a file of the data directory.
func (d Dir) SecretFile(name string) ([]byte, error) {
	b, err := os.ReadFile(d.Path(name))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return b, nil
}
