package archive

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"anom/escrow"
	"anom/identity"
	"anom/internal/store"
	"anom/internal/translog"
)

// IngestOptions tunes Ingest. The zero value is usable.
type IngestOptions struct {
	// Batch is the number of items pulled at once; zero means 500.
	Batch int
	// Poll is the wait after an empty pull or a failed one; zero means one
	// second.
	Poll time.Duration
}

// Ingest pulls from src until ctx ends, keeping every item durably before
// acknowledging it. It returns ctx's error, or an error that retrying cannot
// fix (items out of order). Failures of the source are retried after
// opts.Poll and logged.
func (a *Archive) Ingest(ctx context.Context, src Source, opts IngestOptions) error {
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	for {
		n, err := a.IngestOnce(ctx, src, opts.Batch)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrCursor) {
			return err
		}
		if err != nil {
			a.cfg.Logger.Warn("archive ingest failed; retrying", "err", err, "cursor", a.cursor)
		}
		if n > 0 && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(opts.Poll):
		}
	}
}

// IngestOnce pulls one batch of up to max items (zero means 500), stores
// it and acknowledges it to the source. It returns the number of items
// pulled. Items are durable before the acknowledgement; after a crash the
// source delivers them again and duplicates are dropped.
func (a *Archive) IngestOnce(ctx context.Context, src Source, max int) (int, error) {
	if max <= 0 {
		max = 500
	}
	items, err := src.Pull(ctx, a.cursor, max)
	if err != nil {
		return 0, fmt.Errorf("pulling after %d: %w", a.cursor, err)
	}
	if len(items) == 0 {
		return 0, nil
	}
	if err := a.store(ctx, items); err != nil {
		return len(items), err
	}
	if err := src.Ack(ctx, a.cursor); err != nil {
		return len(items), fmt.Errorf("acknowledging %d: %w", a.cursor, err)
	}
	return len(items), nil
}

// Limits of one store transaction, below the store's.
const (
	txnOps   = store.MaxTxnOps - 4
	txnBytes = store.MaxTxnBytes - 1<<20
)

type txn struct {
	ops   []store.Op
	bytes int
	last  uint64
}

// store writes a batch: blobs first (each durable on its own), then records
// and certificates in transactions that also move the cursor to their last
// item.
func (a *Archive) store(ctx context.Context, items []Item) error {
	prev := a.cursor
	for _, it := range items {
		if it.Cursor <= prev {
			return fmt.Errorf("storing item %d after %d: %w", it.Cursor, prev, ErrCursor)
		}
		prev = it.Cursor
	}
	var t txn
	seen := a.checkRecords(items)
	flush := func() error {
		if t.last == 0 {
			return nil
		}
		ops := append(t.ops, store.PutOp(bucketMeta, keyCursor, binary.BigEndian.AppendUint64(nil, t.last)))
		if _, err := a.cfg.Store.Txn(ctx, ops...); err != nil {
			return fmt.Errorf("storing items up to %d: %w", t.last, err)
		}
		a.cursor = t.last
		t = txn{}
		return nil
	}
	for _, it := range items {
		ops, err := a.itemOps(ctx, it, seen)
		if err != nil {
			return err
		}
		size := 0
		for _, op := range ops {
			size += len(op.Value) + len(op.Key)
		}
		if len(t.ops)+len(ops) > txnOps || t.bytes+size > txnBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		t.ops = append(t.ops, ops...)
		t.bytes += size
		t.last = it.Cursor
	}
	return flush()
}

// batchState is what the items of one batch have claimed so far, and the
// records of the batch as checked up front.
type batchState struct {
	slots   map[string]bool     // slot keys
	rs      map[string][32]byte // R (hex) -> slot
	records map[uint64]checked  // by cursor
}

// checked is a record item decoded, with the result of its proof check.
type checked struct {
	sr       *escrow.ServerRecord
	err      error // decoding
	proofErr error
}

