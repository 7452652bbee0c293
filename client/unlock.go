package client

import (
	"cmp"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Creating, unlocking, re-keying and wiping the vault. See keyfile.go for
// the key file and the README ("Device state at rest") for what the PIN
// protects against.

// newKeySet draws the salt and data key of a new state and derives the
// PIN's key; duress may be empty (then the duress group's key is random).
func newKeySet(pin, duress string, kdf KDFParams, tries uint32, rand io.Reader) (*keySet, error) {
	ks := &keySet{kdf: kdf.withDefaults(), tries: tries, dek: make([]byte, keySize)}
	if !ks.kdf.valid() {
		return nil, fmt.Errorf("KDF parameters out of range (t=%d m=%d p=%d)", ks.kdf.Time, ks.kdf.MemoryKiB, ks.kdf.Threads)
	}
	if tries > maxTries {
		return nil, fmt.Errorf("more than %d wrong PINs before a wipe", maxTries)
	}
	if _, err := io.ReadFull(rand, ks.salt[:]); err != nil {
		return nil, fmt.Errorf("reading randomness: %w", err)
	}
	if _, err := io.ReadFull(rand, ks.dek); err != nil {
		return nil, fmt.Errorf("reading randomness: %w", err)
	}
	if err := ks.setDuress(duress, rand); err != nil {
		return nil, err
	}
	ks.kek = deriveKEK(pin, ks.salt[:], ks.kdf)
	return ks, nil
}

// setDuress derives the duress group's key from duress, or draws one
// nobody knows when duress is empty.
func (ks *keySet) setDuress(duress string, rand io.Reader) error {
	if duress != "" {
		ks.duressKEK = deriveKEK(duress, ks.salt[:], ks.kdf)
		return nil
	}
	ks.duressKEK = make([]byte, keySize)
	if _, err := io.ReadFull(rand, ks.duressKEK); err != nil {
		return fmt.Errorf("reading randomness: %w", err)
	}
	return nil
}

// createVault makes a new device state in dir, which must not hold one.
// duress may be empty (no duress PIN). Both must pass CheckNewPIN.
func createVault(dir, pin, duress string, kdf KDFParams, st settings, o vaultOptions) (*vault, error) {
	if err := checkNewPINs(pin, duress); err != nil {
		return nil, fmt.Errorf("creating device state: %w", err)
	}
	v := newVault(dir, o)
	if err := v.st.Create(); err != nil {
		return nil, fmt.Errorf("creating device state: %w", err)
	}
	for _, f := range []string{keyFileName, metaFile} {
		if ok, err := v.exists(f); err != nil || ok {
			return nil, fmt.Errorf("creating device state: %w", cmp.Or(err, ErrExists))
		}
	}
	ks, err := newKeySet(pin, duress, kdf, st.maxFailed, o.rand)
	if err != nil {
		return nil, fmt.Errorf("creating device state: %w", err)
	}
	if err := v.initState(ks, st); err != nil {
		return nil, fmt.Errorf("creating device state: %w", err)
	}
	return v, nil
}

// initState makes dir a fresh state under ks, replacing what dir holds
// (a previous state, or what one whose key file is gone left), in an order
// that a crash or an error at any step leaves either the previous key file
// whole or the new state whole:
//
//  1. the settings record, sealed under the new data key (a key file
//     without it is refused);
//  2. every other record, log and temporary file removed (the hint is
//     kept until step 4 replaces it: the duress PIN reads its policy);
//  3. the key file swapped atomically and the previous one's bytes then
//     overwritten (replaceKeyFile): the crypto-erase of the previous state;
//  4. the hint.
//
// Before step 3 the previous key file is whole (its duress PIN does all
// this again; the new settings record is under a key nothing holds);
// after it the directory holds the new state and nothing else, even
// where step 3's overwrite or step 4 failed, which is why the errors of
// those two are *committedError. Removing the previous state's files
// after the swap instead would let a crash leave records the new key
// cannot open, and the next unlock would fail on them.
func (v *vault) initState(ks *keySet, st settings) error {
	v.keys = ks
	if err := v.setKey(ks.dek); err != nil {
		return err
	}
	if err := v.putLocked(settingsRec, st.encode()); err != nil {
		return err
	}
	v.settings = st
	if err := v.removeState(v.names[settingsRec]); err != nil {
		return err
	}
	if err := v.writeKeys(); err != nil {
		return err
	}
	if err := v.writeHint(); err != nil {
		return &committedError{err}
	}
	return nil
}

// committedError is an error from after a new key file was in place: the
// state it describes is whole, only a step that may follow it (the
// overwrite of the previous key file's bytes, the hint) failed.
type committedError struct{ err error }

func (e *committedError) Error() string { return e.err.Error() }
func (e *committedError) Unwrap() error { return e.err }

// removeState removes the records and logs of the storage (listing it
// removes the temporary files), but for the record file keep; other
// objects are left alone (a directory may be one the user named by
// mistake).
func (v *vault) removeState(keep string) error {
	ents, err := v.st.List()
	if err != nil {
		return fmt.Errorf("listing state: %w", err)
	}
	for _, n := range ents {
		if n == keep {
			continue
		}
		if strings.HasPrefix(n, recPrefix) || strings.HasPrefix(n, logPrefix) {
			if err := v.st.Delete(n); err != nil {
				return fmt.Errorf("removing %s: %w", n, err)
			}
		}
	}
	return nil
}

// writeKeys writes a fresh key file for the vault's keys: every slot whole,
// the groups in a new random order.
func (v *vault) writeKeys() error {
	kf, err := v.keys.build(v.opts.rand)
	if err != nil {
		return fmt.Errorf("writing the key file: %w", err)
	}
	// PutSecret overwrites the previous key file's bytes once the new
	// one is in place (an error of that step is a *committedError).
	if err := v.st.PutSecret(keyFileName, kf.encode()); err != nil {
		return fmt.Errorf("writing the key file: %w", err)
	}
	return nil
}

// unlockResult says why a locked vault wiped itself.
type unlockResult int

const (
	wipedFailures unlockResult = iota + 1
	wipedOverdue
	wipedTampered
)

// openVault unlocks the device state in dir with pin.
//
// A wrong PIN returns ErrWrongPIN; the last allowed one, an overdue device
// or a key file whose slots were edited wipe the state and return ErrWiped
// with the wipe report. The duress PIN erases the state and returns, as if
// it were the PIN, a new empty device (created, not activated) whose PIN is
// the duress PIN: nothing in the result says what happened.
func openVault(dir, pin string, o vaultOptions) (*vault, *WipeReport, error) {
	v := newVault(dir, o)
	raw, err := v.st.Get(keyFileName)
	if notExist(err) {
		if ok, _ := v.exists(metaFile); ok {
			return openLegacy(dir, pin, o)
		}
		return nil, nil, fmt.Errorf("opening device state: %w", ErrNoState)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("opening device state: %w", err)
	}
	kf, err := decodeKeyFile(raw)
	if err != nil {
		// Nothing can be opened without it; an edited file counts as
		// the last wrong PIN.
		return v.wipeFor(wipedTampered)
	}
	h, haveHint := readHint(v.st)
	if haveHint && overdue(h.lastContact, h.wipeAfter, o.now()) {
		return v.wipeFor(wipedOverdue)
	}
	c, ok := kf.used()
	if !ok {
		return v.wipeFor(wipedTampered)
	}
	// The attempt is recorded before the PIN is tried: the two slots it
	// may open are taken out of the file, which is written and synced,
	// so stopping the device during the costly derivation saves nothing.
	tried := [2]slot{kf.groups[0][c], kf.groups[1][c]}
	if kf.tries > 0 {
		kf.groups[0][c], kf.groups[1][c] = zeroSlot, zeroSlot
		if err := v.st.PutSecret(keyFileName, kf.encode()); err != nil {
			return nil, nil, fmt.Errorf("opening device state: recording the attempt: %w", err)
		}
	}
	kek := deriveKEK(pin, kf.salt[:], kf.kdf)
	var (
		kind byte
		body []byte
	)
	// Both slots are tried whatever the first gives.
	for g := range tried {
		if k, b, ok := kf.open(g, c, &tried[g], kek); ok && kind == 0 {
			kind, body = k, b
		}
	}
	switch kind {
	case slotKindKey:
		ks := &keySet{kdf: kf.kdf, salt: kf.salt, tries: kf.tries, kek: kek,
			dek: body[:keySize], duressKEK: body[keySize:]}
		v.weakPIN = CheckNewPIN(pin) != nil
		return v.unlock(ks)
	case slotKindDuress:
		wipeAfter := int64(0)
		if haveHint {
			wipeAfter = h.wipeAfter
		}
		v.weakPIN = CheckNewPIN(pin) != nil
		return v.duress(kf, kek, settings{maxFailed: kf.tries, wipeAfter: wipeAfter, lastContact: o.now().Unix()})
	}
	clear(kek)
	if kf.tries > 0 && c+1 >= int(kf.tries) {
		return v.wipeFor(wipedFailures)
	}
	left := -1
	if kf.tries > 0 {
		left = int(kf.tries) - (c + 1)
	}
	return nil, nil, fmt.Errorf("opening device state: %w", &WrongPINError{Left: left})
}

// unlock finishes opening the vault with the PIN's keys. The PIN opened
// a slot, so first it writes a fresh key file, which restores the slots
// the attempts used (this one's included): whatever fails after that (an
// I/O error, a damaged record) costs no try, and a device whose records
// cannot be read is not wiped by its owner's right PINs. Then it reads the
// records and settings, and rewrites the key file if the settings' limit
// on wrong PINs differs from the key file's.
func (v *vault) unlock(ks *keySet) (*vault, *WipeReport, error) {
	v.keys = ks
	fail := func(err error) (*vault, *WipeReport, error) {
		v.forgetLocked()
		return nil, nil, fmt.Errorf("opening device state: %w", err)
	}
	if err := v.writeKeys(); err != nil {
		return fail(err)
	}
	if err := v.setKey(ks.dek); err != nil {
		return fail(err)
	}
	if err := v.loadIndex(); err != nil {
		return fail(err)
	}
	sb, err := v.getLocked(settingsRec)
	if err != nil {
		return fail(fmt.Errorf("reading settings: %w", err))
	}
	if v.settings, err = decodeSettings(sb); err != nil {
		return fail(err)
	}
	// The authoritative policy is the encrypted one.
	if overdue(v.settings.lastContact, v.settings.wipeAfter, v.opts.now()) {
		v.forgetLocked()
		return v.wipeFor(wipedOverdue)
	}
	if ks.tries != v.settings.maxFailed {
		ks.tries = v.settings.maxFailed
		if err := v.writeKeys(); err != nil {
			return fail(err)
		}
	}
	if err := v.writeHint(); err != nil {
		return fail(err)
	}
	// A key file of the first format left by a migration cut short.
	if err := v.st.Shred(metaFile); err != nil && !notExist(err) {
		return fail(err)
	}
	return v, nil, nil
}

// duress erases the state, as a wipe does by destroying the key file, and
// makes in its place a new, empty device whose PIN is the duress PIN (kek is its key), with
// the policy of the key file and the hint. It returns that device as if
// the PIN had opened it: no report, no error, no log.
//
// The salt and KDF cost stay, so that no second derivation makes the
// duress PIN slower than the PIN. Someone holding a copy of the files from
// before can see by the salt that the new device is the old one; he can
// also guess the PINs on that copy (see the README).
func (v *vault) duress(kf *keyFile, kek []byte, st settings) (*vault, *WipeReport, error) {
	ks := &keySet{kdf: kf.kdf, salt: kf.salt, tries: kf.tries, kek: kek, dek: make([]byte, keySize)}
	if _, err := io.ReadFull(v.opts.rand, ks.dek); err != nil {
		return nil, nil, fmt.Errorf("opening device state: reading randomness: %w", err)
	}
	if err := ks.setDuress("", v.opts.rand); err != nil {
		return nil, nil, fmt.Errorf("opening device state: %w", err)
	}
	// The new state is written first and the key file swapped last
	// (initState), so a crash or an error leaves the old key file whole,
	// which this PIN opens again to do the same, or the new state whole:
	// never a key file the next attempt would take for an edited one and
	// wipe, with a notice, in front of whoever made the user type this.
	var done *committedError
	if err := v.initState(ks, st); err != nil && !errors.As(err, &done) {
		v.forgetLocked()
		return nil, nil, fmt.Errorf("opening device state: %w", err)
	}
	// An error after the swap (the old key file's bytes, the hint) is not
	// shown: the new state is whole, the old key file gone from the
	// directory, and the next unlock writes the hint.
	return v, nil, nil
}

// wipeFor wipes a vault that was not unlocked and returns the error
// openVault reports.
func (v *vault) wipeFor(why unlockResult) (*vault, *WipeReport, error) {
	rep, err := v.wipe()
	if err != nil {
		return nil, rep, fmt.Errorf("opening device state: wiping: %w", err)
	}
	reason := map[unlockResult]string{
		wipedFailures: "too many wrong PINs",
		wipedOverdue:  "too long without reaching the server",
		wipedTampered: "the key file was edited",
	}[why]
	rep.Reason = reason
	return nil, rep, fmt.Errorf("opening device state: %s: %w", reason, ErrWiped)
}

// changePIN sets a new PIN and duress PIN (empty: none), after checking
// the old PIN; both must pass CheckNewPIN. The data key stays; the salt
// and both slot groups are new. A non-zero kdf is the new Argon2id cost
// (the zero value keeps the current one).
func (v *vault) changePIN(old, pin, duress string, kdf KDFParams) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed
	}
	if err := checkNewPINs(pin, duress); err != nil {
		return fmt.Errorf("changing PIN: %w", err)
	}
	if subtle.ConstantTimeCompare(deriveKEK(old, v.keys.salt[:], v.keys.kdf), v.keys.kek) != 1 {
		return fmt.Errorf("changing PIN: %w", ErrWrongPIN)
	}
	ks := &keySet{kdf: v.keys.kdf, tries: v.keys.tries, dek: v.keys.dek}
	if kdf != (KDFParams{}) {
		if !kdf.valid() {
			return fmt.Errorf("changing PIN: KDF parameters out of range (t=%d m=%d p=%d)", kdf.Time, kdf.MemoryKiB, kdf.Threads)
		}
		ks.kdf = kdf
	}
	if _, err := io.ReadFull(v.opts.rand, ks.salt[:]); err != nil {
		return fmt.Errorf("changing PIN: reading randomness: %w", err)
	}
	if err := ks.setDuress(duress, v.opts.rand); err != nil {
		return fmt.Errorf("changing PIN: %w", err)
	}
	ks.kek = deriveKEK(pin, ks.salt[:], ks.kdf)
	prev := v.keys
	v.keys = ks
	if err := v.writeKeys(); err != nil {
		v.keys = prev
		return fmt.Errorf("changing PIN: %w", err)
	}
	clear(prev.kek)
	clear(prev.duressKEK)
	v.weakPIN = false
	if v.settings.flags&settingsUpgraded != 0 {
		st := v.settings
		st.flags &^= settingsUpgraded
		if err := v.saveSettings(st); err != nil {
			return fmt.Errorf("changing PIN: %w", err)
		}
	}
	return nil
}

