package loadgen

import (
	"encoding/binary"
	"errors"
	"time"

	"anom/mls"
)

// stampSize is the bytes of a payload that identify it: message number
// and send time.
const stampSize = 16

// MessageTemplate returns an MLSMessage framing a PrivateMessage of the
// group's epoch with an opaque ciphertext of size bytes (at least 16),
// which Stamp fills in. The server accepts it as application data; it is
// not MLS-encrypted.
func MessageTemplate(groupID []byte, epoch uint64, size int) []byte {
	size = max(size, stampSize)
	ct := make([]byte, size)
	for i := range ct {
		ct[i] = byte(i * 7)
	}
	m := &mls.MLSMessage{Version: 1, WireFormat: mls.WirePrivateMessage, Private: &mls.PrivateMessage{
		GroupID: groupID, Epoch: epoch, ContentType: mls.ContentApplication,
		EncryptedSenderData: make([]byte, 28), Ciphertext: ct,
	}}
	return m.Encode()
}

// Stamp writes the message number and send time into a copy of a
// template made with the same size. The ciphertext is last in the
// encoding, so its place is known from size alone.
func Stamp(dst, template []byte, size int, id uint64, at time.Time) []byte {
	dst = append(dst[:0], template...)
	off := len(dst) - max(size, stampSize)
	binary.BigEndian.PutUint64(dst[off:], id)
	binary.BigEndian.PutUint64(dst[off+8:], uint64(at.UnixNano()))
	return dst
}

var errNoStamp = errors.New("message too short for a stamp")

// ReadStamp returns the message number and send time of a stamped
// message.
func ReadStamp(msg []byte, size int) (id uint64, at time.Time, err error) {
	off := len(msg) - max(size, stampSize)
	if off < 0 {
		return 0, time.Time{}, errNoStamp
	}
	id = binary.BigEndian.Uint64(msg[off:])
	return id, time.Unix(0, int64(binary.BigEndian.Uint64(msg[off+8:]))), nil
}
