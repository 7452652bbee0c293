package identity

import (
	"crypto/ed25519"
	"fmt"
	"time"
)

// WipeNonceSize is the length of a wipe command's nonce.
const WipeNonceSize = 16

// WipeCommand is the directory's order to a device to delete its keys and
// data at once (the kill switch).
//
// Encoding: version uint8 = 2, device_id [16], issued_at uint64 Unix
// seconds, nonce [16], signer uint16 length || OnlineKeyCertificate of the
// directory key, signature [64] by that key over label || the fields
// before it.
type WipeCommand struct {
	DeviceID  DeviceID
	IssuedAt  time.Time
	Nonce     [WipeNonceSize]byte
	Signer    *OnlineKeyCertificate
	Signature []byte
}

func (w *WipeCommand) tbs() []byte {
	var e encoder
	e.u8(directoryFormatVersion)
	e.raw(w.DeviceID[:])
	e.u64(uint64(w.IssuedAt.Unix()))
	e.raw(w.Nonce[:])
	e.signer(w.Signer)
	return e.b
}

// Encode returns the canonical encoding.
func (w *WipeCommand) Encode() []byte { return append(w.tbs(), w.Signature...) }

// DecodeWipeCommand strictly decodes a wipe command without verifying it.
func DecodeWipeCommand(b []byte) (*WipeCommand, error) {
	d := decoder{b: b}
	d.versionN("wipe command", directoryFormatVersion)
	var w WipeCommand
	copy(w.DeviceID[:], d.take("device_id", DeviceIDSize))
	at := d.u64("issued_at")
	copy(w.Nonce[:], d.take("nonce", WipeNonceSize))
	w.Signer = d.signer()
	w.Signature = d.fixed("signature", ed25519.SignatureSize)
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decoding wipe command: %w", err)
	}
	if at > 1<<62 {
		return nil, fmt.Errorf("decoding wipe command: %w: time out of range", ErrMalformed)
	}
	w.IssuedAt = time.Unix(int64(at), 0)
	return &w, nil
}

// Verify checks the chain (root → directory key certificate valid at the
// issue time → signature) and that the command is for device self.
func (w *WipeCommand) Verify(root RootPublicKey, self DeviceID) error {
	if err := verifyChain(root, w.Signer, RoleDirectory, w.IssuedAt, labelWipe, w.tbs(), w.Signature); err != nil {
		return fmt.Errorf("verifying wipe command: %w", err)
	}
	if w.DeviceID != self {
		return fmt.Errorf("verifying wipe command: %w: for device %s, not %s", ErrInvalid, w.DeviceID, self)
	}
	return nil
}

// WipeConfirmation is a device's signed statement that it executed a wipe
// command: label || encoded command, signed by the device key.
type WipeConfirmation struct {
	Command   []byte // the encoded WipeCommand
	Signature []byte
}

// ConfirmWipe signs the confirmation of cmd with the device key.
func ConfirmWipe(priv ed25519.PrivateKey, cmd *WipeCommand) *WipeConfirmation {
	enc := cmd.Encode()
	return &WipeConfirmation{Command: enc, Signature: ed25519.Sign(priv, labelled(labelWipeConfirm, enc))}
}

// Verify checks that the confirmation is for cmd and signed by the device
// of cert.
func (c *WipeConfirmation) Verify(cert *DeviceCertificate, cmd *WipeCommand) error {
	enc := cmd.Encode()
	if string(enc) != string(c.Command) {
		return fmt.Errorf("verifying wipe confirmation: %w: for another command", ErrInvalid)
	}
	if cmd.DeviceID != cert.DeviceID {
		return fmt.Errorf("verifying wipe confirmation: %w: command for %s, certificate of %s", ErrInvalid, cmd.DeviceID, cert.DeviceID)
	}
	if len(c.Signature) != ed25519.SignatureSize || !ed25519.Verify(cert.Key, labelled(labelWipeConfirm, enc), c.Signature) {
		return fmt.Errorf("verifying wipe confirmation: %w", ErrBadSignature)
	}
	return nil
}
