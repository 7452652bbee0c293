// Package store defines the storage of an anom server: one interface, with
// an embedded Pebble backend (package store/pebble) and, later, a NATS
// JetStream backend. Every backend must pass the conformance suite in
// package store/storetest.
//
// A Store has three kinds of data, each shaped so that it maps onto a
// JetStream primitive:
//
//   - KV buckets (directory: devices, usernames, distributors, activation
//     codes, key packages). Every entry has a revision; Create, Update with
//     an expected revision (compare-and-set), conditional Delete, paged
//     listing by prefix, and Txn, an all-or-nothing set of conditional
//     operations over any buckets. JetStream: one KV bucket whose keys are
//     "<bucket>.<key>"; the revision is the stream sequence, Update maps to
//     the expected-last-subject-sequence header, and Txn to an atomic batch
//     publish (ADR-50), which is why Txn is limited to MaxTxnOps operations.
//
//   - Logs (one per MLS group, plus outbox queues). Entries get dense
//     per-log sequence numbers starting at 1 that are never reused, even
//     after Trim. AppendIf appends only if the log's last sequence is the
//     one the caller expects and otherwise fails with a *ConflictError that
//     carries the current last sequence; this is how the delivery service
//     accepts exactly one commit per epoch, also between several servers
//     sharing a store. AppendAll appends to a few logs atomically (group
//     messages and their escrow records in the outbox: two logs of one
//     stream); claims that need no order, such as an escrow message
//     slot, are KV Creates rather than logs.
//     Per-consumer read cursors only move forward. JetStream: one stream
//     with a subject per log, the per-log sequence in a header, conditional
//     appends via expected-last-subject-sequence, AppendAll as an atomic
//     batch on that stream, Wait as a subscription. Cursors are KV values,
//     not JetStream consumers (one consumer per device does not scale).
//
//   - Blobs (encrypted attachments): streamed in and out in chunks, never
//     held whole in memory, each with an optional expiry after which it is
//     invisible and removed by SweepBlobs. JetStream: the object store.
//
// Queue (an outbox with pull and cumulative acknowledgement) and
// ClaimFirst (take one of many one-time entries, e.g. MLS key packages)
// are built on these primitives in this package, so every backend gets
// them for free.
//
// Durability: a write returns only once it is durable. Readers only see
// durable data. A write whose context ends while it is in flight may or
// may not have been applied.
//
// Names: bucket names match [A-Za-z0-9_-]{1,64}; keys, log names, consumer
// names and blob IDs use the JetStream key alphabet [A-Za-z0-9_=./-], at
// most MaxKeyLen bytes, and may not start or end with '.' or contain "..".
// Errors are sentinels (ErrNotFound, ErrExists, ErrRevisionMismatch,
// ErrConflict, ErrTooLarge, ErrInvalid, ErrClosed, ErrCorrupt) matched with errors.Is,
// and the typed *ConflictError and *TxnError matched with errors.As.
package store
