package client

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// The vault is the device's encrypted state directory:
//
//	key         the key file (keyfile.go): the data key, sealed under the
//	            PIN's Argon2id key in one slot per allowed wrong PIN
//	hint        plaintext copy of the overdue-wipe policy (hint.go)
//	r-<hex>     one record each (atomic replace): nonce || seal(name, value)
//	l-<hex>     append-only logs: frames of len || nonce || seal(entry)
//
// File names are HMACs of the logical names, so the directory does not show
// which groups or contacts the device has. Every record and log frame is
// sealed with XChaCha20-Poly1305 under keys derived from the random data
// key, with the file name (and frame index) as associated data so files
// cannot be swapped or frames reordered. The data key is nowhere but in the
// key file, so destroying that one small file is the wipe (a crypto-erase);
// the rest is then ciphertext under a key that no longer exists.

const (
	recPrefix   = "r-"
	logPrefix   = "l-"
	tmpPrefix   = "tmp-"
	recMagic    = "ANR1"
	logMagic    = "ANL1"
	settingsRec = "settings"

	maxRecordSize = 64 << 20
	maxFrameSize  = 16 << 20
	maxNameLen    = 1024
)

// vaultOptions are what creating or opening a vault needs.
type vaultOptions struct {
	rand io.Reader
	now  func() time.Time
	// kdf is the Argon2id cost of a key file written for a device of the
	// first format (openLegacy); the zero value is DefaultKDF.
	kdf KDFParams
	// storage is where the state is; nil means the directory the vault
	// is made with (DirStorage).
	storage Storage
}

// logState caches what a scan of a log found.
type logState struct {
	count uint64 // frames
	size  int64  // bytes of whole, authentic frames
}

type vault struct {
	st   Storage
	opts vaultOptions

	mu       sync.Mutex
	closed   bool
	keys     *keySet // while unlocked
	rec      cipher.AEAD
	nameKey  []byte
	settings settings
	names    map[string]string // logical name -> file name
	logs     map[string]*logState
	// weakPIN is set when the PIN that unlocked is below the policy for
	// new PINs (a device made before it).
	weakPIN bool
}

func newVault(dir string, o vaultOptions) *vault {
	st := o.storage
	if st == nil {
		st = newDirStorage(dir, o.rand)
	}
	return &vault{st: st, opts: o, names: map[string]string{}, logs: map[string]*logState{}}
}

// exists reports whether the storage has the object name.
func (v *vault) exists(name string) (bool, error) {
	_, err := v.st.Get(name)
	switch {
	case err == nil:
		return true, nil
	case notExist(err):
		return false, nil
	}
	return false, err
}

// setKey derives the record and name keys from the data key.
func (v *vault) setKey(dek []byte) error {
	recKey, err := hkdf.Key(sha256.New, dek, nil, "anom vault records v1", keySize)
	if err != nil {
		return fmt.Errorf("deriving record key: %w", err)
	}
	nameKey, err := hkdf.Key(sha256.New, dek, nil, "anom vault names v1", keySize)
	if err != nil {
		return fmt.Errorf("deriving name key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(recKey)
	if err != nil {
		return fmt.Errorf("making record cipher: %w", err)
	}
	v.rec, v.nameKey = aead, nameKey
	return nil
}

func (v *vault) fileName(prefix, name string) string {
	h := hmac.New(sha256.New, v.nameKey)
	h.Write([]byte(prefix))
	h.Write([]byte(name))
	return prefix + hex.EncodeToString(h.Sum(nil)[:20])
}

// loadIndex decrypts every record to learn its name (listing the
// storage also removes the temporary files a crash may have left).
func (v *vault) loadIndex() error {
	ents, err := v.st.List()
	if err != nil {
		return fmt.Errorf("listing state: %w", err)
	}
	for _, n := range ents {
		switch {
		case strings.HasPrefix(n, recPrefix):
			raw, err := v.st.Get(n)
			if err != nil {
				return fmt.Errorf("reading record: %w", err)
			}
			name, _, err := v.openRecord(n, raw)
			if err != nil {
				return err
			}
			if v.fileName(recPrefix, name) != n {
				return fmt.Errorf("%w: record %s is stored under the wrong file", ErrCorrupt, name)
			}
			v.names[name] = n
		}
	}
	return nil
}

func (v *vault) sealRecord(file, name string, value []byte) ([]byte, error) {
	pt := make([]byte, 0, 2+len(name)+len(value))
	pt = binary.BigEndian.AppendUint16(pt, uint16(len(name)))
	pt = append(pt, name...)
	pt = append(pt, value...)
	out := make([]byte, len(recMagic)+nonceSize, len(recMagic)+nonceSize+len(pt)+tagSize)
	copy(out, recMagic)
	if _, err := io.ReadFull(v.opts.rand, out[len(recMagic):]); err != nil {
		return nil, fmt.Errorf("reading randomness: %w", err)
	}
	return v.rec.Seal(out, out[len(recMagic):], pt, []byte(recMagic+file)), nil
}

func (v *vault) openRecord(file string, raw []byte) (string, []byte, error) {
	if len(raw) < len(recMagic)+nonceSize+tagSize || string(raw[:len(recMagic)]) != recMagic {
		return "", nil, fmt.Errorf("%w: record %s is malformed", ErrCorrupt, file)
	}
	nonce := raw[len(recMagic) : len(recMagic)+nonceSize]
	pt, err := v.rec.Open(nil, nonce, raw[len(recMagic)+nonceSize:], []byte(recMagic+file))
	if err != nil {
		return "", nil, fmt.Errorf("%w: record %s does not authenticate", ErrCorrupt, file)
	}
	if len(pt) < 2 || int(binary.BigEndian.Uint16(pt)) > len(pt)-2 {
		return "", nil, fmt.Errorf("%w: record %s has a bad name", ErrCorrupt, file)
	}
	n := int(binary.BigEndian.Uint16(pt))
	return string(pt[2 : 2+n]), pt[2+n:], nil
}

// put stores a record, replacing it atomically.
func (v *vault) put(name string, value []byte) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed
	}
	return v.putLocked(name, value)
}

