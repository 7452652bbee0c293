package client

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// The vault is the device's encrypted state directory:
//
//	meta        KDF parameters, salt, the data key wrapped under the PIN key
//	r-<hex>     one record each (atomic replace): nonce || seal(name, value)
//	l-<hex>     append-only logs: frames of len || nonce || seal(entry)
//
// File names are HMACs of the logical names, so the directory does not show
// which groups or contacts the device has. Every record and log frame is
// sealed with XChaCha20-Poly1305 under keys derived from the random data
// key, with the file name (and frame index) as associated data so files
// cannot be swapped or frames reordered.

const (
	metaFile    = "meta"
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
}

// settings are the authoritative copies of the wipe policy.
type settings struct {
	maxFailed   uint32
	wipeAfter   int64 // seconds; 0 never
	lastContact int64 // Unix seconds
}

func (s settings) encode() []byte {
	b := []byte{1}
	b = binary.BigEndian.AppendUint32(b, s.maxFailed)
	b = binary.BigEndian.AppendUint64(b, uint64(s.wipeAfter))
	return binary.BigEndian.AppendUint64(b, uint64(s.lastContact))
}

func decodeSettings(b []byte) (settings, error) {
	if len(b) != 21 || b[0] != 1 {
		return settings{}, fmt.Errorf("%w: settings record", ErrCorrupt)
	}
	s := settings{
		maxFailed:   binary.BigEndian.Uint32(b[1:]),
		wipeAfter:   int64(binary.BigEndian.Uint64(b[5:])),
		lastContact: int64(binary.BigEndian.Uint64(b[13:])),
	}
	if s.wipeAfter < 0 || s.lastContact < 0 {
		return settings{}, fmt.Errorf("%w: settings record has a negative time", ErrCorrupt)
	}
	return s, nil
}

// logState caches what a scan of a log found.
type logState struct {
	count uint64 // frames
	size  int64  // bytes of whole, authentic frames
}

type vault struct {
	dir  string
	opts vaultOptions

	mu       sync.Mutex
	closed   bool
	meta     *meta
	dek      []byte
	rec      cipher.AEAD
	nameKey  []byte
	settings settings
	names    map[string]string // logical name -> file name
	logs     map[string]*logState
}

// deriveFromPIN runs Argon2id once: the first half is the key that wraps
// the data key, the second the value the duress tag is computed from.
func deriveFromPIN(pin string, salt []byte, p KDFParams) (kek, check []byte) {
	out := argon2.IDKey([]byte(pin), salt, p.Time, p.MemoryKiB, p.Threads, 64)
	return out[:32], out[32:]
}

func duressTag(check []byte) [duressSize]byte {
	h := sha256.New()
	h.Write([]byte("anom duress pin v1"))
	h.Write(check)
	var t [duressSize]byte
	copy(t[:], h.Sum(nil))
	return t
}

// createVault makes a new device state in dir, which must not hold one.
// duress may be empty (no duress PIN).
func createVault(dir, pin, duress string, kdf KDFParams, st settings, o vaultOptions) (*vault, error) {
	if pin == "" || pin == duress {
		return nil, fmt.Errorf("creating device state: %w", ErrBadPIN)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating device state: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, metaFile)); err == nil {
		return nil, fmt.Errorf("creating device state: %w", ErrExists)
	}
	m := &meta{kdf: kdf.withDefaults(), maxFailed: st.maxFailed, wipeAfter: st.wipeAfter, lastContact: st.lastContact}
	dek := make([]byte, keySize)
	for _, b := range [][]byte{m.salt[:], dek, m.duress[:]} {
		if _, err := io.ReadFull(o.rand, b); err != nil {
			return nil, fmt.Errorf("creating device state: reading randomness: %w", err)
		}
	}
	if duress != "" {
		_, check := deriveFromPIN(duress, m.salt[:], m.kdf)
		m.duress = duressTag(check)
	}
	kek, _ := deriveFromPIN(pin, m.salt[:], m.kdf)
	if err := m.wrap(kek, dek, o.rand); err != nil {
		return nil, fmt.Errorf("creating device state: %w", err)
	}
	v := &vault{dir: dir, opts: o, meta: m, names: map[string]string{}, logs: map[string]*logState{}}
	if err := v.setKey(dek); err != nil {
		return nil, err
	}
	// The settings record goes first: a meta file without it is refused.
	if err := v.putLocked(settingsRec, st.encode()); err != nil {
		return nil, fmt.Errorf("creating device state: %w", err)
	}
	v.settings = st
	if err := v.writeMeta(); err != nil {
		return nil, fmt.Errorf("creating device state: %w", err)
	}
	return v, nil
}

func (m *meta) wrap(kek, dek []byte, rand io.Reader) error {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return err
	}
	nonce := m.wrapped[:nonceSize]
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return fmt.Errorf("reading randomness: %w", err)
	}
	aead.Seal(m.wrapped[nonceSize:nonceSize], nonce, dek, m.header())
	return nil
}

