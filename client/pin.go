package client

import (
	"fmt"
	"os"
	"path/filepath"
	"unicode"
	"unicode/utf8"
)

// MinPINLength is the fewest characters a new PIN (or duress PIN) may have:
// six digits, or a passphrase of six or more characters.
const MinPINLength = 6

// maxPINLength bounds what is fed to Argon2id.
const maxPINLength = 1024

// CheckNewPIN reports whether pin may be set as a new PIN or duress PIN:
// at least MinPINLength characters, not one character repeated, and not a
// straight run of digits (123456, 987654). The error matches ErrBadPIN
// and says why. Devices made with a shorter PIN keep it until it is
// changed (Client.PINStatus).
func CheckNewPIN(pin string) error {
	n := utf8.RuneCountInString(pin)
	switch {
	case n < MinPINLength:
		return fmt.Errorf("%w: shorter than %d characters (use at least %d digits, or a passphrase)", ErrBadPIN, MinPINLength, MinPINLength)
	case len(pin) > maxPINLength:
		return fmt.Errorf("%w: longer than %d bytes", ErrBadPIN, maxPINLength)
	case !utf8.ValidString(pin):
		return fmt.Errorf("%w: not valid UTF-8", ErrBadPIN)
	}
	first, _ := utf8.DecodeRuneInString(pin)
	same, digits, up, down := true, true, true, true
	prev := rune(-1)
	for _, r := range pin {
		same = same && r == first
		digits = digits && r >= '0' && r <= '9'
		if prev >= 0 {
			up = up && r == prev+1
			down = down && r == prev-1
		}
		prev = r
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: holds a control character", ErrBadPIN)
		}
	}
	switch {
	case same:
		return fmt.Errorf("%w: one character repeated", ErrBadPIN)
	case digits && (up || down):
		return fmt.Errorf("%w: a straight run of digits", ErrBadPIN)
	}
	return nil
}

func checkNewPINs(pin, duress string) error {
	if err := CheckNewPIN(pin); err != nil {
		return err
	}
	if duress == "" {
		return nil
	}
	if duress == pin {
		return fmt.Errorf("%w: the duress PIN is the PIN", ErrBadPIN)
	}
	if err := CheckNewPIN(duress); err != nil {
		return fmt.Errorf("duress PIN: %w", err)
	}
	return nil
}

// PINStatus says what about a device's PINs needs the user's attention.
type PINStatus struct {
	// Weak is set when the PIN that unlocked the device would not be
	// accepted as a new PIN (CheckNewPIN): a device made before the
	// current rules. ChangePIN to a stronger one.
	Weak bool
	// DuressDropped is set on a device moved from the first state format:
	// its duress PIN, if it had one, was dropped (the old format kept only
	// a verifier of it). ChangePIN sets one again.
	DuressDropped bool
}

// PINStatus reports whether the user should change the PIN.
func (c *Client) PINStatus() PINStatus {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	return PINStatus{Weak: c.v.weakPIN, DuressDropped: c.v.settings.flags&settingsUpgraded != 0}
}

// WrongPINError is the error of a PIN that did not unlock the device; it
// matches ErrWrongPIN.
type WrongPINError struct {
	// Left is how many PINs may still be tried: if the last of them is
	// wrong too, the device wipes itself. It is at least 1 (the wrong PIN
	// that uses up the last try wipes the device and returns ErrWiped),
	// or -1 when the device has no limit.
	Left int
}

func (e *WrongPINError) Error() string {
	switch {
	case e.Left < 0:
		return ErrWrongPIN.Error()
	case e.Left == 1:
		return ErrWrongPIN.Error() + " (1 try left before the device is wiped)"
	}
	return fmt.Sprintf("%s (%d tries left before the device is wiped)", ErrWrongPIN, e.Left)
}

// Is makes a *WrongPINError match ErrWrongPIN.
func (e *WrongPINError) Is(target error) bool { return target == ErrWrongPIN }

// PINTriesLeft reports, without trying a PIN, how many PINs the device in
// dir still accepts before a wrong one wipes it: the limit, less the
// wrong PINs typed since the right one last was. It is -1 when the device
// has no limit. The count is read from the key file (its destroyed
// slots); an edited key file, which the next attempt wipes, counts 0.
func PINTriesLeft(dir string) (int, error) {
	raw, err := os.ReadFile(filepath.Join(dir, keyFileName))
	if notExist(err) {
		if _, err := os.Stat(filepath.Join(dir, metaFile)); err == nil {
			return -1, nil // the first format: its count is not read here
		}
		return 0, fmt.Errorf("reading the wrong-PIN count: %w", ErrNoState)
	}
	if err != nil {
		return 0, fmt.Errorf("reading the wrong-PIN count: %w", err)
	}
	kf, err := decodeKeyFile(raw)
	if err != nil {
		return 0, nil
	}
	used, ok := kf.used()
	switch {
	case !ok:
		return 0, nil
	case kf.tries == 0:
		return -1, nil
	}
	return int(kf.tries) - used, nil
}
