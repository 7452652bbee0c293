package escrow

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"anom/internal/translog"
)

// MaxServerID bounds the server identifier in a countersignature.
const MaxServerID = 64

// maxSignedRecord bounds an encoded SignedRecord (record plus signature).
const maxRecordEncoding = 1 << 21

// SignedRecord is a record signed by the sending device's Ed25519 key.
type SignedRecord struct {
	Record    *Record
	Signature []byte // Ed25519 over ctxDeviceSig || record encoding
}

// SignRecord signs a record with the device key.
func SignRecord(rec *Record, deviceKey ed25519.PrivateKey) (*SignedRecord, error) {
	if len(deviceKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing record: device key is %d bytes", len(deviceKey))
	}
	b, err := rec.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("signing record: %w", err)
	}
	return &SignedRecord{Record: rec, Signature: ed25519.Sign(deviceKey, append([]byte(ctxDeviceSig), b...))}, nil
}

// Verify checks the device signature with the device's public key.
func (s *SignedRecord) Verify(deviceKey ed25519.PublicKey) error {
	b, err := s.Record.MarshalBinary()
	if err != nil {
		return fmt.Errorf("verifying device signature: %w", err)
	}
	if !verifyEd25519(deviceKey, append([]byte(ctxDeviceSig), b...), s.Signature) {
		return fmt.Errorf("verifying device signature: %w", ErrBadSignature)
	}
	return nil
}

// MarshalBinary encodes the signed record: version, record, signature.
func (s *SignedRecord) MarshalBinary() ([]byte, error) {
	if s.Record == nil {
		return nil, fmt.Errorf("encoding signed record: no record")
	}
	rb, err := s.Record.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding signed record: %w", err)
	}
	e := newEncoder()
	e.u8(formatVersion)
	e.vec("record", 3, rb, 1, maxRecordEncoding)
	e.fixed("device signature", s.Signature, ed25519.SignatureSize)
	return e.bytes()
}

// ParseSignedRecord decodes a SignedRecord. It does not check the signature.
func ParseSignedRecord(b []byte) (*SignedRecord, error) {
	d := newDecoder(b)
	s, err := decodeSignedRecord(d)
	if err == nil {
		err = d.finish()
	}
	if err != nil {
		return nil, fmt.Errorf("decoding signed record: %w", err)
	}
	return s, nil
}

func decodeSignedRecord(d *decoder) (*SignedRecord, error) {
	d.version("signed record")
	rb := d.vec("record", 3, 1, maxRecordEncoding)
	sig := d.fixed("device signature", ed25519.SignatureSize)
	if d.err != nil {
		return nil, d.err
	}
	rec, err := ParseRecord(rb)
	if err != nil {
		return nil, err
	}
	return &SignedRecord{Record: rec, Signature: sig}, nil
}

// ServerRecord is a device-signed record countersigned by the server that
// accepted it, with the server's time and its sequence number.
//
// A server countersigns the records it accepts in batches, under one
// signature (CountersignBatch): each record is a leaf of an RFC 9162 Merkle
// tree, the server signs the tree's root and size, and each record carries
// its place in the tree (Batch) with the path from its leaf to the root, so
// that it can be checked alone, as before. A record countersigned alone by
// servers before batches (encoding version 1) has Batch nil and its own
// signature; it is still accepted.
//
// Encoding version 2 (batch), big-endian:
//
//	version        uint8 = 2
//	signed record  <1..2^24-1> (SignedRecord encoding)
//	server id      <1..64>
//	server time    uint64, Unix milliseconds
//	sequence       uint64
//	batch size     uint32, 1..MaxCountersignBatch
//	index          uint32, < batch size
//	path           uint8 count, count × 32 bytes
//	signature      [64]byte
//
// The leaf is SHA-256(0x00 || ctxServerLeaf || the encoding up to and
// including the sequence); the signature is Ed25519 over ctxServerBatchSig
// || batch size (uint32) || root. Version 1 is the same up to the sequence
// (with version byte 1), then the signature, over ctxServerSig || those
// bytes.
type ServerRecord struct {
	Signed     *SignedRecord
	ServerID   []byte    // names the server key; 1..64 bytes
	ServerTime time.Time // kept to the millisecond, UTC
	Sequence   uint64
	Batch      *BatchPlace // nil: countersigned alone (version 1)
	Signature  []byte      // Ed25519: over the batch's root, or over this record alone
}

// BatchPlace is a record's place in the batch its server countersigned.
type BatchPlace struct {
	Size  uint32          // records in the batch
	Index uint32          // this record's leaf, < Size
	Path  []translog.Hash // RFC 9162 inclusion proof, from the leaf upwards
}

// MaxCountersignBatch bounds the records countersigned under one
// signature, and so a record's path (at most 10 hashes).
const MaxCountersignBatch = 1024

// Encoding versions of a ServerRecord.
const (
	serverRecordSingle uint8 = 1 // countersigned alone (formatVersion)
	serverRecordBatch  uint8 = 2 // countersigned in a batch
)

