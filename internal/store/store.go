package store

import (
	"context"
	"io"
	"time"
)

// Store is the storage of one anom server. All methods are safe for
// concurrent use. After Close every method returns ErrClosed.
type Store interface {
	KV
	Logs
	Blobs
	// Close waits for in-flight calls, closes open blob readers and
	// releases the store.
	Close() error
}

// Entry is one KV entry.
type Entry struct {
	Bucket   string
	Key      string
	Value    []byte
	Revision uint64 // > 0; changes on every write of the key
}

// ListOptions selects a page of keys in ascending byte order.
type ListOptions struct {
	// Prefix restricts the listing to keys that start with it; "" lists all.
	Prefix string
	// After, if not "", starts the page after this key (pass the last key
	// of the previous page).
	After string
	// Limit is the page size; zero or more than MaxListLimit means
	// MaxListLimit.
	Limit int
}

// KV is a set of named buckets of revisioned entries.
//
// Revisions are positive and strictly increase with every write of a key,
// also across a Delete and re-Create, so a stale revision never matches
// again. Nothing else about them is promised (they are not dense and may be
// shared with other keys' sequence).
type KV interface {
	// Get returns the entry or ErrNotFound.
	Get(ctx context.Context, bucket, key string) (Entry, error)
	// Put writes the value whatever the current state; it returns the new
	// revision.
	Put(ctx context.Context, bucket, key string, value []byte) (uint64, error)
	// Create writes the value only if the key does not exist (ErrExists).
	Create(ctx context.Context, bucket, key string, value []byte) (uint64, error)
	// Update writes the value only if the key's current revision is rev:
	// ErrNotFound if it does not exist, ErrRevisionMismatch otherwise.
	Update(ctx context.Context, bucket, key string, value []byte, rev uint64) (uint64, error)
	// Delete removes the key. With rev == 0 it is unconditional and
	// deleting a missing key succeeds; with rev > 0 the key must exist
	// (ErrNotFound) at that revision (ErrRevisionMismatch).
	Delete(ctx context.Context, bucket, key string, rev uint64) error
	// List returns one page of entries; more reports whether entries
	// remain after the page.
	List(ctx context.Context, bucket string, opts ListOptions) (entries []Entry, more bool, err error)
	// Txn applies all operations atomically, or none: on failure it
	// returns a *TxnError naming the first failing operation. It returns
	// the new revision of each operation (0 for deletes). At most
	// MaxTxnOps operations, one per bucket/key.
	Txn(ctx context.Context, ops ...Op) ([]uint64, error)
}

// OpKind is the kind of a transaction operation.
type OpKind uint8

// Operation kinds; they mean what the KV method of the same name means.
const (
	OpPut OpKind = iota + 1
	OpCreate
	OpUpdate
	OpDelete
	// OpCheck writes nothing; it requires the key to exist at Rev (or,
	// with Rev == 0, not to exist).
	OpCheck
)

func (k OpKind) String() string {
	switch k {
	case OpPut:
		return "put"
	case OpCreate:
		return "create"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	case OpCheck:
		return "check"
	}
	return "invalid"
}

// Op is one operation of a KV transaction. Build it with PutOp, CreateOp,
// UpdateOp, DeleteOp or CheckOp.
type Op struct {
	Kind   OpKind
	Bucket string
	Key    string
	Value  []byte
	Rev    uint64
}

// PutOp writes value unconditionally.
func PutOp(bucket, key string, value []byte) Op {
	return Op{Kind: OpPut, Bucket: bucket, Key: key, Value: value}
}

// CreateOp writes value if the key does not exist.
func CreateOp(bucket, key string, value []byte) Op {
	return Op{Kind: OpCreate, Bucket: bucket, Key: key, Value: value}
}

// UpdateOp writes value if the key is at revision rev.
func UpdateOp(bucket, key string, value []byte, rev uint64) Op {
	return Op{Kind: OpUpdate, Bucket: bucket, Key: key, Value: value, Rev: rev}
}

// DeleteOp deletes the key; rev > 0 makes it conditional as in KV.Delete.
func DeleteOp(bucket, key string, rev uint64) Op {
	return Op{Kind: OpDelete, Bucket: bucket, Key: key, Rev: rev}
}

// CheckOp requires the key to be at revision rev, or absent if rev == 0.
func CheckOp(bucket, key string, rev uint64) Op {
	return Op{Kind: OpCheck, Bucket: bucket, Key: key, Rev: rev}
}

// LogEntry is one entry of a log.
type LogEntry struct {
	Seq  uint64
	Time time.Time // when the store appended it (server clock)
	Data []byte
}

