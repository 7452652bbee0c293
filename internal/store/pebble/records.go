package pebble

import (
	"encoding/binary"
	"fmt"
	"time"

	"anom/internal/store"
)

// Key layout. Names never contain 0x00 (store.CheckName), so 0x00
// separates a name from what follows and name+0x01 bounds its range.
//
//	'r'                           global KV revision counter
//	'k' bucket 0x00 key           KV entry: kvRecord
//	'm' log                       log meta: metaRecord
//	'l' log 0x00 seq(8)           log entry: entryRecord
//	'c' log 0x00 consumer         cursor: cursorRecord
//	'B' id                        blob manifest: manifestRecord
//	'x' expires(8) id             blob expiry index (empty value)
//	'f' upload(16)                blob file in use (empty value)
//
// A blob's bytes are in the file blobs/<hex upload ID>, named by its
// manifest.
//
// Every value starts with a format byte (recordV1).
const (
	prefixRev      = 'r'
	prefixKV       = 'k'
	prefixMeta     = 'm'
	prefixEntry    = 'l'
	prefixCursor   = 'c'
	prefixManifest = 'B'
	prefixExpiry   = 'x'
	prefixFile     = 'f'

	recordV1 = 1
)

type uploadID [16]byte

func nameKey(prefix byte, name string, tail int) []byte {
	k := make([]byte, 0, 1+len(name)+1+tail)
	k = append(k, prefix)
	return append(k, name...)
}

func revKey() []byte { return []byte{prefixRev} }

func kvKey(bucket, key string) []byte {
	k := nameKey(prefixKV, bucket, len(key))
	k = append(k, 0)
	return append(k, key...)
}

// kvBucketBounds returns the key range holding every entry of a bucket.
func kvBucketBounds(bucket string) (lo, hi []byte) {
	lo = append(nameKey(prefixKV, bucket, 0), 0)
	hi = append(nameKey(prefixKV, bucket, 0), 1)
	return lo, hi
}

// parseKVKey returns the key part of a KV entry key of bucket.
func parseKVKey(bucket string, k []byte) (string, error) {
	lo, _ := kvBucketBounds(bucket)
	if len(k) <= len(lo) || string(k[:len(lo)]) != string(lo) {
		return "", fmt.Errorf("parsing kv key %q: %w", k, store.ErrCorrupt)
	}
	return string(k[len(lo):]), nil
}

func metaKey(log string) []byte { return nameKey(prefixMeta, log, 0) }

func parseMetaKey(k []byte) (string, error) {
	if len(k) < 2 || k[0] != prefixMeta {
		return "", fmt.Errorf("parsing log meta key %q: %w", k, store.ErrCorrupt)
	}
	return string(k[1:]), nil
}

func entryKey(log string, seq uint64) []byte {
	return appendEntryKey(make([]byte, 0, entryKeyLen(log)), log, seq)
}

func entryKeyLen(log string) int { return 1 + len(log) + 1 + 8 }

func appendEntryKey(k []byte, log string, seq uint64) []byte {
	k = append(k, prefixEntry)
	k = append(k, log...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// entryBounds returns the key range of entries of log with from <= seq < to.
func entryBounds(log string, from, to uint64) (lo, hi []byte) {
	return entryKey(log, from), entryKey(log, to)
}

// entryRange returns the key range of every entry of log.
func entryRange(log string) (lo, hi []byte) {
	lo = append(nameKey(prefixEntry, log, 0), 0)
	hi = append(nameKey(prefixEntry, log, 0), 1)
	return lo, hi
}

func parseEntryKey(log string, k []byte) (uint64, error) {
	want := 1 + len(log) + 1 + 8
	if len(k) != want || k[0] != prefixEntry || string(k[1:1+len(log)]) != log || k[1+len(log)] != 0 {
		return 0, fmt.Errorf("parsing entry key %q of log %q: %w", k, log, store.ErrCorrupt)
	}
	return binary.BigEndian.Uint64(k[want-8:]), nil
}

func cursorKey(log, consumer string) []byte {
	k := nameKey(prefixCursor, log, len(consumer))
	k = append(k, 0)
	return append(k, consumer...)
}

func cursorRange(log string) (lo, hi []byte) {
	lo = append(nameKey(prefixCursor, log, 0), 0)
	hi = append(nameKey(prefixCursor, log, 0), 1)
	return lo, hi
}

func manifestKey(id string) []byte { return nameKey(prefixManifest, id, 0) }

func expiryKey(expires time.Time, id string) []byte {
	k := make([]byte, 0, 1+8+len(id))
	k = append(k, prefixExpiry)
	k = binary.BigEndian.AppendUint64(k, uint64(expires.UnixNano())^1<<63)
	return append(k, id...)
}

// expiryUpTo returns the upper bound (exclusive) of expiry keys at or before t.
func expiryUpTo(t time.Time) []byte {
	k := make([]byte, 0, 9)
	k = append(k, prefixExpiry)
	return binary.BigEndian.AppendUint64(k, uint64(t.UnixNano()+1)^1<<63)
}

func parseExpiryKey(k []byte) (time.Time, string, error) {
	if len(k) < 10 || k[0] != prefixExpiry {
		return time.Time{}, "", fmt.Errorf("parsing expiry key %q: %w", k, store.ErrCorrupt)
	}
	ns := int64(binary.BigEndian.Uint64(k[1:9]) ^ 1<<63)
	return time.Unix(0, ns), string(k[9:]), nil
}

func fileKey(u uploadID) []byte { return append([]byte{prefixFile}, u[:]...) }

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte{}, p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // no upper bound
}

// Values.

func header(n int) []byte {
	b := make([]byte, 1, 1+n)
	b[0] = recordV1
	return b
}

func checkHeader(what string, b []byte, fixed int, exact bool) error {
	if len(b) < 1+fixed || (exact && len(b) != 1+fixed) {
		return fmt.Errorf("decoding %s: %d bytes: %w", what, len(b), store.ErrCorrupt)
	}
	if b[0] != recordV1 {
		return fmt.Errorf("decoding %s: unknown format %d: %w", what, b[0], store.ErrCorrupt)
	}
	return nil
}

func encodeUint(v uint64) []byte { return binary.BigEndian.AppendUint64(header(8), v) }

func decodeUint(what string, b []byte) (uint64, error) {
	if err := checkHeader(what, b, 8, true); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b[1:]), nil
}

