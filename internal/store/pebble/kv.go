package pebble

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"anom/internal/store"
)

// Get implements store.KV.
func (s *Store) Get(ctx context.Context, bucket, key string) (store.Entry, error) {
	if err := checkKey(bucket, key); err != nil {
		return store.Entry{}, fmt.Errorf("getting %s/%s: %w", bucket, key, err)
	}
	if err := s.enter(); err != nil {
		return store.Entry{}, err
	}
	defer s.leave()
	v := s.acquire()
	defer v.release()
	raw, ok, err := v.get(kvKey(bucket, key))
	if err != nil {
		return store.Entry{}, fmt.Errorf("getting %s/%s: %w", bucket, key, err)
	}
	if !ok {
		return store.Entry{}, fmt.Errorf("getting %s/%s: %w", bucket, key, store.ErrNotFound)
	}
	rev, val, err := decodeKV(raw)
	if err != nil {
		return store.Entry{}, fmt.Errorf("getting %s/%s: %w", bucket, key, err)
	}
	return store.Entry{Bucket: bucket, Key: key, Value: val, Revision: rev}, nil
}

// Put implements store.KV.
func (s *Store) Put(ctx context.Context, bucket, key string, value []byte) (uint64, error) {
	return s.single(ctx, store.PutOp(bucket, key, value))
}

// Create implements store.KV.
func (s *Store) Create(ctx context.Context, bucket, key string, value []byte) (uint64, error) {
	return s.single(ctx, store.CreateOp(bucket, key, value))
}

// Update implements store.KV.
func (s *Store) Update(ctx context.Context, bucket, key string, value []byte, rev uint64) (uint64, error) {
	return s.single(ctx, store.UpdateOp(bucket, key, value, rev))
}

// Delete implements store.KV.
func (s *Store) Delete(ctx context.Context, bucket, key string, rev uint64) error {
	_, err := s.single(ctx, store.DeleteOp(bucket, key, rev))
	return err
}

// single runs one operation and returns its error unwrapped from TxnError.
func (s *Store) single(ctx context.Context, op store.Op) (uint64, error) {
	if op.Value == nil && (op.Kind == store.OpPut || op.Kind == store.OpCreate || op.Kind == store.OpUpdate) {
		op.Value = []byte{}
	}
	revs, err := s.txn(ctx, []store.Op{op})
	if err != nil {
		if te, ok := err.(*store.TxnError); ok {
			err = te.Err
		}
		return 0, fmt.Errorf("%s %s/%s: %w", op.Kind, op.Bucket, op.Key, err)
	}
	return revs[0], nil
}

// Txn implements store.KV.
func (s *Store) Txn(ctx context.Context, ops ...store.Op) ([]uint64, error) {
	revs, err := s.txn(ctx, ops)
	if err != nil {
		return nil, fmt.Errorf("running transaction: %w", err)
	}
	return revs, nil
}

func (s *Store) txn(ctx context.Context, ops []store.Op) ([]uint64, error) {
	if err := store.CheckOps(ops); err != nil {
		return nil, err
	}
	size := 0
	for _, op := range ops {
		size += len(op.Key) + len(op.Value)
	}
	revs := make([]uint64, len(ops))
	err := s.submit(ctx, size, func(t *tx) error {
		for i, op := range ops {
			rev, err := t.kvOp(op)
			if err != nil {
				return &store.TxnError{Index: i, Op: op, Err: err}
			}
			revs[i] = rev
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return revs, nil
}

// kvOp checks and stages one operation.
func (t *tx) kvOp(op store.Op) (uint64, error) {
	k := kvKey(op.Bucket, op.Key)
	raw, exists, err := t.get(k)
	if err != nil {
		return 0, err
	}
	var cur uint64
	if exists {
		if cur, _, err = decodeKV(raw); err != nil {
			return 0, err
		}
	}
	switch op.Kind {
	case store.OpCreate:
		if exists {
			return 0, store.ErrExists
		}
	case store.OpUpdate:
		if !exists {
			return 0, store.ErrNotFound
		}
		if cur != op.Rev {
			return 0, store.ErrRevisionMismatch
		}
	case store.OpDelete:
		if op.Rev != 0 {
			if !exists {
				return 0, store.ErrNotFound
			}
			if cur != op.Rev {
				return 0, store.ErrRevisionMismatch
			}
		}
		if exists {
			t.del(k)
		}
		return 0, nil
	case store.OpCheck:
		if op.Rev == 0 && exists {
			return 0, store.ErrExists
		}
		if op.Rev != 0 && !exists {
			return 0, store.ErrNotFound
		}
		if op.Rev != 0 && cur != op.Rev {
			return 0, store.ErrRevisionMismatch
		}
		return cur, nil
	}
	rev := t.nextRev()
	t.set(k, encodeKV(rev, op.Value))
	return rev, nil
}

// List implements store.KV.
func (s *Store) List(ctx context.Context, bucket string, o store.ListOptions) ([]store.Entry, bool, error) {
	if err := store.CheckBucket(bucket); err != nil {
		return nil, false, fmt.Errorf("listing %s: %w", bucket, err)
	}
	limit, err := store.CheckList("key", o)
	if err != nil {
		return nil, false, fmt.Errorf("listing %s: %w", bucket, err)
	}
	if err := s.enter(); err != nil {
		return nil, false, err
	}
	defer s.leave()
	v := s.acquire()
	defer v.release()
	lo, hi := kvBucketBounds(bucket)
	if o.Prefix != "" {
		lo = kvKey(bucket, o.Prefix)
		hi = prefixEnd(lo)
	}
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, false, fmt.Errorf("listing %s: %w", bucket, err)
	}
	defer it.Close()
	var ok bool
	if o.After != "" {
		ok = it.SeekGE(append(kvKey(bucket, o.After), 0))
	} else {
		ok = it.First()
	}
	var out []store.Entry
	for ; ok; ok = it.Next() {
		if len(out) == limit {
			return out, true, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		key, err := parseKVKey(bucket, it.Key())
		if err != nil {
			return nil, false, fmt.Errorf("listing %s: %w", bucket, err)
		}
		rev, val, err := decodeKV(it.Value())
		if err != nil {
			return nil, false, fmt.Errorf("listing %s: %w", bucket, err)
		}
		out = append(out, store.Entry{Bucket: bucket, Key: key, Value: append([]byte(nil), val...), Revision: rev})
	}
	if err := it.Error(); err != nil {
		return nil, false, fmt.Errorf("listing %s: %w", bucket, err)
	}
	return out, false, nil
}

func checkKey(bucket, key string) error {
	if err := store.CheckBucket(bucket); err != nil {
		return err
	}
	return store.CheckName("key", key)
}
