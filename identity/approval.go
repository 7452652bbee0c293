package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"
)

// A further device of an existing user is activated only with an
// approval: an existing device of that user, or the network root (the
// admin), signs the new device's signature key. The new device shows a
// PairingRequest as a pairing code; the approving side parses it, shows
// its fingerprint for the user to compare with the new device's screen,
// and signs a DeviceApproval. The server checks the approval at
// activation and appends it to the transparency log with the new
// certificate, so every device of the user sees who approved it.

// PairingNonceSize is the length of a pairing request's nonce.
const PairingNonceSize = 16

// PairingRequest is what a new device asks to be approved: its username
// and signature key, and a fresh nonce.
//
// Encoding: version uint8 = 1, username uint8 length || bytes, key [32],
// nonce [16].
type PairingRequest struct {
	Username string
	Key      ed25519.PublicKey
	Nonce    [PairingNonceSize]byte
}

// NewPairingRequest makes a request for username and key with a random
// nonce.
func NewPairingRequest(username string, key ed25519.PublicKey, rand io.Reader) (*PairingRequest, error) {
	name, err := CanonicalUsername(username)
	if err != nil {
		return nil, fmt.Errorf("making pairing request: %w", err)
	}
	if len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("making pairing request: %w: key is %d bytes", ErrInvalid, len(key))
	}
	r := &PairingRequest{Username: name, Key: append(ed25519.PublicKey(nil), key...)}
	if _, err := io.ReadFull(rand, r.Nonce[:]); err != nil {
		return nil, fmt.Errorf("making pairing request: %w", err)
	}
	return r, nil
}

func (r *PairingRequest) encode() []byte {
	var e encoder
	e.u8(formatVersion)
	e.str8(r.Username)
	e.raw(r.Key)
	e.raw(r.Nonce[:])
	return e.b
}

// Code is the request as text to carry to the approving device (typed,
// pasted or scanned): base32 in groups of four characters.
func (r *PairingRequest) Code() string {
	s := codeEncoding.EncodeToString(r.encode())
	var b strings.Builder
	for i := 0; i < len(s); i += codeGroupChars {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i:min(i+codeGroupChars, len(s))])
	}
	return b.String()
}

// ParsePairingCode decodes a Code, ignoring case, dashes and spaces.
func ParsePairingCode(s string) (*PairingRequest, error) {
	clean := strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' || r == '\n' {
			return -1
		}
		return r
	}, strings.ToUpper(s))
	b, err := codeEncoding.DecodeString(clean)
	if err != nil {
		return nil, fmt.Errorf("parsing pairing code: %w: %v", ErrMalformed, err)
	}
	r, err := DecodePairingRequest(b)
	if err != nil {
		return nil, fmt.Errorf("parsing pairing code: %w", err)
	}
	return r, nil
}

// Fingerprint is what the user compares between the new device's screen
// and the approving device's: six groups of five digits derived from the
// whole request.
func (r *PairingRequest) Fingerprint() string {
	h := sha256.Sum256(labelled(labelPairing, r.encode()))
	var b strings.Builder
	for i := 0; i < 6; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		v := binary.BigEndian.Uint64(append([]byte{0, 0, 0}, h[i*5:i*5+5]...))
		fmt.Fprintf(&b, "%05d", v%100000)
	}
	return b.String()
}

// ApproverKind says who signed a DeviceApproval.
type ApproverKind uint8

// Approver kinds.
const (
	// ApproverDevice: an existing device of the same user.
	ApproverDevice ApproverKind = 1
	// ApproverRoot: the admin, through the server's directory key (whose
	// certificate chains to the network root).
	ApproverRoot ApproverKind = 2
)

func (k ApproverKind) String() string {
	switch k {
	case ApproverDevice:
		return "device"
	case ApproverRoot:
		return "admin"
	}
	return fmt.Sprintf("approver(%d)", uint8(k))
}

// DeviceApproval approves a further device of a user.
//
// Encoding, big-endian: version uint8 = 2, username uint8 length ||
// bytes, key [32] (the new device's signature key), nonce [16] (the
// pairing request's), issued_at uint64 Unix seconds, approver_kind uint8,
// approver [16] (the approving device's ID; zero for the admin), signer
// uint16 length || OnlineKeyCertificate of the directory key (empty for a
// device approval), signature [64] by the approving device's key or the
// directory key over label || the fields before it.
type DeviceApproval struct {
	Username string
	Key      ed25519.PublicKey
	Nonce    [PairingNonceSize]byte
	IssuedAt time.Time
	Kind     ApproverKind
	Approver DeviceID
	// Signer is, for an admin approval, the root's certificate of the
	// directory key that signed it; nil for a device approval.
	Signer *OnlineKeyCertificate
	// Signature is by the approving device's key or by the directory key.
	Signature []byte
}

// MaxDeviceApprovalSize bounds an encoded approval.
const MaxDeviceApprovalSize = 1 + 1 + MaxUsernameLen + ed25519.PublicKeySize + PairingNonceSize + 8 + 1 + DeviceIDSize + 2 + maxSignerSize + ed25519.SignatureSize

func (a *DeviceApproval) tbs() []byte {
	var e encoder
	e.u8(directoryFormatVersion)
	e.str8(a.Username)
	e.raw(a.Key)
	e.raw(a.Nonce[:])
	e.u64(uint64(a.IssuedAt.Unix()))
	e.u8(uint8(a.Kind))
	e.raw(a.Approver[:])
	e.signer(a.Signer)
	return e.b
}

