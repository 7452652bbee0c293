package netsetup

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"anom/identity"
)

// The administrator's folder (Dir.AdminDir, or another made with anom
// admin adminkey --out): the admin key's seed and its root-signed
// certificate, both hex.
const (
	AdminKeyFile  = "admin.key"
	AdminCertFile = "admin.cert"
	// DefaultAdminValidity is how long an admin key's certificate lasts.
	DefaultAdminValidity = 365 * 24 * time.Hour
)

// MakeAdminKey makes an admin key named name, certifies it with root for
// valid from now, and writes both into dir (made 0700 if need be),
// replacing a key there.
func MakeAdminKey(dir, name string, root *identity.RootKey, valid time.Duration, rand io.Reader) (*identity.OnlineKeyCertificate, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("making admin folder: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("making admin folder: %w", err)
	}
	key, err := identity.GenerateAdminKey(rand)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	cert := &identity.OnlineKeyCertificate{Role: identity.RoleAdmin, Name: name, Key: key.Public(),
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(valid), Serial: uint64(now.UnixNano())}
	if err := root.SignOnlineKeyCertificate(cert); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{AdminKeyFile, key.Seed()}, {AdminCertFile, cert.Encode()}} {
		if err := ReplaceSecret(filepath.Join(dir, f.name), []byte(hex.EncodeToString(f.data)+"\n")); err != nil {
			return nil, fmt.Errorf("writing admin key: %w", err)
		}
	}
	return cert, nil
}

// ReplaceSecret replaces a file atomically with one of mode 0600.
func ReplaceSecret(path string, data []byte) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	if err := WriteSecret(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// resolve makes path absolute and resolves the symbolic links of its
// longest existing prefix (the rest does not exist yet, so holds none).
func resolve(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	var rest []string
	for p := abs; ; p = filepath.Dir(p) {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(append([]string{r}, rest...)...), nil
		}
		if !errors.Is(err, os.ErrNotExist) || filepath.Dir(p) == p {
			return "", fmt.Errorf("resolving %s: %w", path, err)
		}
		rest = append([]string{filepath.Base(p)}, rest...)
	}
}

// RefuseInside fails if path is dir or inside it, symbolic links resolved:
// where secrets that must not sit beside the server (escrow shares, issuer,
// admin and distributor keys) may not go.
func RefuseInside(path, dir string) error {
	p, err := resolve(path)
	if err != nil {
		return err
	}
	d, err := resolve(dir)
	if err != nil {
		return err
	}
	if rel, err := filepath.Rel(d, p); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("refusing to write secrets to %s: it is inside the server's data directory %s; use a directory outside it, best on an offline machine", path, dir)
	}
	return nil
}
