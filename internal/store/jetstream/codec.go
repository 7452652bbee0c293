package jetstream

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"anom/internal/store"
)

// Headers the store writes on its messages. Everything read back from NATS
// is checked by the decoders in this file, which fail with store.ErrCorrupt.
const (
	hdrSeq  = "Anom-Seq"  // log entry: its per-log sequence (decimal)
	hdrTime = "Anom-Time" // log entry: when the store appended it (Unix nanoseconds, decimal)
	hdrOp   = "Anom-Op"   // KV: "del" on a deletion marker; log: "trim" on a trim marker

	opDelete = "del"
	opTrim   = "trim"

	hdrExpectSubjSeq  = "Nats-Expected-Last-Subject-Sequence"
	hdrExpectSubjName = "Nats-Expected-Last-Subject-Sequence-Subject"
	hdrBatchID        = "Nats-Batch-Id"
	hdrBatchSeq       = "Nats-Batch-Sequence"
	hdrBatchCommit    = "Nats-Batch-Commit"
)

// logRecord is a decoded log message: an entry, or a trim marker that
// keeps a fully trimmed log's last sequence.
type logRecord struct {
	Seq    uint64 // per-log sequence (for a marker: the log's last sequence when trimmed)
	Time   time.Time
	Marker bool
}

// decodeUint parses a decimal header value without sign or leading zeros.
func decodeUint(what, v string) (uint64, error) {
	if v == "" || len(v) > 20 || (len(v) > 1 && v[0] == '0') {
		return 0, fmt.Errorf("decoding %s %q: %w", what, v, store.ErrCorrupt)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("decoding %s %q: %w", what, v, store.ErrCorrupt)
	}
	return n, nil
}

// decodeLogHeader decodes the headers of a log message.
func decodeLogHeader(h nats.Header) (logRecord, error) {
	seqs, times := h.Values(hdrSeq), h.Values(hdrTime)
	if len(seqs) != 1 || len(times) != 1 {
		return logRecord{}, fmt.Errorf("decoding log entry headers: %d sequences, %d times: %w", len(seqs), len(times), store.ErrCorrupt)
	}
	seq, err := decodeUint("log sequence", seqs[0])
	if err != nil {
		return logRecord{}, err
	}
	if seq == 0 {
		return logRecord{}, fmt.Errorf("decoding log entry headers: sequence 0: %w", store.ErrCorrupt)
	}
	ns, err := decodeUint("log entry time", times[0])
	if err != nil {
		return logRecord{}, err
	}
	if ns > 1<<63-1 {
		return logRecord{}, fmt.Errorf("decoding log entry time %d: %w", ns, store.ErrCorrupt)
	}
	rec := logRecord{Seq: seq, Time: time.Unix(0, int64(ns)).UTC()}
	switch ops := h.Values(hdrOp); {
	case len(ops) == 0:
	case len(ops) == 1 && ops[0] == opTrim:
		rec.Marker = true
	default:
		return logRecord{}, fmt.Errorf("decoding log entry headers: operation %q: %w", ops, store.ErrCorrupt)
	}
	return rec, nil
}

// logHeader returns the headers of a log entry or marker.
func logHeader(seq uint64, t time.Time, marker bool) nats.Header {
	h := nats.Header{}
	h.Set(hdrSeq, strconv.FormatUint(seq, 10))
	h.Set(hdrTime, strconv.FormatInt(t.UnixNano(), 10))
	if marker {
		h.Set(hdrOp, opTrim)
	}
	return h
}

// isDeleteMarker reports whether a KV message is a deletion marker.
func isDeleteMarker(h nats.Header) (bool, error) {
	switch ops := h.Values(hdrOp); {
	case len(ops) == 0:
		return false, nil
	case len(ops) == 1 && ops[0] == opDelete:
		return true, nil
	default:
		return false, fmt.Errorf("decoding KV headers: operation %q: %w", ops, store.ErrCorrupt)
	}
}

// encodeUint64 and decodeUint64 are the value of a cursor or a grave (a
// Unix-nanosecond time).
func encodeUint64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeUint64(what string, b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("decoding %s: %d bytes, want 8: %w", what, len(b), store.ErrCorrupt)
	}
	return binary.BigEndian.Uint64(b), nil
}