func (v *vault) putLocked(name string, value []byte) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("storing record: bad name length %d", len(name))
	}
	if len(value) > maxRecordSize {
		return fmt.Errorf("storing record %s: %d bytes is over the limit", name, len(value))
	}
	file := v.fileName(recPrefix, name)
	sealed, err := v.sealRecord(file, name, value)
	if err != nil {
		return fmt.Errorf("storing record %s: %w", name, err)
	}
	if err := v.st.Put(file, sealed); err != nil {
		return fmt.Errorf("storing record %s: %w", name, err)
	}
	v.names[name] = file
	return nil
}

// get returns a record's value or ErrNotFound.
func (v *vault) get(name string) ([]byte, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil, ErrClosed
	}
	return v.getLocked(name)
}

func (v *vault) getLocked(name string) ([]byte, error) {
	file, ok := v.names[name]
	if !ok {
		return nil, fmt.Errorf("reading record %s: %w", name, ErrNotFound)
	}
	raw, err := v.st.Get(file)
	if err != nil {
		return nil, fmt.Errorf("reading record %s: %w", name, err)
	}
	got, value, err := v.openRecord(file, raw)
	if err != nil {
		return nil, err
	}
	if got != name {
		return nil, fmt.Errorf("%w: record %s holds %s", ErrCorrupt, name, got)
	}
	return value, nil
}

// del removes a record; removing a missing one is not an error.
func (v *vault) del(name string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed
	}
	file, ok := v.names[name]
	if !ok {
		return nil
	}
	if err := v.st.Delete(file); err != nil {
		return fmt.Errorf("deleting record %s: %w", name, err)
	}
	delete(v.names, name)
	return nil
}

// list returns the names of the records that start with prefix, sorted.
func (v *vault) list(prefix string) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for n := range v.names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// overwrite replaces a file's bytes with random ones and syncs it.
func overwrite(path string, rand io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return overwriteFile(f, rand)
}

// overwriteFile replaces the bytes of the open file f with random ones and
// syncs it.
func overwriteFile(f *os.File, rand io.Reader) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("overwriting %s: %w", filepath.Base(f.Name()), err)
	}
	if _, err := io.CopyN(f, rand, fi.Size()); err != nil {
		return fmt.Errorf("overwriting %s: %w", filepath.Base(f.Name()), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("overwriting %s: %w", filepath.Base(f.Name()), err)
	}
	return nil
}

// writeAtomic replaces dir/name with data: a temporary file is written
// and synced, renamed over the target and the directory synced, so a crash
// leaves either the old or the new content.
func writeAtomic(dir, name string, data []byte, rand io.Reader) error {
	var rnd [8]byte
	if _, err := io.ReadFull(rand, rnd[:]); err != nil {
		return fmt.Errorf("reading randomness: %w", err)
	}
	tmp := filepath.Join(dir, tmpPrefix+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("syncing %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("closing %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("renaming %s: %w", name, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory: %w", err)
	}
	return nil
}