// Encode returns the canonical encoding.
func (a *DeviceApproval) Encode() []byte { return append(a.tbs(), a.Signature...) }

// ApproveDevice signs an approval of the device of req by the device of
// approver (whose private key is priv). The request must be for the
// approver's own username.
func ApproveDevice(priv ed25519.PrivateKey, approver *DeviceCertificate, req *PairingRequest, now time.Time) (*DeviceApproval, error) {
	if req.Username != approver.Username {
		return nil, fmt.Errorf("approving device: %w: request for %q, approver is %q", ErrInvalid, req.Username, approver.Username)
	}
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), approver.Key) {
		return nil, fmt.Errorf("approving device: %w: private key is not the approver's", ErrInvalid)
	}
	a, err := newApproval(req, now, ApproverDevice, approver.DeviceID)
	if err != nil {
		return nil, err
	}
	a.Signature = ed25519.Sign(priv, labelled(labelApproval, a.tbs()))
	return a, nil
}

func newApproval(req *PairingRequest, now time.Time, kind ApproverKind, approver DeviceID) (*DeviceApproval, error) {
	if err := checkCanonical(req.Username); err != nil {
		return nil, fmt.Errorf("approving device: %w", err)
	}
	if len(req.Key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("approving device: %w: key is %d bytes", ErrInvalid, len(req.Key))
	}
	return &DeviceApproval{Username: req.Username, Key: append(ed25519.PublicKey(nil), req.Key...), Nonce: req.Nonce,
		IssuedAt: time.Unix(max(now.Unix(), 0), 0), Kind: kind, Approver: approver}, nil
}

// DecodeDeviceApproval strictly decodes an approval without verifying it.
func DecodeDeviceApproval(b []byte) (*DeviceApproval, error) {
	d := decoder{b: b}
	d.versionN("device approval", directoryFormatVersion)
	var a DeviceApproval
	a.Username = d.str8("username")
	a.Key = d.fixed("key", ed25519.PublicKeySize)
	copy(a.Nonce[:], d.take("nonce", PairingNonceSize))
	at := d.u64("issued_at")
	a.Kind = ApproverKind(d.u8("approver_kind"))
	copy(a.Approver[:], d.take("approver", DeviceIDSize))
	if sb := d.bytes16("signer", maxSignerSize); len(sb) > 0 {
		c, err := DecodeOnlineKeyCertificate(sb)
		if err != nil {
			return nil, fmt.Errorf("decoding device approval: %w: signer: %w", ErrMalformed, err)
		}
		a.Signer = c
	}
	a.Signature = d.fixed("signature", ed25519.SignatureSize)
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decoding device approval: %w", err)
	}
	if at > 1<<62 {
		return nil, fmt.Errorf("decoding device approval: %w: time out of range", ErrMalformed)
	}
	a.IssuedAt = time.Unix(int64(at), 0)
	if err := checkCanonical(a.Username); err != nil {
		return nil, fmt.Errorf("decoding device approval: %w: %w", ErrMalformed, err)
	}
	switch a.Kind {
	case ApproverDevice:
		if a.Signer != nil {
			return nil, fmt.Errorf("decoding device approval: %w: device approval carries a directory key certificate", ErrMalformed)
		}
	case ApproverRoot:
		if a.Approver != (DeviceID{}) {
			return nil, fmt.Errorf("decoding device approval: %w: admin approval names device %s", ErrMalformed, a.Approver)
		}
		if a.Signer == nil {
			return nil, fmt.Errorf("decoding device approval: %w: admin approval without directory key certificate", ErrMalformed)
		}
	default:
		return nil, fmt.Errorf("decoding device approval: %w: approver kind %d", ErrMalformed, a.Kind)
	}
	return &a, nil
}

// Matches reports whether the approval is for the device of req.
func (a *DeviceApproval) Matches(req *PairingRequest) bool {
	return a.Username == req.Username && bytes.Equal(a.Key, req.Key) && a.Nonce == req.Nonce
}

// Verify checks the approval's signature: by the root for an admin
// approval; for a device approval, by approver, which must be the
// certificate of the approving device, of the same user. It does not
// check the approver's validity or revocation, nor the approval's age.
func (a *DeviceApproval) Verify(root RootPublicKey, approver *DeviceCertificate) error {
	switch a.Kind {
	case ApproverRoot:
		if err := verifyChain(root, a.Signer, RoleDirectory, a.IssuedAt, labelApproval, a.tbs(), a.Signature); err != nil {
			return fmt.Errorf("verifying admin approval of a device of %s: %w", a.Username, err)
		}
		return nil
	case ApproverDevice:
		if approver == nil || approver.DeviceID != a.Approver {
			return fmt.Errorf("verifying device approval: %w: approver %s not given", ErrInvalid, a.Approver)
		}
		if approver.Username != a.Username {
			return fmt.Errorf("verifying device approval: %w: device %s of %s approves for %s", ErrInvalid, a.Approver, approver.Username, a.Username)
		}
		if len(a.Signature) != ed25519.SignatureSize || !ed25519.Verify(approver.Key, labelled(labelApproval, a.tbs()), a.Signature) {
			return fmt.Errorf("verifying device approval by %s: %w", a.Approver, ErrBadSignature)
		}
		return nil
	}
	return fmt.Errorf("verifying device approval: %w: approver kind %d", ErrInvalid, a.Kind)
}