// leafBytes is the encoding of s up to and including the sequence: what a
// version 1 signature covers, and a version 2 leaf.
func (s *ServerRecord) leafBytes() ([]byte, error) {
	if s.Signed == nil {
		return nil, fmt.Errorf("no signed record")
	}
	sb, err := s.Signed.MarshalBinary()
	if err != nil {
		return nil, err
	}
	e := newEncoder()
	if s.Batch == nil {
		e.u8(serverRecordSingle)
	} else {
		e.u8(serverRecordBatch)
	}
	e.vec("signed record", 3, sb, 1, maxRecordEncoding+128)
	e.vec("server id", 1, s.ServerID, 1, MaxServerID)
	e.time("server time", s.ServerTime)
	e.u64(s.Sequence)
	return e.bytes()
}

// leafHash is the record's leaf in its batch's tree.
func leafHash(leaf []byte) translog.Hash {
	return translog.HashLeaf(append([]byte(ctxServerLeaf), leaf...))
}

// batchRootMessage is what a batch's signature covers.
func batchRootMessage(size uint32, root translog.Hash) []byte {
	m := make([]byte, 0, len(ctxServerBatchSig)+4+len(root))
	m = append(m, ctxServerBatchSig...)
	m = binary.BigEndian.AppendUint32(m, size)
	return append(m, root[:]...)
}