// checkRecords decodes the batch's records and verifies their proofs π
// together (escrow.VerifyRecordProofs: one multi-scalar multiplication for
// the batch, then record by record only if it fails).
func (a *Archive) checkRecords(items []Item) *batchState {
	b := &batchState{slots: map[string]bool{}, rs: map[string][32]byte{}, records: map[uint64]checked{}}
	var (
		recs    []*escrow.Record
		cursors []uint64
	)
	for _, it := range items {
		if it.Kind != KindRecord {
			continue
		}
		sr, err := escrow.ParseServerRecord(it.Data)
		b.records[it.Cursor] = checked{sr: sr, err: err}
		if err == nil {
			recs = append(recs, sr.Signed.Record)
			cursors = append(cursors, it.Cursor)
		}
	}
	if len(recs) == 0 {
		return b
	}
	err := escrow.VerifyRecordProofs(a.cfg.Rand, a.policy.EscrowKey, recs)
	var pe *escrow.RecordProofsError
	switch {
	case err == nil:
	case errors.As(err, &pe):
		for _, re := range pe.Failed {
			c := b.records[cursors[re.Index]]
			c.proofErr = re.Err
			b.records[cursors[re.Index]] = c
		}
	default:
		// No randomness for the batch's weights: check each record alone,
		// which needs none, rather than refuse (and so skip for good)
		// records that may be honest.
		for i, cur := range cursors {
			if perr := escrow.VerifyRecordProof(a.policy.EscrowKey, recs[i]); perr != nil {
				c := b.records[cur]
				c.proofErr = perr
				b.records[cur] = c
			}
		}
	}
	return b
}

// itemOps makes an item's writes (blobs are written at once). An item the
// archive cannot keep is noted in the audit log and skipped, so that one bad
// item cannot stop ingestion.
func (a *Archive) itemOps(ctx context.Context, it Item, seen *batchState) ([]store.Op, error) {
	var (
		ops []store.Op
		err error
	)
	switch it.Kind {
	case KindRecord:
		ops, err = a.recordOps(ctx, it.Data, seen.records[it.Cursor], seen)
	case KindCertificate:
		ops, err = a.certificateOps(it.Data)
	case KindOnlineKey:
		ops, err = a.onlineKeyOps(it.Data)
	case KindBlob:
		err = a.putBlob(ctx, it.BlobID, it.Data)
	default:
		err = fmt.Errorf("%w: unknown kind %d", ErrInvalidItem, it.Kind)
	}
	if errors.Is(err, ErrInvalidItem) {
		if errors.Is(err, ErrReusedR) || errors.Is(err, escrow.ErrRecordProof) {
			a.cfg.Logger.Warn("ALERT: archive refused an escrow record whose R is not its own", "cursor", it.Cursor, "err", err)
		}
		b, _ := json.Marshal(map[string]any{"cursor": it.Cursor, "kind": it.Kind.String(), "error": err.Error()})
		if _, aerr := a.log.Append(ctx, "rejected", b); aerr != nil {
			return nil, fmt.Errorf("noting rejected item %d: %w", it.Cursor, aerr)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storing item %d: %w", it.Cursor, err)
	}
	return ops, nil
}

// recordOps checks a record and makes its writes. It keeps one record per
// slot (a second delivery of the same record is dropped, a different record
// for an archived slot is refused) and one record per R: a record whose R is
// the R of an archived record, in another slot, is refused (ErrReusedR), as
// is one whose proof π does not hold.
func (a *Archive) recordOps(ctx context.Context, data []byte, c checked, seen *batchState) ([]store.Op, error) {
	sr, err := c.sr, c.err
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidItem, err)
	}
	ck, err := a.countersignKey(ctx, sr.ServerID)
	if err != nil {
		return nil, err
	}
	if sr.ServerTime.Before(ck.NotBefore) || !sr.ServerTime.Before(ck.NotAfter) {
		return nil, fmt.Errorf("%w: countersigned at %v, outside the validity of key %q", ErrInvalidItem, sr.ServerTime.UTC(), sr.ServerID)
	}
	if err := sr.VerifyCached(ck.Key, a.countersigned); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidItem, err)
	}
	m := &sr.Signed.Record.Metadata
	slot, err := m.Slot()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidItem, err)
	}
	key := slotKey(slot)
	if seen.slots[key] {
		return nil, nil
	}
	e, err := a.cfg.Store.Get(ctx, bucketRecords, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		old, err := a.loadValue(ctx, e.Value)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(old, data) {
			// MLS never reuses a slot: a second, different record for it
			// is a sender's or server's fault. Keep the first.
			return nil, fmt.Errorf("%w: a different record for slot %x is already archived", ErrInvalidItem, slot)
		}
		return nil, nil // a duplicate delivery
	}
	rHex := hex.EncodeToString(mustEncode(sr.Signed.Record.R))
	if first, ok := seen.rs[rHex]; ok {
		return nil, fmt.Errorf("%w: %w: R %s is the R of the record in slot %x", ErrInvalidItem, ErrReusedR, rHex, first)
	}
	switch e, err := a.cfg.Store.Get(ctx, bucketRs, rHex); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		return nil, fmt.Errorf("%w: %w: R %s is the R of the archived record in slot %x", ErrInvalidItem, ErrReusedR, rHex, e.Value)
	}
	if c.proofErr != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidItem, c.proofErr)
	}
	seen.slots[key] = true
	seen.rs[rHex] = slot
	value := append([]byte{tagInline}, data...)
	if len(value) > store.MaxValueSize {
		name := recordBlobPrefix + hex.EncodeToString(slot[:])
		if err := a.putBlob(ctx, name, data); err != nil {
			return nil, err
		}
		value = append([]byte{tagBlob}, name...)
	}
	ops := []store.Op{store.PutOp(bucketRecords, key, value), store.PutOp(bucketRs, rHex, slot[:])}
	for _, k := range indexKeys(m, slot) {
		ops = append(ops, store.PutOp(bucketIndex, k, nil))
	}
	return ops, nil
}

