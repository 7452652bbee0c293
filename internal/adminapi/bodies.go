package adminapi

import (
	"encoding/binary"
	"fmt"
	"unicode"
	"unicode/utf8"

	"anom/identity"
)

// Op is what a request asks of the server.
type Op uint8

// The operations and their bodies.
const (
	// OpAddDistributor: an identity.DistributorCertificate, signed by the
	// offline root. A distributor already known takes it only with a
	// higher serial; its count of issued codes is kept.
	OpAddDistributor Op = 1
	// OpImportCodes: an identity.CodeBatch, signed by the distributor.
	OpImportCodes Op = 2
	// OpRevoke: a DeviceAction; the server signs the revocation.
	OpRevoke Op = 3
	// OpWipe: a DeviceAction; the server signs the wipe command.
	OpWipe Op = 4
	// OpApprove: a pairing code (identity.ParsePairingCode) as text; the
	// server signs the admin's approval of that further device.
	OpApprove Op = 5
	// OpAlerts: the server's alerts (false escrow records reported by
	// recipients) from a sequence number on, one page; the body is the
	// sequence, uint64 big-endian (1 for the first). It changes nothing.
	OpAlerts Op = 6
	// OpDevices: the network's devices with their state, one page; the
	// body is a cursor (DecodeCursor): "" for the first page, else the
	// previous page's DevicesResult.Next. It changes nothing.
	OpDevices Op = 7
	// OpUsers: the network's users with their state, one page; the body
	// is a cursor as for OpDevices. It changes nothing.
	OpUsers Op = 8
	// OpPairing: a short pairing code (identity.ParseShortCode) as text;
	// the answer's Approval carries the pairing request published under
	// it (ApprovalResult.Request), for the admin to check and approve
	// with OpApprove. It changes nothing.
	OpPairing Op = 9
)

// Valid reports whether op is a known operation.
func (op Op) Valid() bool { return op >= OpAddDistributor && op <= OpPairing }

// String names the operation.
func (op Op) String() string {
	switch op {
	case OpAddDistributor:
		return "add-distributor"
	case OpImportCodes:
		return "import-codes"
	case OpRevoke:
		return "revoke"
	case OpWipe:
		return "wipe"
	case OpApprove:
		return "approve"
	case OpAlerts:
		return "alerts"
	case OpDevices:
		return "devices"
	case OpUsers:
		return "users"
	case OpPairing:
		return "pairing"
	}
	return fmt.Sprintf("op(%d)", uint8(op))
}

// MaxReasonLen bounds DeviceAction.Reason in bytes.
const MaxReasonLen = 200

// MaxPairingCodeLen bounds the body of OpApprove and OpPairing.
const MaxPairingCodeLen = 256

// DeviceAction is the body of OpRevoke and OpWipe: the device and why
// (kept in the server's admin log).
//
// Encoding: device_id [16], reason uint8 length + UTF-8 without control
// characters.
type DeviceAction struct {
	Device identity.DeviceID
	Reason string
}

func checkReason(s string) error {
	if len(s) > MaxReasonLen {
		return fmt.Errorf("%w: reason of %d bytes, limit %d", ErrMalformed, len(s), MaxReasonLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: reason is not UTF-8", ErrMalformed)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: reason holds control character %U", ErrMalformed, r)
		}
	}
	return nil
}

// Encode returns the body's encoding.
func (a DeviceAction) Encode() ([]byte, error) {
	if err := checkReason(a.Reason); err != nil {
		return nil, fmt.Errorf("encoding device action: %w", err)
	}
	b := append([]byte(nil), a.Device[:]...)
	b = append(b, byte(len(a.Reason)))
	return append(b, a.Reason...), nil
}

// DecodeDeviceAction strictly decodes a DeviceAction.
func DecodeDeviceAction(b []byte) (DeviceAction, error) {
	var a DeviceAction
	d := reader{b: b}
	copy(a.Device[:], d.take("device_id", identity.DeviceIDSize))
	n := d.u8("reason length")
	a.Reason = string(d.take("reason", int(n)))
	if d.err == nil && len(d.b) != 0 {
		d.fail("end", "%d bytes left over", len(d.b))
	}
	if d.err != nil {
		return DeviceAction{}, fmt.Errorf("decoding device action: %w", d.err)
	}
	if err := checkReason(a.Reason); err != nil {
		return DeviceAction{}, fmt.Errorf("decoding device action: %w", err)
	}
	return a, nil
}

// EncodeAlertsFrom is the body of OpAlerts.
func EncodeAlertsFrom(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// DecodeAlertsFrom strictly decodes the body of OpAlerts.
func DecodeAlertsFrom(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("decoding alerts request: %w: %d bytes, want 8", ErrMalformed, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// MaxCursorLen bounds the cursor body of OpDevices and OpUsers.
const MaxCursorLen = 64

// DecodeCursor strictly checks the body of OpDevices and OpUsers: at most
// MaxCursorLen bytes of printable ASCII (a device ID in hex or a
// username), "" for the first page.
func DecodeCursor(b []byte) (string, error) {
	if len(b) > MaxCursorLen {
		return "", fmt.Errorf("decoding list cursor: %w: %d bytes, limit %d", ErrMalformed, len(b), MaxCursorLen)
	}
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return "", fmt.Errorf("decoding list cursor: %w: byte %#x", ErrMalformed, c)
		}
	}
	return string(b), nil
}