func encodeKV(rev uint64, value []byte) []byte {
	b := binary.BigEndian.AppendUint64(header(8+len(value)), rev)
	return append(b, value...)
}

// decodeKV returns the revision and value; value aliases b.
func decodeKV(b []byte) (uint64, []byte, error) {
	if err := checkHeader("kv record", b, 8, false); err != nil {
		return 0, nil, err
	}
	rev := binary.BigEndian.Uint64(b[1:9])
	if rev == 0 {
		return 0, nil, fmt.Errorf("decoding kv record: revision 0: %w", store.ErrCorrupt)
	}
	return rev, b[9:], nil
}

func encodeMeta(i store.LogInfo) []byte {
	b := binary.BigEndian.AppendUint64(header(16), i.First)
	return binary.BigEndian.AppendUint64(b, i.Last)
}

func decodeMeta(b []byte) (store.LogInfo, error) {
	if err := checkHeader("log meta", b, 16, true); err != nil {
		return store.LogInfo{}, err
	}
	i := store.LogInfo{First: binary.BigEndian.Uint64(b[1:9]), Last: binary.BigEndian.Uint64(b[9:17])}
	if i.First == 0 || i.First > i.Last+1 {
		return store.LogInfo{}, fmt.Errorf("decoding log meta: first %d, last %d: %w", i.First, i.Last, store.ErrCorrupt)
	}
	return i, nil
}

func encodeEntry(t time.Time, data []byte) []byte {
	return appendEntry(make([]byte, 0, entryLen(data)), t.UnixNano(), data)
}

func entryLen(data []byte) int { return 1 + 8 + len(data) }

func appendEntry(b []byte, at int64, data []byte) []byte {
	b = append(b, recordV1)
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	return append(b, data...)
}

// decodeEntry returns the append time and data; data aliases b.
func decodeEntry(b []byte) (time.Time, []byte, error) {
	if err := checkHeader("log entry", b, 8, false); err != nil {
		return time.Time{}, nil, err
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[1:9]))), b[9:], nil
}

type manifest struct {
	upload  uploadID
	size    int64
	created time.Time
	expires time.Time // zero: never
}

func encodeTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.BigEndian.AppendUint64(b, 0)
	}
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixNano()))
}

func decodeTime(b []byte) time.Time {
	ns := int64(binary.BigEndian.Uint64(b))
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func encodeManifest(m manifest) []byte {
	b := append(header(16+24), m.upload[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.size))
	b = encodeTime(b, m.created)
	return encodeTime(b, m.expires)
}

func decodeManifest(b []byte) (manifest, error) {
	var m manifest
	if err := checkHeader("blob manifest", b, 40, true); err != nil {
		return m, err
	}
	copy(m.upload[:], b[1:17])
	m.size = int64(binary.BigEndian.Uint64(b[17:25]))
	if m.size < 0 {
		return manifest{}, fmt.Errorf("decoding blob manifest: size %d: %w", m.size, store.ErrCorrupt)
	}
	m.created = decodeTime(b[25:33])
	m.expires = decodeTime(b[33:41])
	return m, nil
}
