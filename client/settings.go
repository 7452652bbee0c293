package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// settings are the authoritative copies of the wipe policy, in the
// encrypted settings record.
type settings struct {
	maxFailed   uint32
	wipeAfter   int64 // seconds; 0 never
	lastContact int64 // Unix seconds
	flags       uint8
}

// settingsUpgraded is set on a device moved from the first format, whose
// duress PIN (if it had one) could not be carried over; ChangePIN clears it.
const settingsUpgraded = 1

// Settings records: version 1 (21 bytes, first format) and version 2
// (22 bytes, with flags).
func (s settings) encode() []byte {
	b := []byte{2}
	b = binary.BigEndian.AppendUint32(b, s.maxFailed)
	b = binary.BigEndian.AppendUint64(b, uint64(s.wipeAfter))
	b = binary.BigEndian.AppendUint64(b, uint64(s.lastContact))
	return append(b, s.flags)
}

func decodeSettings(b []byte) (settings, error) {
	if !(len(b) == 21 && b[0] == 1) && !(len(b) == 22 && b[0] == 2) {
		return settings{}, fmt.Errorf("%w: settings record", ErrCorrupt)
	}
	s := settings{
		maxFailed:   binary.BigEndian.Uint32(b[1:]),
		wipeAfter:   int64(binary.BigEndian.Uint64(b[5:])),
		lastContact: int64(binary.BigEndian.Uint64(b[13:])),
	}
	if b[0] == 2 {
		s.flags = b[21]
	}
	if s.wipeAfter < 0 || s.lastContact < 0 {
		return settings{}, fmt.Errorf("%w: settings record has a negative time", ErrCorrupt)
	}
	if s.maxFailed > maxTries || s.flags&^settingsUpgraded != 0 {
		return settings{}, fmt.Errorf("%w: settings record out of range", ErrCorrupt)
	}
	return s, nil
}

// The hint file is a plaintext copy of the overdue-wipe policy, so that a
// locked device past its deadline wipes itself at any PIN, right or wrong:
//
//	magic "ANH1" || lastContact i64 || wipeAfter i64
//
// It is not authenticated (nothing PIN-independent on the device could
// authenticate it against someone who reads the code): editing or deleting
// it only delays the wipe to the first right PIN, after which the
// encrypted settings decide.
const (
	hintFileName = "hint"
	hintMagic    = "ANH1"
	hintLen      = len(hintMagic) + 8 + 8
)

type hint struct {
	lastContact, wipeAfter int64
}

func (h hint) encode() []byte {
	b := append([]byte(nil), hintMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.lastContact))
	return binary.BigEndian.AppendUint64(b, uint64(h.wipeAfter))
}

func decodeHint(b []byte) (hint, error) {
	if len(b) != hintLen || string(b[:len(hintMagic)]) != hintMagic {
		return hint{}, fmt.Errorf("%w: hint file", ErrCorrupt)
	}
	h := hint{
		lastContact: int64(binary.BigEndian.Uint64(b[4:])),
		wipeAfter:   int64(binary.BigEndian.Uint64(b[12:])),
	}
	if h.lastContact < 0 || h.wipeAfter < 0 {
		return hint{}, fmt.Errorf("%w: hint file has a negative time", ErrCorrupt)
	}
	return h, nil
}

// readHint returns the hint, or false when there is none (or it does not
// parse: it is only a hint).
func readHint(st Storage) (hint, bool) {
	b, err := st.Get(hintFileName)
	if err != nil {
		return hint{}, false
	}
	h, err := decodeHint(b)
	return h, err == nil
}

func (v *vault) writeHint() error {
	h := hint{lastContact: v.settings.lastContact, wipeAfter: v.settings.wipeAfter}
	if cur, ok := readHint(v.st); ok && cur == h {
		return nil
	}
	if err := v.st.Put(hintFileName, h.encode()); err != nil {
		return fmt.Errorf("writing the hint file: %w", err)
	}
	return nil
}

// overdue reports whether a device last in contact at lastContact must wipe
// itself at now.
func overdue(lastContact, wipeAfter int64, now time.Time) bool {
	if wipeAfter <= 0 {
		return false
	}
	return now.Unix()-lastContact >= wipeAfter
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
	if maxFailed > maxTries {
		return fmt.Errorf("setting the wipe policy: more than %d wrong PINs", maxTries)
	}
	st := v.settings
	st.maxFailed, st.wipeAfter = maxFailed, wipeAfter
	if err := v.saveSettings(st); err != nil {
		return err
	}
	if v.keys.tries != maxFailed {
		v.keys.tries = maxFailed
		return v.writeKeys()
	}
	return nil
}

// saveSettings writes the settings record, then the hint.
func (v *vault) saveSettings(st settings) error {
	if err := v.putLocked(settingsRec, st.encode()); err != nil {
		return err
	}
	v.settings = st
	return v.writeHint()
}

// overdue reports whether the device must wipe itself at t.
func (v *vault) overdue(t time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return !v.closed && overdue(v.settings.lastContact, v.settings.wipeAfter, t)
}

func notExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