// Countersign countersigns one device-signed record: a batch of one.
func Countersign(signed *SignedRecord, serverID []byte, now time.Time, seq uint64, serverKey ed25519.PrivateKey) (*ServerRecord, error) {
	out, err := CountersignBatch([]*SignedRecord{signed}, serverID, now, seq, serverKey)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// CountersignBatch countersigns device-signed records under one signature,
// with the server's time now and the sequence numbers firstSeq,
// firstSeq+1, ... in order. Each returned record is checked alone by
// Verify, at the cost of one signature check as before; a verifier given
// many records of one batch checks its signature once (CountersignCache).
func CountersignBatch(signed []*SignedRecord, serverID []byte, now time.Time, firstSeq uint64, serverKey ed25519.PrivateKey) ([]*ServerRecord, error) {
	if len(serverKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("countersigning records: server key is %d bytes", len(serverKey))
	}
	if len(signed) == 0 || len(signed) > MaxCountersignBatch {
		return nil, fmt.Errorf("countersigning records: %d records, want 1..%d", len(signed), MaxCountersignBatch)
	}
	at := clampTime(now)
	id := append([]byte{}, serverID...)
	out := make([]*ServerRecord, len(signed))
	leaves := make([]translog.Hash, len(signed))
	for i, sr := range signed {
		out[i] = &ServerRecord{Signed: sr, ServerID: id, ServerTime: at, Sequence: firstSeq + uint64(i),
			Batch: &BatchPlace{Size: uint32(len(signed)), Index: uint32(i)}}
		b, err := out[i].leafBytes()
		if err != nil {
			return nil, fmt.Errorf("countersigning record %d: %w", i, err)
		}
		leaves[i] = leafHash(b)
	}
	root, paths := translog.InclusionPaths(leaves)
	sig := ed25519.Sign(serverKey, batchRootMessage(uint32(len(signed)), root))
	for i, sr := range out {
		sr.Batch.Path, sr.Signature = paths[i], sig
	}
	return out, nil
}

// Verify checks the server's countersignature (not the device signature).
func (s *ServerRecord) Verify(serverKey ed25519.PublicKey) error {
	return s.VerifyCached(serverKey, nil)
}

// VerifyCached is Verify, with the batch signatures already checked
// remembered in c (nil: none), so that the records of one batch cost one
// signature check in all.
func (s *ServerRecord) VerifyCached(serverKey ed25519.PublicKey, c *CountersignCache) error {
	b, err := s.leafBytes()
	if err != nil {
		return fmt.Errorf("verifying server countersignature: %w", err)
	}
	if s.Batch == nil {
		if !verifyEd25519(serverKey, append([]byte(ctxServerSig), b...), s.Signature) {
			return fmt.Errorf("verifying server countersignature: %w", ErrBadSignature)
		}
		return nil
	}
	root, err := translog.RootFromInclusion(leafHash(b), uint64(s.Batch.Index), uint64(s.Batch.Size), s.Batch.Path)
	if err != nil {
		return fmt.Errorf("verifying server countersignature: record %d of a batch of %d: %w: %w", s.Batch.Index, s.Batch.Size, ErrBadSignature, err)
	}
	msg := batchRootMessage(s.Batch.Size, root)
	if c.holds(serverKey, msg, s.Signature) {
		return nil
	}
	if !verifyEd25519(serverKey, msg, s.Signature) {
		return fmt.Errorf("verifying server countersignature: %w", ErrBadSignature)
	}
	c.add(serverKey, msg, s.Signature)
	return nil
}

// MarshalBinary encodes the countersigned record.
func (s *ServerRecord) MarshalBinary() ([]byte, error) {
	b, err := s.leafBytes()
	if err != nil {
		return nil, fmt.Errorf("encoding server record: %w", err)
	}
	if len(s.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("encoding server record: signature is %d bytes", len(s.Signature))
	}
	if p := s.Batch; p != nil {
		switch {
		case p.Size == 0 || p.Size > MaxCountersignBatch:
			return nil, fmt.Errorf("encoding server record: batch of %d records, want 1..%d", p.Size, MaxCountersignBatch)
		case p.Index >= p.Size:
			return nil, fmt.Errorf("encoding server record: index %d in a batch of %d", p.Index, p.Size)
		case len(p.Path) > maxBatchPath:
			return nil, fmt.Errorf("encoding server record: path of %d hashes, at most %d", len(p.Path), maxBatchPath)
		}
		b = binary.BigEndian.AppendUint32(b, p.Size)
		b = binary.BigEndian.AppendUint32(b, p.Index)
		b = append(b, uint8(len(p.Path)))
		for _, h := range p.Path {
			b = append(b, h[:]...)
		}
	}
	return append(b, s.Signature...), nil
}

// maxBatchPath bounds an encoded path: the depth of a tree of
// MaxCountersignBatch leaves. A path of the wrong length for its index and
// size decodes, and fails Verify.
const maxBatchPath = 10

// ParseServerRecord decodes a ServerRecord of either version. It checks no
// signature.
func ParseServerRecord(b []byte) (*ServerRecord, error) {
	d := newDecoder(b)
	s, err := decodeServerRecord(d)
	if err == nil {
		err = d.finish()
	}
	if err != nil {
		return nil, fmt.Errorf("decoding server record: %w", err)
	}
	return s, nil
}

func decodeServerRecord(d *decoder) (*ServerRecord, error) {
	v := d.u8("server record version")
	if d.err == nil && v != serverRecordSingle && v != serverRecordBatch {
		return nil, fmt.Errorf("%w: server record version %d", ErrUnknownVersion, v)
	}
	sb := d.vec("signed record", 3, 1, maxRecordEncoding+128)
	s := &ServerRecord{}
	s.ServerID = d.vec("server id", 1, 1, MaxServerID)
	s.ServerTime = d.time("server time")
	s.Sequence = d.u64("sequence")
	if v == serverRecordBatch {
		p := &BatchPlace{Size: d.u32("batch size"), Index: d.u32("batch index")}
		n := int(d.u8("batch path length"))
		switch {
		case d.err != nil:
		case p.Size == 0 || p.Size > MaxCountersignBatch:
			d.fail("batch size", "%d outside [1, %d]", p.Size, MaxCountersignBatch)
		case p.Index >= p.Size:
			d.fail("batch index", "%d in a batch of %d", p.Index, p.Size)
		case n > maxBatchPath:
			d.fail("batch path length", "%d hashes, at most %d", n, maxBatchPath)
		}
		for i := 0; i < n && d.err == nil; i++ {
			if h := d.fixed("batch path hash", translog.HashSize); d.err == nil {
				p.Path = append(p.Path, translog.Hash(h))
			}
		}
		s.Batch = p
	}
	s.Signature = d.fixed("server signature", ed25519.SignatureSize)
	if d.err != nil {
		return nil, d.err
	}
	signed, err := ParseSignedRecord(sb)
	if err != nil {
		return nil, err
	}
	s.Signed = signed
	return s, nil
}

// CountersignCache remembers the batch countersignatures a verifier has
// checked, so that the other records of a batch cost no signature check.
// An entry is the whole of what was checked: key, batch size, root and
// signature bytes; a record matches it only if its own path leads to that
// root and it carries that very signature. It holds at most
// countersignCacheSize entries (it empties when full). Safe for
// concurrent use; a nil cache remembers nothing.
type CountersignCache struct {
	mu   sync.Mutex
	seen map[[sha256.Size]byte]struct{}
}

const countersignCacheSize = 4096

// NewCountersignCache returns an empty cache.
func NewCountersignCache() *CountersignCache {
	return &CountersignCache{seen: make(map[[sha256.Size]byte]struct{})}
}

func countersignCacheKey(key ed25519.PublicKey, msg, sig []byte) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, part := range [][]byte{key, msg, sig} {
		h.Write(binary.BigEndian.AppendUint64(n[:0], uint64(len(part))))
		h.Write(part)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

func (c *CountersignCache) holds(key ed25519.PublicKey, msg, sig []byte) bool {
	if c == nil {
		return false
	}
	k := countersignCacheKey(key, msg, sig)
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.seen[k]
	return ok
}

func (c *CountersignCache) add(key ed25519.PublicKey, msg, sig []byte) {
	if c == nil {
		return
	}
	k := countersignCacheKey(key, msg, sig)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) >= countersignCacheSize {
		clear(c.seen)
	}
	c.seen[k] = struct{}{}
}

// verifyEd25519 checks an Ed25519 signature, refusing malformed keys.
func verifyEd25519(pub ed25519.PublicKey, msg, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize && ed25519.Verify(pub, msg, sig)
}
