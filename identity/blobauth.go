package identity

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A device authenticates a request for a blob (an attachment download)
// with its signature key, in the HTTP header BlobAuthHeader:
//
//	DEVICE-ID-HEX SP UNIX-MILLISECONDS SP BASE64URL(SIGNATURE)
//
// the signature being over the label, the HTTP method, the blob id, the
// device id and the time. A capability token says which blob may be read;
// this says that a device the server still counts as valid asks, so a
// revoked, wiped or expired device can no longer use tokens it holds.

// BlobAuthHeader is the HTTP header of a device's blob request signature.
const BlobAuthHeader = "Anom-Device-Auth"

const labelBlobRequest = "anom/v1 blob request"

// maxBlobAuthHeader bounds the header ParseBlobAuth accepts: 32 hex
// digits, a 13-digit time and 86 base64url characters, with room.
const maxBlobAuthHeader = 256

// BlobAuth is a parsed BlobAuthHeader.
type BlobAuth struct {
	Device    DeviceID
	At        time.Time // millisecond precision
	Signature []byte
}

func blobAuthTBS(method, blobID string, dev DeviceID, atMs int64) []byte {
	var e encoder
	e.bytes16([]byte(method))
	e.bytes16([]byte(blobID))
	e.raw(dev[:])
	e.u64(uint64(atMs))
	return labelled(labelBlobRequest, e.b)
}

// SignBlobRequest returns the BlobAuthHeader value for a request by
// device dev, holding priv, for blobID with method, at time at.
func SignBlobRequest(priv ed25519.PrivateKey, dev DeviceID, method, blobID string, at time.Time) string {
	ms := at.UnixMilli()
	sig := ed25519.Sign(priv, blobAuthTBS(method, blobID, dev, ms))
	return hex.EncodeToString(dev[:]) + " " + strconv.FormatInt(ms, 10) + " " + base64.RawURLEncoding.EncodeToString(sig)
}

// ParseBlobAuth parses a BlobAuthHeader value. It checks no signature.
func ParseBlobAuth(v string) (*BlobAuth, error) {
	if len(v) > maxBlobAuthHeader {
		return nil, fmt.Errorf("parsing blob request signature: %w: %d bytes", ErrMalformed, len(v))
	}
	parts := strings.Split(v, " ")
	if len(parts) != 3 {
		return nil, fmt.Errorf("parsing blob request signature: %w: want DEVICE TIME SIGNATURE", ErrMalformed)
	}
	id, err := hex.DecodeString(parts[0])
	if err != nil || len(id) != DeviceIDSize {
		return nil, fmt.Errorf("parsing blob request signature: %w: device id", ErrMalformed)
	}
	ms, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || ms < 0 {
		return nil, fmt.Errorf("parsing blob request signature: %w: time", ErrMalformed)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("parsing blob request signature: %w: signature", ErrMalformed)
	}
	a := &BlobAuth{At: time.UnixMilli(ms), Signature: sig}
	copy(a.Device[:], id)
	return a, nil
}

// VerifyBlobRequest checks that the device of c signed a for a request for
// blobID with method. The caller checks a.Device against c, the time
// against its clock, and that the device is still valid.
func (c *DeviceCertificate) VerifyBlobRequest(a *BlobAuth, method, blobID string) error {
	if a.Device != c.DeviceID || !ed25519.Verify(c.Key, blobAuthTBS(method, blobID, a.Device, a.At.UnixMilli()), a.Signature) {
		return fmt.Errorf("verifying blob request of %s: %w", c.DeviceID, ErrBadSignature)
	}
	return nil
}
