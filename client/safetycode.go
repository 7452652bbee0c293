package client

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"anom/identity"
)

// A safety code is what a safety number's QR code carries, so that one
// side can scan the other's screen instead of reading 60 digits:
//
//	anom-safety:1:<shower device ID>:<other device ID>:<60 digits>
//
// "1" is the format's version; the shower is the device whose screen
// shows the code; the other device is the one the number was computed
// with (the scanner, if nobody is in between); the digits are the
// SafetyNumber, which hashes both devices' signature keys (the joint
// fingerprint of the two). Device IDs are 32 lower-case hex digits.
const safetyCodePrefix = "anom-safety:"

// SafetyCodeVersion is the version of the safety codes this client makes
// and reads.
const SafetyCodeVersion = 1

var (
	// ErrSafetyCode is returned for text that is not a safety code.
	ErrSafetyCode = errors.New("client: not an anom safety code")
	// ErrSafetyMismatch is returned when a scanned safety code does not
	// match what this device computes: another key on either side (a
	// device in between), or the code of another comparison.
	ErrSafetyMismatch = errors.New("client: the safety numbers differ")
)

// SafetyCode is a parsed safety code.
type SafetyCode struct {
	// Shower is the device showing the code.
	Shower identity.DeviceID
	// Other is the device the shower computed Number with.
	Other identity.DeviceID
	// Number is the safety number of the two, as the shower computed it.
	Number SafetyNumber
}

// String is the code's text, to put in a QR code.
func (s SafetyCode) String() string {
	var sb strings.Builder
	sb.WriteString(safetyCodePrefix)
	sb.WriteString(strconv.Itoa(SafetyCodeVersion))
	sb.WriteByte(':')
	sb.WriteString(s.Shower.String())
	sb.WriteByte(':')
	sb.WriteString(s.Other.String())
	sb.WriteByte(':')
	for _, g := range s.Number {
		fmt.Fprintf(&sb, "%05d", g)
	}
	return sb.String()
}

// ParseSafetyCode reads a safety code (the text of a scanned QR code). It
// accepts only the exact form String makes.
func ParseSafetyCode(text string) (SafetyCode, error) {
	rest, ok := strings.CutPrefix(text, safetyCodePrefix)
	if !ok {
		return SafetyCode{}, fmt.Errorf("%w: it does not start with %q", ErrSafetyCode, safetyCodePrefix)
	}
	parts := strings.Split(rest, ":")
	if len(parts) == 0 || parts[0] != strconv.Itoa(SafetyCodeVersion) {
		return SafetyCode{}, fmt.Errorf("%w: version %.8q, this app reads version %d (update the app that made it, or this one)", ErrSafetyCode, parts[0], SafetyCodeVersion)
	}
	if len(parts) != 4 {
		return SafetyCode{}, fmt.Errorf("%w: %d fields, want 4 after the prefix", ErrSafetyCode, len(parts))
	}
	var s SafetyCode
	for i, d := range []*identity.DeviceID{&s.Shower, &s.Other} {
		if p := parts[1+i]; p != strings.ToLower(p) {
			return SafetyCode{}, fmt.Errorf("%w: device ID %.40q is not lower-case hex", ErrSafetyCode, p)
		}
		id, err := identity.ParseDeviceID(parts[1+i])
		if err != nil {
			return SafetyCode{}, fmt.Errorf("%w: %v", ErrSafetyCode, err)
		}
		*d = id
	}
	digits := parts[3]
	if len(digits) != 5*len(s.Number) {
		return SafetyCode{}, fmt.Errorf("%w: %d digits, want %d", ErrSafetyCode, len(digits), 5*len(s.Number))
	}
	for i := range s.Number {
		var g uint32
		for _, c := range []byte(digits[5*i : 5*i+5]) {
			if c < '0' || c > '9' {
				return SafetyCode{}, fmt.Errorf("%w: %q in the number is not a digit", ErrSafetyCode, c)
			}
			g = g*10 + uint32(c-'0')
		}
		s.Number[i] = g
	}
	return s, nil
}

// Check compares a code scanned from peer's screen with what this device
// (self) computes: the code must be peer's, made for self, and carry the
// number self computes with peer's key as self knows it. An error wraps
// ErrSafetyMismatch and says which part differs; the device must then not
// be marked verified.
func (s SafetyCode) Check(self, peer identity.DeviceID, computed SafetyNumber) error {
	switch {
	case s.Shower != peer:
		return fmt.Errorf("%w: the code is device %s's, not device %s's (the one being compared)", ErrSafetyMismatch, s.Shower, peer)
	case s.Other != self:
		return fmt.Errorf("%w: the code compares with device %s, not with this device %s (it is another comparison's code, or someone is in between)", ErrSafetyMismatch, s.Other, self)
	case s.Number != computed:
		return fmt.Errorf("%w: the number on the other screen is not the one this device computes: one of the two keys is not the one the other side holds (someone may be in between)", ErrSafetyMismatch)
	}
	return nil
}

// SafetyCode returns the safety code this device shows for its
// comparison with peer.
func (c *Client) SafetyCode(peer *identity.DeviceCertificate) (SafetyCode, error) {
	n, err := c.SafetyNumber(peer)
	if err != nil {
		return SafetyCode{}, err
	}
	id, err := c.Identity()
	if err != nil {
		return SafetyCode{}, err
	}
	return SafetyCode{Shower: id.DeviceID, Other: peer.DeviceID, Number: n}, nil
}