func (m *meta) unwrap(kek []byte) ([]byte, bool) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, false
	}
	dek, err := aead.Open(nil, m.wrapped[:nonceSize], m.wrapped[nonceSize:], m.header())
	return dek, err == nil
}

// unlockResult says what a PIN did.
type unlockResult int

const (
	unlocked unlockResult = iota
	wipedDuress
	wipedFailures
	wipedOverdue
)

// openVault unlocks the device state in dir with pin. A duress PIN, the
// last allowed wrong PIN or an overdue device wipes the state and returns
// ErrWiped together with the wipe report.
func openVault(dir, pin string, o vaultOptions) (*vault, *WipeReport, error) {
	raw, err := os.ReadFile(filepath.Join(dir, metaFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("opening device state: %w", ErrNoState)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("opening device state: %w", err)
	}
	m, err := decodeMeta(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("opening device state: %w", err)
	}
	v := &vault{dir: dir, opts: o, meta: m, names: map[string]string{}, logs: map[string]*logState{}}
	if overdue(m.lastContact, m.wipeAfter, o.now()) {
		return v.wipeFor(wipedOverdue)
	}
	kek, check := deriveFromPIN(pin, m.salt[:], m.kdf)
	dek, ok := m.unwrap(kek)
	tag := duressTag(check)
	isDuress := subtle.ConstantTimeCompare(tag[:], m.duress[:]) == 1
	switch {
	case ok:
	case isDuress:
		return v.wipeFor(wipedDuress)
	default:
		m.failed++
		if m.maxFailed > 0 && m.failed >= m.maxFailed {
			return v.wipeFor(wipedFailures)
		}
		if err := v.writeMeta(); err != nil {
			return nil, nil, fmt.Errorf("opening device state: counting a wrong PIN: %w", err)
		}
		return nil, nil, fmt.Errorf("opening device state: %w", ErrWrongPIN)
	}
	if err := v.setKey(dek); err != nil {
		return nil, nil, err
	}
	if err := v.loadIndex(); err != nil {
		return nil, nil, fmt.Errorf("opening device state: %w", err)
	}
	sb, err := v.getLocked(settingsRec)
	if err != nil {
		return nil, nil, fmt.Errorf("opening device state: reading settings: %w", err)
	}
	if v.settings, err = decodeSettings(sb); err != nil {
		return nil, nil, fmt.Errorf("opening device state: %w", err)
	}
	// The authoritative policy is the encrypted one.
	if overdue(v.settings.lastContact, v.settings.wipeAfter, o.now()) {
		return v.wipeFor(wipedOverdue)
	}
	if m.failed != 0 || m.maxFailed != v.settings.maxFailed || m.wipeAfter != v.settings.wipeAfter || m.lastContact != v.settings.lastContact {
		m.failed, m.maxFailed, m.wipeAfter, m.lastContact = 0, v.settings.maxFailed, v.settings.wipeAfter, v.settings.lastContact
		if err := v.writeMeta(); err != nil {
			return nil, nil, fmt.Errorf("opening device state: %w", err)
		}
	}
	return v, nil, nil
}

// wipeFor wipes a vault that was not unlocked and returns the error
// openVault reports.
func (v *vault) wipeFor(why unlockResult) (*vault, *WipeReport, error) {
	rep, err := v.wipe()
	if err != nil {
		return nil, rep, fmt.Errorf("opening device state: wiping: %w", err)
	}
	reason := map[unlockResult]string{wipedDuress: "duress PIN", wipedFailures: "too many wrong PINs", wipedOverdue: "too long without reaching the server"}[why]
	rep.Reason = reason
	return nil, rep, fmt.Errorf("opening device state: %s: %w", reason, ErrWiped)
}

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
	v.dek, v.rec, v.nameKey = dek, aead, nameKey
	return nil
}

func (v *vault) fileName(prefix, name string) string {
	h := hmac.New(sha256.New, v.nameKey)
	h.Write([]byte(prefix))
	h.Write([]byte(name))
	return prefix + hex.EncodeToString(h.Sum(nil)[:20])
}

