package identity

import "errors"

// Sentinel errors; functions wrap them with context. Match with errors.Is.
var (
	// ErrMalformed: bytes are not a valid encoding.
	ErrMalformed = errors.New("identity: malformed encoding")
	// ErrUnknownVersion: an encoding version this package does not know.
	ErrUnknownVersion = errors.New("identity: unknown format version")
	// ErrBadSignature: a signature does not verify.
	ErrBadSignature = errors.New("identity: bad signature")
	// ErrExpired: a certificate is past its not-after time.
	ErrExpired = errors.New("identity: certificate expired")
	// ErrNotYetValid: a certificate is before its not-before time.
	ErrNotYetValid = errors.New("identity: certificate not yet valid")
	// ErrRevoked: the device has been revoked.
	ErrRevoked = errors.New("identity: device revoked")
	// ErrInvalidUsername: a username outside the allowed form.
	ErrInvalidUsername = errors.New("identity: invalid username")
	// ErrInvalidName: a distributor name outside the allowed form.
	ErrInvalidName = errors.New("identity: invalid name")
	// ErrInvalidCredential: an MLS credential that is not a device
	// certificate, or whose certificate does not match the leaf key.
	ErrInvalidCredential = errors.New("identity: invalid credential")
	// ErrInvalidCode: an activation code that is not well formed.
	ErrInvalidCode = errors.New("identity: invalid activation code")
	// ErrInvalid: a field value out of range when making an object.
	ErrInvalid = errors.New("identity: invalid value")
)
