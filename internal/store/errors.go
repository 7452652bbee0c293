package store

import (
	"errors"
	"fmt"
)

// Sentinel errors. Backends wrap them with context; match with errors.Is.
var (
	// ErrNotFound: the key, blob or cursor does not exist (or has expired).
	ErrNotFound = errors.New("store: not found")
	// ErrExists: Create or PutBlob found an existing entry.
	ErrExists = errors.New("store: already exists")
	// ErrRevisionMismatch: an Update or conditional Delete named a
	// revision that is not the entry's current one.
	ErrRevisionMismatch = errors.New("store: revision mismatch")
	// ErrConflict: a conditional append found a different last sequence.
	// The error is a *ConflictError carrying the current last sequence.
	ErrConflict = errors.New("store: conflicting append")
	// ErrTooLarge: a key, value, entry, batch or blob exceeds its limit.
	ErrTooLarge = errors.New("store: too large")
	// ErrInvalid: a malformed name or argument.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store: closed")
	// ErrCorrupt: stored bytes could not be decoded.
	ErrCorrupt = errors.New("store: corrupt record")
	// ErrFull: the storage is out of space (a full disk or quota), so
	// nothing was written; reads still work. Backends wrap the cause
	// (ENOSPC) with it.
	ErrFull = errors.New("store: out of storage")
)

// ConflictError is returned by AppendIf and AppendAll when a log's last
// sequence is not the expected one. It matches ErrConflict.
type ConflictError struct {
	Log      string // the log whose condition failed
	Expected uint64 // the last sequence the caller expected
	Last     uint64 // the log's actual last sequence
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("store: conflicting append to log %q: expected last sequence %d, log is at %d", e.Log, e.Expected, e.Last)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// TxnError is returned by Txn when one operation fails; no operation of the
// transaction was applied. It unwraps to the operation's error (for
// example ErrExists or ErrRevisionMismatch).
type TxnError struct {
	Index int   // index of the failing operation
	Op    Op    // the failing operation
	Err   error // why it failed
}

func (e *TxnError) Error() string {
	return fmt.Sprintf("store: transaction operation %d (%s %s/%s): %v", e.Index, e.Op.Kind, e.Op.Bucket, e.Op.Key, e.Err)
}

func (e *TxnError) Unwrap() error { return e.Err }
