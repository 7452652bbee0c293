package client

import (
	"fmt"
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
