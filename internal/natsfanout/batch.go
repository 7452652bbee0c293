package natsfanout

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"anom/internal/push"
)

// A batch is one NATS message on the push subject: many pushes of one
// publisher, authenticated together. Version 1, every integer big-endian
// unless it is a uvarint:
//
//	version   1 byte, 1
//	node      16 bytes: the publisher, drawn at random when it starts
//	seq       8 bytes: the publisher's batch number, 1, 2, 3, ...
//	time      8 bytes: the publisher's clock, Unix nanoseconds, never
//	          going back within one publisher
//	pushes    until the tag, each:
//	            uvarint count of devices (at least 1), then each device ID
//	            as uvarint length and bytes (at least 1 byte);
//	            uvarint length of the frame (at least 1) and the frame
//	tag       32 bytes: HMAC-SHA256 of everything before it, under the
//	          key batchKey derives
//
// The tag covers the header, so the node, sequence and time that the
// receiver's replay check reads are the publisher's own.

// version is the format this package writes and reads.
const version = 1

const (
	nodeLen   = 16
	headerLen = 1 + nodeLen + 8 + 8
	tagLen    = sha256.Size
)

// MinSecretLen is the shortest secret New takes.
const MinSecretLen = 32

// Errors of decodeBatch; a batch that fails is dropped whole.
var (
	errMalformed = errors.New("malformed push batch")
	errVersion   = errors.New("push batch of an unknown format version")
	errForged    = errors.New("push batch not authenticated by this network's key (a publisher without the network's secret, or of another network)")
)

// batchKey derives the batches' HMAC key from the secret the servers of
// one network share, for the subject the batches travel on: a tag of
// this key is good for nothing else (not a blob token, which the secret
// itself keys), and a batch of one prefix is forged on another's subject.
func batchKey(secret []byte, subject string) ([]byte, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("the network's secret is %d bytes, at least %d are needed", len(secret), MinSecretLen)
	}
	return hkdf.Key(sha256.New, secret, nil, "anom natsfanout v1 batch key for "+subject, 32)
}

// batch is a decoded batch.
type batch struct {
	node   [nodeLen]byte
	seq    uint64
	time   int64 // Unix nanoseconds
	pushes []push.Push
}

// pushSize is the encoded size of p.
func pushSize(p push.Push) int {
	n := uvarintLen(uint64(len(p.Devices)))
	for _, d := range p.Devices {
		n += uvarintLen(uint64(len(d))) + len(d)
	}
	return n + uvarintLen(uint64(len(p.Frame))) + len(p.Frame)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// appendPush appends p's encoding to b.
func appendPush(b []byte, p push.Push) []byte {
	b = binary.AppendUvarint(b, uint64(len(p.Devices)))
	for _, d := range p.Devices {
		b = binary.AppendUvarint(b, uint64(len(d)))
		b = append(b, d...)
	}
	b = binary.AppendUvarint(b, uint64(len(p.Frame)))
	return append(b, p.Frame...)
}

// putHeader writes the header into b[:headerLen].
func putHeader(b []byte, node [nodeLen]byte, seq uint64, t int64) {
	b[0] = version
	copy(b[1:], node[:])
	binary.BigEndian.PutUint64(b[1+nodeLen:], seq)
	binary.BigEndian.PutUint64(b[1+nodeLen+8:], uint64(t))
}

// seal appends the tag of b (header and pushes) under mac's key.
func seal(mac hash.Hash, b []byte) []byte {
	mac.Reset()
	mac.Write(b)
	return mac.Sum(b)
}

// encodeBatch encodes a whole batch (the publisher builds its batches in
// place instead; this is for tests).
func encodeBatch(mac hash.Hash, bt batch) []byte {
	b := make([]byte, headerLen)
	putHeader(b, bt.node, bt.seq, bt.time)
	for _, p := range bt.pushes {
		b = appendPush(b, p)
	}
	return seal(mac, b)
}

// batchNode returns the publisher a batch claims, before it is
// authenticated: only to skip the subscriber's own batches unread.
func batchNode(b []byte) (node [nodeLen]byte, ok bool) {
	if len(b) < headerLen || b[0] != version {
		return node, false
	}
	copy(node[:], b[1:])
	return node, true
}

// decodeBatch authenticates b with mac's key, then decodes it. The
// frames alias b.
func decodeBatch(mac hash.Hash, b []byte) (batch, error) {
	if len(b) < 1 {
		return batch{}, fmt.Errorf("%w: empty", errMalformed)
	}
	if b[0] != version {
		return batch{}, fmt.Errorf("%w: %d (this server reads %d)", errVersion, b[0], version)
	}
	if len(b) < headerLen+tagLen {
		return batch{}, fmt.Errorf("%w: %d bytes, shorter than a header and a tag (%d)", errMalformed, len(b), headerLen+tagLen)
	}
	body, tag := b[:len(b)-tagLen], b[len(b)-tagLen:]
	mac.Reset()
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), tag) {
		return batch{}, errForged
	}
	var bt batch
	copy(bt.node[:], body[1:])
	bt.seq = binary.BigEndian.Uint64(body[1+nodeLen:])
	bt.time = int64(binary.BigEndian.Uint64(body[1+nodeLen+8:]))
	r := body[headerLen:]
	for len(r) > 0 {
		var p push.Push
		var err error
		if p, r, err = decodePush(r); err != nil {
			return batch{}, fmt.Errorf("%w: push %d: %w", errMalformed, len(bt.pushes)+1, err)
		}
		bt.pushes = append(bt.pushes, p)
	}
	if len(bt.pushes) == 0 {
		return batch{}, fmt.Errorf("%w: no push", errMalformed)
	}
	return bt, nil
}

// decodePush decodes one push from the front of r and returns the rest.
func decodePush(r []byte) (push.Push, []byte, error) {
	n, r, err := uvarint(r, "device count")
	if err != nil {
		return push.Push{}, nil, err
	}
	// Each device takes at least two bytes: a count beyond that is a lie,
	// refused before anything is allocated for it.
	if n == 0 || n > uint64(len(r)/2) {
		return push.Push{}, nil, fmt.Errorf("%d devices in %d bytes", n, len(r))
	}
	p := push.Push{Devices: make([]string, 0, n)}
	for range n {
		var d []byte
		if d, r, err = chunk(r, "device ID"); err != nil {
			return push.Push{}, nil, err
		}
		p.Devices = append(p.Devices, string(d))
	}
	if p.Frame, r, err = chunk(r, "frame"); err != nil {
		return push.Push{}, nil, err
	}
	return p, r, nil
}

// uvarint reads a uvarint from the front of r, in its shortest form
// only (a batch has one encoding).
func uvarint(r []byte, what string) (uint64, []byte, error) {
	v, n := binary.Uvarint(r)
	if n <= 0 {
		return 0, nil, fmt.Errorf("%s: no valid uvarint", what)
	}
	if n != uvarintLen(v) {
		return 0, nil, fmt.Errorf("%s: uvarint in %d bytes, not the shortest form", what, n)
	}
	return v, r[n:], nil
}

// chunk reads a non-empty uvarint-length-prefixed byte string from the
// front of r.
func chunk(r []byte, what string) ([]byte, []byte, error) {
	n, r, err := uvarint(r, what+" length")
	if err != nil {
		return nil, nil, err
	}
	if n == 0 || n > uint64(len(r)) {
		return nil, nil, fmt.Errorf("%s of %d bytes, %d left", what, n, len(r))
	}
	return r[:n], r[n:], nil
}