// manifest describes a stored blob: its chunks are messages of the blob
// stream on the subject of its upload, at the listed stream sequences.
type manifest struct {
	Upload    string // upload ID: the chunk subject's last token
	Size      int64
	Created   time.Time
	Expires   time.Time // zero: never
	ChunkSize int
	Seqs      []uint64 // stream sequence of each chunk, ascending
}

const manifestVersion = 1

// maxManifestChunks bounds the chunk list a manifest may claim, so that a
// corrupt manifest cannot make the decoder allocate without limit.
const maxManifestChunks = 1 << 22

func (m *manifest) encode() []byte {
	b := []byte{manifestVersion, byte(len(m.Upload))}
	b = append(b, m.Upload...)
	b = binary.AppendUvarint(b, uint64(m.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(m.Created.UnixNano()))
	var exp int64
	if !m.Expires.IsZero() {
		exp = m.Expires.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(exp))
	b = binary.AppendUvarint(b, uint64(m.ChunkSize))
	b = binary.AppendUvarint(b, uint64(len(m.Seqs)))
	var prev uint64
	for _, s := range m.Seqs {
		b = binary.AppendUvarint(b, s-prev)
		prev = s
	}
	return b
}

// decodeManifest decodes and checks a manifest.
func decodeManifest(b []byte) (manifest, error) {
	bad := func(why string) (manifest, error) {
		return manifest{}, fmt.Errorf("decoding blob manifest: %s: %w", why, store.ErrCorrupt)
	}
	if len(b) < 2 || b[0] != manifestVersion {
		return bad("unknown version")
	}
	n := int(b[1])
	b = b[2:]
	if n == 0 || len(b) < n {
		return bad("upload ID")
	}
	var m manifest
	m.Upload = string(b[:n])
	if err := store.CheckName("upload", m.Upload); err != nil || containsDot(m.Upload) {
		return bad("upload ID")
	}
	b = b[n:]
	size, k := binary.Uvarint(b)
	if k <= 0 || size > 1<<62 {
		return bad("size")
	}
	m.Size = int64(size)
	b = b[k:]
	if len(b) < 16 {
		return bad("times")
	}
	m.Created = time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC()
	if exp := int64(binary.BigEndian.Uint64(b[8:])); exp != 0 {
		m.Expires = time.Unix(0, exp).UTC()
	}
	b = b[16:]
	cs, k := binary.Uvarint(b)
	if k <= 0 || cs == 0 || cs > 1<<30 {
		return bad("chunk size")
	}
	m.ChunkSize = int(cs)
	b = b[k:]
	count, k := binary.Uvarint(b)
	if k <= 0 || count > maxManifestChunks || count != (size+cs-1)/cs {
		return bad("chunk count")
	}
	b = b[k:]
	if uint64(len(b)) < count { // each sequence takes at least one byte
		return bad("chunk list")
	}
	m.Seqs = make([]uint64, 0, count)
	var prev uint64
	for i := uint64(0); i < count; i++ {
		d, k := binary.Uvarint(b)
		if k <= 0 || d == 0 || prev+d < prev {
			return bad("chunk list")
		}
		prev += d
		m.Seqs = append(m.Seqs, prev)
		b = b[k:]
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return m, nil
}

func containsDot(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return true
		}
	}
	return false
}

func (m *manifest) info(id string) store.BlobInfo {
	return store.BlobInfo{ID: id, Size: m.Size, Created: m.Created, Expires: m.Expires}
}

// expired reports whether the blob is invisible at now.
func (m *manifest) expired(now time.Time) bool {
	return !m.Expires.IsZero() && !now.Before(m.Expires)
}

// decodeAck decodes JetStream's answer to a publish.
func decodeAck(b []byte) (pubAck, error) {
	var a pubAck
	if err := json.Unmarshal(b, &a); err != nil {
		return pubAck{}, fmt.Errorf("decoding publish acknowledgement: %v: %w", err, store.ErrCorrupt)
	}
	if a.Error == nil && (a.Stream == "" || a.Seq == 0) {
		return pubAck{}, fmt.Errorf("decoding publish acknowledgement: no stream or sequence: %w", store.ErrCorrupt)
	}
	return a, nil
}
