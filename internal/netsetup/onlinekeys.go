package netsetup

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"anom/identity"
)

// The server's online keys, in the data directory, each certified by the
// root (which stays in the root folder, DATA.root/, offline in a real
// deployment):
//
//	directory.key, directory.cert       the directory key (seed, hex, 0600)
//	                                    and the root's certificate of it (hex)
//	countersign.key, countersign.cert   the escrow countersigning key and
//	                                    its certificate
//
// `anom admin init` (or the first `anom server`) makes them with serial 1;
// `anom admin rotate --role directory|countersign` replaces one with a new
// key and the next serial; the server logs the certificate at its next
// start and uses the new key from then on.

// OnlineRole is a role `anom admin rotate` can rotate, with its files.
type OnlineRole struct {
	role identity.KeyRole
	file string // base name: FILE.key and FILE.cert
}

// KeyFile is the base name of the role's key file in the data
// directory (FILE.key).
func (r OnlineRole) KeyFile() string { return r.file + ".key" }

var (
	DirectoryRole   = OnlineRole{identity.RoleDirectory, "directory"}
	CountersignRole = OnlineRole{identity.RoleCountersign, "countersign"}
)

// ReadOnlineKey reads the seed and certificate of an online key; the
// certificate must be for the role and the key.
func (d Dir) ReadOnlineKey(r OnlineRole) (seed []byte, cert *identity.OnlineKeyCertificate, err error) {
	kb, err := os.ReadFile(d.Path(r.file + ".key"))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the %v key: %w (run anom admin init, or anom admin rotate --role %s)", r.role, err, r.file)
	}
	if seed, err = hex.DecodeString(strings.TrimSpace(string(kb))); err != nil {
		return nil, nil, fmt.Errorf("reading the %v key: %w", r.role, err)
	}
	cb, err := os.ReadFile(d.Path(r.file + ".cert"))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the %v key certificate: %w", r.role, err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(cb)))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the %v key certificate: %w", r.role, err)
	}
	if cert, err = identity.DecodeOnlineKeyCertificate(raw); err != nil {
		return nil, nil, fmt.Errorf("reading the %v key certificate: %w", r.role, err)
	}
	if cert.Role != r.role {
		return nil, nil, fmt.Errorf("reading the %v key certificate: %w: it is for a %v key", r.role, identity.ErrWrongRole, cert.Role)
	}
	return seed, cert, nil
}

// DirectorySigner loads the server's directory key and its certificate.
func (d Dir) DirectorySigner() (*identity.DirectorySigner, error) {
	seed, cert, err := d.ReadOnlineKey(DirectoryRole)
	if err != nil {
		return nil, err
	}
	k, err := identity.DirectoryKeyFromSeed(seed)
	if err != nil {
		return nil, err
	}
	return identity.NewDirectorySigner(k, cert)
}

// CountersignKey loads the escrow countersigning key and its certificate.
func (d Dir) CountersignKey() (*identity.CountersignKey, *identity.OnlineKeyCertificate, error) {
	seed, cert, err := d.ReadOnlineKey(CountersignRole)
	if err != nil {
		return nil, nil, err
	}
	k, err := identity.CountersignKeyFromSeed(seed)
	if err != nil {
		return nil, nil, err
	}
	if string(k.Public()) != string(cert.Key) {
		return nil, nil, fmt.Errorf("reading the countersigning key: its certificate is for another key")
	}
	return k, cert, nil
}

// WriteOnlineKey writes an online key's seed and certificate, replacing
// earlier ones (a rotation) through temporary files.
func (d Dir) WriteOnlineKey(r OnlineRole, seed []byte, cert *identity.OnlineKeyCertificate) error {
	for _, f := range []struct {
		name string
		data []byte
	}{{r.file + ".key", seed}, {r.file + ".cert", cert.Encode()}} {
		path, tmp := d.Path(f.name), d.Path(f.name+".tmp")
		os.Remove(tmp)
		if err := WriteSecret(tmp, []byte(hex.EncodeToString(f.data)+"\n")); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}

// CertifyOnlineKey makes a new key of role r for the server name,
// certifies it with root from now for identity.OnlineKeyValidity with the
// given serial, and writes it to d.
func (d Dir) CertifyOnlineKey(root *identity.RootKey, r OnlineRole, name string, serial uint64) (*identity.OnlineKeyCertificate, error) {
	var seed, pub []byte
	switch r.role {
	case identity.RoleDirectory:
		k, err := identity.GenerateDirectoryKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		seed, pub = k.Seed(), k.Public()
	case identity.RoleCountersign:
		k, err := identity.GenerateCountersignKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		seed, pub = k.Seed(), k.Public()
	default:
		return nil, fmt.Errorf("certifying an online key: %w: %v", identity.ErrWrongRole, r.role)
	}
	c, err := root.CertifyOnlineKey(r.role, OnlineKeyName(name), pub, time.Now().Add(-time.Hour), identity.OnlineKeyValidity, serial)
	if err != nil {
		return nil, err
	}
	if err := d.WriteOnlineKey(r, seed, c); err != nil {
		return nil, err
	}
	return c, nil
}

// OnlineKeyName is the certificate name for a network name: lower case,
// other characters than [a-z0-9._-] as '-'.
func OnlineKeyName(network string) string {
	b := []byte(strings.ToLower(network))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) == 0 {
		return "server"
	}
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}

// HaveOnlineKey reports whether the files of an online key exist.
func (d Dir) HaveOnlineKey(r OnlineRole) (bool, error) {
	_, err := os.Stat(d.Path(r.file + ".cert"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}