// mustEncode encodes a group element (ristretto255 encodings never fail).
func mustEncode(e interface{ MarshalBinary() ([]byte, error) }) []byte {
	b, err := e.MarshalBinary()
	if err != nil {
		panic("archive: encoding a group element: " + err.Error())
	}
	return b
}

// loadValue returns the record bytes a records-bucket value holds.
func (a *Archive) loadValue(ctx context.Context, v []byte) ([]byte, error) {
	if len(v) < 1 {
		return nil, fmt.Errorf("%w: empty record value", store.ErrCorrupt)
	}
	switch v[0] {
	case tagInline:
		return v[1:], nil
	case tagBlob:
		return a.readBlob(ctx, string(v[1:]), escrowMaxRecord)
	}
	return nil, fmt.Errorf("%w: record value tag %d", store.ErrCorrupt, v[0])
}

// escrowMaxRecord bounds a stored record's encoding.
const escrowMaxRecord = 3 << 20

// parseLogged splits a logged item: log index (uint64) and encoded entry.
func parseLogged(data []byte, kind translog.Kind) (uint64, translog.Entry, error) {
	if len(data) < 8 {
		return 0, translog.Entry{}, fmt.Errorf("%w: logged item of %d bytes", ErrInvalidItem, len(data))
	}
	e, err := translog.DecodeEntry(data[8:])
	if err != nil {
		return 0, translog.Entry{}, fmt.Errorf("%w: %w", ErrInvalidItem, err)
	}
	if e.Kind != kind {
		return 0, translog.Entry{}, fmt.Errorf("%w: log entry is a %v, want %v", ErrInvalidItem, e.Kind, kind)
	}
	return binary.BigEndian.Uint64(data), e, nil
}