// close forgets the keys; the files stay.
func (v *vault) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.forgetLocked()
}

func (v *vault) forgetLocked() {
	if v.keys != nil {
		v.keys.forget()
	}
	clear(v.nameKey)
	v.keys, v.nameKey, v.rec = nil, nil, nil
	v.names, v.logs = map[string]string{}, map[string]*logState{}
	v.closed = true
}

// WipeReport says what a wipe did.
type WipeReport struct {
	// Reason is why the device was wiped.
	Reason string
	// Overwritten counts the key files overwritten before being removed
	// (the other files are ciphertext under keys that were only in them);
	// Removed counts all files removed.
	Overwritten, Removed int
	// Took is how long the wipe took.
	Took time.Duration
}

// wipe destroys the state by crypto-erase: first the key file, the only
// place the data key exists, is overwritten with random bytes, synced and
// removed, and the directory synced; from then on nothing left of the
// state (or of any copy of it taken without the key file) can be
// decrypted. Then the rest is deleted.
//
// Overwriting is best effort: flash storage and copy-on-write file systems
// may keep the old blocks, which is why the key file is small and nothing
// else holds a key (see the README).
func (v *vault) wipe() (*WipeReport, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	start := v.opts.now()
	rep := &WipeReport{}
	v.forgetLocked()
	var errs []error
	for _, name := range []string{keyFileName, metaFile} {
		err := v.st.Shred(name)
		switch {
		case err == nil:
			rep.Overwritten++
		case !notExist(err):
			errs = append(errs, err)
		}
	}
	removed, err := v.st.Destroy()
	if err != nil {
		errs = append(errs, err)
	}
	rep.Removed = removed + rep.Overwritten
	rep.Took = v.opts.now().Sub(start)
	if len(errs) > 0 {
		return rep, fmt.Errorf("wiping device state: %w", errors.Join(errs...))
	}
	return rep, nil
}
