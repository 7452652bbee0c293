// Package audit is a hash-chained, append-only audit log kept in a
// store.KV bucket. The archive and every custodian write each warrant,
// request and answer to one.
//
// Entry n holds the SHA-256 hash of entry n-1, so rewriting, removing or
// reordering any entry breaks the chain at the next one; the head (last
// sequence and its hash) is written in the same transaction as the entry,
// so truncating the log or rewriting its last entry is detected as well.
// Verify walks the whole chain. Whoever can write the store can still cut
// the log short and rewrite its head, or re-chain it from any entry with
// valid hashes; against that, each service signs its head (SignHead) and
// hands it to the others, which anchor it in their own logs (AppendAnchor).
// Check, given those anchored heads, finds a truncation or rewrite made
// after them; so does anyone holding an earlier signed head.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"anom/internal/store"
)

// Limits of an entry.
const (
	MaxKind = 64
	// MaxBody bounds an entry's body; an entry must fit one store value.
	MaxBody = store.MaxValueSize - 256
)

// Sentinel errors; match with errors.Is.
var (
	// ErrMalformed: stored or given bytes are not an entry.
	ErrMalformed = errors.New("audit: malformed entry")
	// ErrTampered: the chain does not verify. The error is a *TamperError.
	ErrTampered = errors.New("audit: log has been tampered with")
	// ErrTooLarge: an entry's body exceeds MaxBody.
	ErrTooLarge = errors.New("audit: entry too large")
)

// TamperError names the first entry at which verification failed.
type TamperError struct {
	Seq    uint64 // sequence of the entry that does not verify (0: the head)
	Reason string
	// Anchored is true when the chain itself verifies but does not hold a
	// head anchored elsewhere (truncated, rewritten or re-chained).
	Anchored bool
}

func (e *TamperError) Error() string {
	return fmt.Sprintf("audit: log has been tampered with at entry %d: %s", e.Seq, e.Reason)
}

// Is makes errors.Is(err, ErrTampered) true.
func (e *TamperError) Is(target error) bool { return target == ErrTampered }

// Entry is one audit log entry.
type Entry struct {
	Seq  uint64    // 1, 2, 3, ...
	Time time.Time // when it was appended, to the millisecond
	Prev [32]byte  // hash of entry Seq-1; zero for the first entry
	Kind string    // what happened, e.g. "request", "answer"; 1..64 bytes
	Body []byte    // the details (JSON by convention); 0..MaxBody bytes
}

const (
	formatVersion = 1
	hashContext   = "anom/audit/v1 entry\x00"
	headKey       = "head"
	entryPrefix   = "e/"
)

// MarshalBinary encodes the entry: version, seq, time (ms), prev, kind
// (8-bit length), body (32-bit length).
func (e *Entry) MarshalBinary() ([]byte, error) {
	if len(e.Kind) < 1 || len(e.Kind) > MaxKind {
		return nil, fmt.Errorf("encoding audit entry: %w: kind is %d bytes", ErrMalformed, len(e.Kind))
	}
	if len(e.Body) > MaxBody {
		return nil, fmt.Errorf("encoding audit entry: %w: body is %d bytes", ErrTooLarge, len(e.Body))
	}
	ms := e.Time.UnixMilli()
	if ms < 0 {
		return nil, fmt.Errorf("encoding audit entry: %w: time %v before 1970", ErrMalformed, e.Time)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 64+len(e.Kind)+len(e.Body)))
	b.AddUint8(formatVersion)
	b.AddUint64(e.Seq)
	b.AddUint64(uint64(ms))
	b.AddBytes(e.Prev[:])
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(e.Kind)) })
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.Body) })
	return b.Bytes()
}

// ParseEntry decodes an entry encoded by MarshalBinary.
func ParseEntry(data []byte) (*Entry, error) {
	s := cryptobyte.String(data)
	var (
		v       uint8
		e       Entry
		ms      uint64
		prev    []byte
		kind    cryptobyte.String
		bodyLen uint32
		body    []byte
	)
	if !s.ReadUint8(&v) {
		return nil, fmt.Errorf("decoding audit entry: %w: empty", ErrMalformed)
	}
	if v != formatVersion {
		return nil, fmt.Errorf("decoding audit entry: %w: version %d", ErrMalformed, v)
	}
	if !s.ReadUint64(&e.Seq) || !s.ReadUint64(&ms) || !s.ReadBytes(&prev, 32) ||
		!s.ReadUint8LengthPrefixed(&kind) || !s.ReadUint32(&bodyLen) ||
		bodyLen > MaxBody || !s.ReadBytes(&body, int(bodyLen)) {
		return nil, fmt.Errorf("decoding audit entry: %w: truncated", ErrMalformed)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("decoding audit entry: %w: %d trailing bytes", ErrMalformed, len(s))
	}
	if len(kind) < 1 || len(body) > MaxBody || ms > 1<<62 || e.Seq == 0 {
		return nil, fmt.Errorf("decoding audit entry: %w: field out of range", ErrMalformed)
	}
	copy(e.Prev[:], prev)
	e.Time = time.UnixMilli(int64(ms)).UTC()
	e.Kind = string(kind)
	e.Body = append([]byte{}, body...)
	return &e, nil
}