// loadIndex decrypts every record to learn its name, and removes the
// temporary files a crash may have left.
func (v *vault) loadIndex() error {
	ents, err := os.ReadDir(v.dir)
	if err != nil {
		return fmt.Errorf("listing state: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, tmpPrefix):
			if err := os.Remove(filepath.Join(v.dir, n)); err != nil {
				return fmt.Errorf("removing leftover %s: %w", n, err)
			}
		case strings.HasPrefix(n, recPrefix):
			raw, err := os.ReadFile(filepath.Join(v.dir, n))
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
	if err := writeAtomic(v.dir, file, sealed, v.opts.rand); err != nil {
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
	raw, err := os.ReadFile(filepath.Join(v.dir, file))
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
	if err := os.Remove(filepath.Join(v.dir, file)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting record %s: %w", name, err)
	}
	delete(v.names, name)
	return syncDir(v.dir)
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

// touch records that the device reached the server at t. It writes only
// when the stored time is more than a minute old.
func (v *vault) touch(t time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed
	}
	if t.Unix()-v.settings.lastContact < 60 && t.Unix() >= v.settings.lastContact {
		return nil
	}
	st := v.settings
	st.lastContact = t.Unix()
	return v.saveSettings(st)
}

// setPolicy changes the wipe policy.
func (v *vault) setPolicy(maxFailed uint32, wipeAfter int64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed
	}
	st := v.settings
	st.maxFailed, st.wipeAfter = maxFailed, wipeAfter
	return v.saveSettings(st)
}

func (v *vault) saveSettings(st settings) error {
	if err := v.putLocked(settingsRec, st.encode()); err != nil {
		return err
	}
	v.settings = st
	v.meta.maxFailed, v.meta.wipeAfter, v.meta.lastContact = st.maxFailed, st.wipeAfter, st.lastContact
	return v.writeMeta()
}

// overdue reports whether the device must wipe itself at t.
func (v *vault) overdue(t time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return !v.closed && overdue(v.settings.lastContact, v.settings.wipeAfter, t)
}

// changePIN rewraps the data key under a new PIN (and duress PIN; empty
// keeps no duress PIN). The old PIN must be right.
func (v *vault) changePIN(old, pin, duress string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed
	}
	if pin == "" || pin == duress {
		return fmt.Errorf("changing PIN: %w", ErrBadPIN)
	}
	kek, _ := deriveFromPIN(old, v.meta.salt[:], v.meta.kdf)
	if _, ok := v.meta.unwrap(kek); !ok {
		return fmt.Errorf("changing PIN: %w", ErrWrongPIN)
	}
	m := *v.meta
	if _, err := io.ReadFull(v.opts.rand, m.salt[:]); err != nil {
		return fmt.Errorf("changing PIN: reading randomness: %w", err)
	}
	if _, err := io.ReadFull(v.opts.rand, m.duress[:]); err != nil {
		return fmt.Errorf("changing PIN: reading randomness: %w", err)
	}
	if duress != "" {
		_, check := deriveFromPIN(duress, m.salt[:], m.kdf)
		m.duress = duressTag(check)
	}
	kek, _ = deriveFromPIN(pin, m.salt[:], m.kdf)
	if err := m.wrap(kek, v.dek, v.opts.rand); err != nil {
		return fmt.Errorf("changing PIN: %w", err)
	}
	old2 := v.meta
	v.meta = &m
	if err := v.writeMeta(); err != nil {
		v.meta = old2
		return fmt.Errorf("changing PIN: %w", err)
	}
	return nil
}

func (v *vault) writeMeta() error {
	return writeAtomic(v.dir, metaFile, v.meta.encode(), v.opts.rand)
}

// close forgets the keys; the files stay.
func (v *vault) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.forgetLocked()
}

func (v *vault) forgetLocked() {
	clear(v.dek)
	clear(v.nameKey)
	v.dek, v.nameKey, v.rec = nil, nil, nil
	v.names, v.logs = map[string]string{}, map[string]*logState{}
	v.closed = true
}

// WipeReport says what a wipe did.
type WipeReport struct {
	// Reason is why the device was wiped.
	Reason string
	// Overwritten counts files holding keys that were overwritten before
	// being removed; Removed counts all files removed.
	Overwritten, Removed int
	// Took is how long the wipe took.
	Took time.Duration
}

// wipe destroys the state: first the meta file (which holds the wrapped
// data key, so nothing else can be decrypted once it is gone), then the
// records (which hold the device's private keys), each overwritten with
// random bytes, synced and removed; then the logs and the directory.
func (v *vault) wipe() (*WipeReport, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	start := v.opts.now()
	rep := &WipeReport{}
	v.forgetLocked()
	var errs []error
	shred := func(name string) {
		p := filepath.Join(v.dir, name)
		if err := overwrite(p, v.opts.rand); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		} else if err == nil {
			rep.Overwritten++
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	shred(metaFile)
	if err := syncDir(v.dir); err != nil {
		errs = append(errs, err)
	}
	ents, err := os.ReadDir(v.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, recPrefix) || strings.HasPrefix(n, tmpPrefix) {
			shred(n)
		}
	}
	if err := os.RemoveAll(v.dir); err != nil {
		errs = append(errs, err)
	}
	rep.Removed = len(ents) + 1
	if err := syncDir(filepath.Dir(v.dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	rep.Took = v.opts.now().Sub(start)
	if len(errs) > 0 {
		return rep, fmt.Errorf("wiping device state: %w", errors.Join(errs...))
	}
	return rep, nil
}

// overwrite replaces a file's bytes with random ones and syncs it.
func overwrite(path string, rand io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand, fi.Size()); err != nil {
		return fmt.Errorf("overwriting %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("overwriting %s: %w", filepath.Base(path), err)
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