func (a *Archive) certificateOps(data []byte) ([]store.Op, error) {
	_, e, err := parseLogged(data, translog.KindDeviceCertificate)
	if err != nil {
		return nil, err
	}
	c, err := identity.DecodeDeviceCertificate(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidItem, err)
	}
	if err := c.VerifySignature(a.cfg.Root); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidItem, err)
	}
	dev := hex.EncodeToString(c.DeviceID[:])
	return []store.Op{
		store.PutOp(bucketDevices, fmt.Sprintf("%s/%016x", dev, c.Serial), data),
		store.PutOp(bucketUsers, hex.EncodeToString([]byte(c.Username))+"/"+dev, nil),
	}, nil
}

// onlineKeyOps keeps a countersigning key's logged certificate, which must
// chain to the root.
func (a *Archive) onlineKeyOps(data []byte) ([]store.Op, error) {
	idx, e, err := parseLogged(data, translog.KindOnlineKey)
	if err != nil {
		return nil, err
	}
	c, err := identity.OnlineKeyOfEntry(e)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidItem, err)
	}
	if err := c.Verify(a.cfg.Root, identity.RoleCountersign, c.NotBefore); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidItem, err)
	}
	id := countersignID(c)
	if err := store.CheckName("server id", id); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidItem, err)
	}
	// Records of the same batch are checked before the batch is stored.
	a.online.Store(id, &loggedKey{cert: c, index: idx, entry: data[8:]})
	return []store.Op{store.PutOp(bucketOnline, id, data)}, nil
}

// countersignID is the server id countersignatures by c's key carry
// (server.EscrowServerID).
func countersignID(c *identity.OnlineKeyCertificate) string {
	return fmt.Sprintf("%s/%d", c.Name, c.Serial)
}

// countersignKey returns the logged certificate of a countersigning key.
func (a *Archive) countersignKey(ctx context.Context, serverID []byte) (*identity.OnlineKeyCertificate, error) {
	if v, ok := a.online.Load(string(serverID)); ok {
		return v.(*loggedKey).cert, nil
	}
	lk, err := a.loggedKey(ctx, string(serverID))
	if err != nil {
		return nil, err
	}
	return lk.cert, nil
}

// loggedKey is a countersigning key's certificate and its log entry.
type loggedKey struct {
	cert  *identity.OnlineKeyCertificate
	index uint64
	entry []byte
}

func (a *Archive) loggedKey(ctx context.Context, id string) (*loggedKey, error) {
	if v, ok := a.online.Load(id); ok {
		return v.(*loggedKey), nil
	}
	if err := store.CheckName("server id", id); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidItem, err)
	}
	e, err := a.cfg.Store.Get(ctx, bucketOnline, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: no logged countersigning key %q", ErrInvalidItem, id)
	}
	if err != nil {
		return nil, fmt.Errorf("loading countersigning key %q: %w", id, err)
	}
	idx, le, err := parseLogged(e.Value, translog.KindOnlineKey)
	if err != nil {
		return nil, fmt.Errorf("loading countersigning key %q: %w: %w", id, store.ErrCorrupt, err)
	}
	c, err := identity.OnlineKeyOfEntry(le)
	if err != nil {
		return nil, fmt.Errorf("loading countersigning key %q: %w: %w", id, store.ErrCorrupt, err)
	}
	lk := &loggedKey{cert: c, index: idx, entry: e.Value[8:]}
	a.online.Store(id, lk)
	return lk, nil
}

func (a *Archive) putBlob(ctx context.Context, id string, data []byte) error {
	if err := store.CheckName("blob", id); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidItem, err)
	}
	_, err := a.cfg.Store.PutBlob(ctx, id, bytes.NewReader(data), store.BlobOptions{})
	if errors.Is(err, store.ErrExists) {
		return nil // delivered again
	}
	if errors.Is(err, store.ErrTooLarge) {
		return fmt.Errorf("%w: %w", ErrInvalidItem, err)
	}
	return err
}
