package client

import "errors"

// Errors of the client. Failures wrap one of these (or an error of a lower
// layer) with context; match them with errors.Is.
var (
	// ErrWrongPIN is returned when the PIN does not unlock the device.
	ErrWrongPIN = errors.New("client: wrong PIN")
	// ErrWiped is returned when the device state was wiped (too many
	// wrong PINs, an edited key file, too long without reaching the
	// server, remote wipe) or is absent after a wipe. The duress PIN does
	// not return it (see Open).
	ErrWiped = errors.New("client: device wiped")
	// ErrNoState is returned when the state directory holds no device.
	ErrNoState = errors.New("client: no device state")
	// ErrExists is returned when creating a device over an existing one.
	ErrExists = errors.New("client: device state already exists")
	// ErrCorrupt is returned when stored state fails authentication or
	// cannot be parsed.
	ErrCorrupt = errors.New("client: corrupt device state")
	// ErrNotFound is returned for a missing record.
	ErrNotFound = errors.New("client: not found")
	// ErrClosed is returned after the client was closed or wiped.
	ErrClosed = errors.New("client: closed")
	// ErrBadContent is returned for malformed application content.
	ErrBadContent = errors.New("client: malformed content")
	// ErrAttachment is returned when an attachment fails to decrypt or
	// does not match its reference.
	ErrAttachment = errors.New("client: attachment does not verify")
	// ErrBadPIN is returned for a new PIN or duress PIN that cannot be
	// used (CheckNewPIN says why), or a duress PIN equal to the PIN.
	ErrBadPIN = errors.New("client: unusable PIN")
)