// Hash is the chain hash of an encoded entry.
func Hash(encoded []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(hashContext))
	h.Write(encoded)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Head is the end of the chain: the last sequence and its entry's hash.
type Head struct {
	Seq  uint64
	Hash [32]byte
}

// String is "seq:hexhash", as the transparency report prints it.
func (h Head) String() string { return fmt.Sprintf("%d:%s", h.Seq, hex.EncodeToString(h.Hash[:])) }

func (h Head) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, h.Seq)
	return append(b, h.Hash[:]...)
}

func decodeHead(b []byte) (Head, error) {
	if len(b) != 40 {
		return Head{}, fmt.Errorf("%w: head is %d bytes", ErrMalformed, len(b))
	}
	var h Head
	h.Seq = binary.BigEndian.Uint64(b)
	copy(h.Hash[:], b[8:])
	return h, nil
}

func entryKey(seq uint64) string { return fmt.Sprintf("%s%020d", entryPrefix, seq) }

// Log appends to one audit log. It is safe for concurrent use by one
// process; two processes must not append to the same bucket.
type Log struct {
	kv     store.KV
	bucket string
	now    func() time.Time

	mu      sync.Mutex
	head    Head
	headRev uint64 // revision of the head key; 0 if the log is empty
}

// Open opens the log kept in bucket of kv. now is the clock; nil means
// time.Now.
func Open(ctx context.Context, kv store.KV, bucket string, now func() time.Time) (*Log, error) {
	if err := store.CheckBucket(bucket); err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	l := &Log{kv: kv, bucket: bucket, now: now}
	e, err := kv.Get(ctx, bucket, headKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("opening audit log %q: %w", bucket, err)
	default:
		if l.head, err = decodeHead(e.Value); err != nil {
			return nil, fmt.Errorf("opening audit log %q: %w", bucket, err)
		}
		l.headRev = e.Revision
	}
	return l, nil
}

// Head returns the current end of the chain.
func (l *Log) Head() Head {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}

// Append adds an entry of the given kind and body, durably, and returns it.
func (l *Log) Append(ctx context.Context, kind string, body []byte) (*Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := &Entry{Seq: l.head.Seq + 1, Time: l.now().UTC().Truncate(time.Millisecond), Prev: l.head.Hash, Kind: kind, Body: body}
	enc, err := e.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("appending to audit log %q: %w", l.bucket, err)
	}
	head := Head{Seq: e.Seq, Hash: Hash(enc)}
	headOp := store.CreateOp(l.bucket, headKey, head.encode())
	if l.headRev != 0 {
		headOp = store.UpdateOp(l.bucket, headKey, head.encode(), l.headRev)
	}
	revs, err := l.kv.Txn(ctx, store.CreateOp(l.bucket, entryKey(e.Seq), enc), headOp)
	if err != nil {
		return nil, fmt.Errorf("appending to audit log %q: %w", l.bucket, err)
	}
	l.head, l.headRev = head, revs[1]
	return e, nil
}

// AppendJSON appends an entry whose body is body encoded as JSON. A body
// too large for an entry is replaced by a note of its size, so the log
// never refuses to record an event (a refusal of a huge request, say).
func (l *Log) AppendJSON(ctx context.Context, kind string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("writing audit entry: %w", err)
	}
	if len(b) > MaxBody {
		b, _ = json.Marshal(map[string]any{"truncated": true, "bytes": len(b)})
	}
	if _, err := l.Append(ctx, kind, b); err != nil {
		return fmt.Errorf("writing audit entry: %w", err)
	}
	return nil
}

// Entries returns up to limit entries with sequence > after, in order
// (limit 0 or above store.MaxListLimit means store.MaxListLimit). It does
// not verify the chain.
func Entries(ctx context.Context, kv store.KV, bucket string, after uint64, limit int) ([]*Entry, error) {
	opts := store.ListOptions{Prefix: entryPrefix, Limit: limit}
	if after > 0 {
		opts.After = entryKey(after)
	}
	page, _, err := kv.List(ctx, bucket, opts)
	if err != nil {
		return nil, fmt.Errorf("reading audit log %q: %w", bucket, err)
	}
	out := make([]*Entry, 0, len(page))
	for _, p := range page {
		e, err := ParseEntry(p.Value)
		if err != nil {
			return nil, fmt.Errorf("reading audit log %q: %s: %w", bucket, p.Key, err)
		}
		out = append(out, e)
	}
	return out, nil
}