// LogInfo describes a log. A log that was never written has all zero.
type LogInfo struct {
	First uint64 // sequence of the oldest entry kept; Last+1 if none are kept
	Last  uint64 // sequence of the newest entry ever appended; 0 if none
}

// Len is the number of entries kept.
func (i LogInfo) Len() uint64 {
	if i.Last == 0 {
		return 0
	}
	return i.Last - i.First + 1
}

// Append is one log's part of AppendAll.
type Append struct {
	Log     string
	Entries [][]byte
	// IfLast, when Check is true, makes the append conditional on the
	// log's last sequence being IfLast (0: the log is empty and was never
	// written).
	IfLast uint64
	Check  bool
}

// Logs is a set of named append-only logs with dense per-log sequences.
type Logs interface {
	// Append adds entries to the end of the log and returns the sequence
	// of the first; the entries get consecutive sequences.
	Append(ctx context.Context, log string, entries ...[]byte) (uint64, error)
	// AppendIf is Append conditioned on the log's last sequence being
	// last; otherwise it returns a *ConflictError (ErrConflict).
	AppendIf(ctx context.Context, log string, last uint64, entries ...[]byte) (uint64, error)
	// AppendAll applies appends to several distinct logs atomically and
	// returns each one's first sequence. At most MaxTxnOps logs.
	AppendAll(ctx context.Context, appends ...Append) ([]uint64, error)
	// Read returns up to max entries (zero or more than MaxReadEntries
	// means MaxReadEntries) with sequence >= from, in order, stopping
	// early once MaxReadBytes are gathered (it always returns at least one
	// entry if any exists). Trimmed entries are skipped, so the first
	// returned sequence may be greater than from.
	Read(ctx context.Context, log string, from uint64, max int) ([]LogEntry, error)
	// Info returns the log's first kept and last sequence.
	Info(ctx context.Context, log string) (LogInfo, error)
	// Trim removes entries with sequence < before (capped at Last+1).
	// Sequences are not reused.
	Trim(ctx context.Context, log string, before uint64) error
	// TrimBefore removes the oldest entries appended before t, stopping at
	// the first entry appended at or after t.
	TrimBefore(ctx context.Context, log string, t time.Time) error
	// DeleteLog removes the log, its entries and cursors. A log written
	// again afterwards starts over at sequence 1.
	DeleteLog(ctx context.Context, log string) error
	// ListLogs returns a page of log names (logs that were ever written
	// and not deleted) in ascending order.
	ListLogs(ctx context.Context, opts ListOptions) (names []string, more bool, err error)
	// Wait blocks until the log's last sequence is greater than after and
	// returns it, or returns the context's error.
	Wait(ctx context.Context, log string, after uint64) (uint64, error)
	// SetCursor moves a consumer's cursor forward to seq (at most the
	// log's last sequence; ErrInvalid beyond) and returns the cursor, which
	// never moves back: a smaller seq leaves it unchanged.
	SetCursor(ctx context.Context, log, consumer string, seq uint64) (uint64, error)
	// Cursor returns a consumer's cursor, 0 if never set.
	Cursor(ctx context.Context, log, consumer string) (uint64, error)
}

// BlobInfo describes a stored blob.
type BlobInfo struct {
	ID      string
	Size    int64
	Created time.Time
	Expires time.Time // zero: never
}

// BlobOptions controls PutBlob.
type BlobOptions struct {
	// MaxSize is the largest accepted size in bytes; zero means the
	// backend's limit (at least MinBlobLimit). A larger blob fails with
	// ErrTooLarge and nothing is stored.
	MaxSize int64
	// Expires, if not zero, is when the blob stops being readable.
	Expires time.Time
}

// Blobs stores opaque blobs, streamed in chunks.
type Blobs interface {
	// PutBlob stores everything read from r under id; ErrExists if id is
	// taken. The blob becomes visible, durably, only when PutBlob returns
	// nil.
	PutBlob(ctx context.Context, id string, r io.Reader, opts BlobOptions) (BlobInfo, error)
	// GetBlob opens the blob for reading. The reader sees the blob as it
	// was when opened even if it is deleted meanwhile; it must be closed.
	// It seeks (io.SeekStart, io.SeekCurrent, io.SeekEnd), so HTTP range
	// requests can resume large downloads (http.ServeContent).
	GetBlob(ctx context.Context, id string) (io.ReadSeekCloser, BlobInfo, error)
	// StatBlob returns the blob's description.
	StatBlob(ctx context.Context, id string) (BlobInfo, error)
	// DeleteBlob removes the blob; ErrNotFound if there is none.
	DeleteBlob(ctx context.Context, id string) error
	// SweepBlobs removes blobs whose expiry is at or before now and
	// returns how many it removed.
	SweepBlobs(ctx context.Context, now time.Time) (int, error)
}
