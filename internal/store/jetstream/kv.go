package jetstream

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"anom/internal/store"
)

func (s *Store) kvSubject(bucket, key string) string { return s.names.kv + bucket + "." + key }

// kvState is the last message of a key's subject.
type kvState struct {
	seq   uint64 // stream sequence of the last message; 0 if none
	live  bool   // the last message is a value, not a deletion marker
	value []byte
}

// readKey returns the state of a subject of the KV stream.
func (s *Store) readKey(ctx context.Context, subject string) (kvState, error) {
	m, err := s.lastMsg(ctx, s.kv, subject)
	if err != nil || m == nil {
		return kvState{}, err
	}
	del, err := isDeleteMarker(m.Header)
	if err != nil {
		return kvState{}, fmt.Errorf("reading %s: %w", subject, err)
	}
	return kvState{seq: m.Sequence, live: !del, value: m.Data}, nil
}

func deleteHeader() nats.Header {
	h := nats.Header{}
	h.Set(hdrOp, opDelete)
	return h
}

func checkKey(bucket, key string) error {
	if err := store.CheckBucket(bucket); err != nil {
		return err
	}
	return store.CheckName("key", key)
}

// Get implements store.KV.
func (s *Store) Get(ctx context.Context, bucket, key string) (store.Entry, error) {
	what := fmt.Sprintf("getting %s/%s", bucket, key)
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return store.Entry{}, fmt.Errorf("%s: %w", what, err)
	}
	defer done()
	if err := checkKey(bucket, key); err != nil {
		return store.Entry{}, fmt.Errorf("%s: %w", what, err)
	}
	st, err := s.readKey(ctx, s.kvSubject(bucket, key))
	if err != nil {
		return store.Entry{}, s.fail(what, err)
	}
	if !st.live {
		return store.Entry{}, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return store.Entry{Bucket: bucket, Key: key, Value: st.value, Revision: st.seq}, nil
}

// Put implements store.KV.
func (s *Store) Put(ctx context.Context, bucket, key string, value []byte) (uint64, error) {
	return s.write(ctx, store.PutOp(bucket, key, value))
}

// Create implements store.KV.
func (s *Store) Create(ctx context.Context, bucket, key string, value []byte) (uint64, error) {
	return s.write(ctx, store.CreateOp(bucket, key, value))
}

// Update implements store.KV.
func (s *Store) Update(ctx context.Context, bucket, key string, value []byte, rev uint64) (uint64, error) {
	return s.write(ctx, store.UpdateOp(bucket, key, value, rev))
}

// Delete implements store.KV.
func (s *Store) Delete(ctx context.Context, bucket, key string, rev uint64) error {
	_, err := s.write(ctx, store.DeleteOp(bucket, key, rev))
	return err
}

// write applies one KV operation as a Txn of one.
func (s *Store) write(ctx context.Context, op store.Op) (uint64, error) {
	what := fmt.Sprintf("%s %s/%s", op.Kind, op.Bucket, op.Key)
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	defer done()
	if op.Kind == store.OpUpdate && op.Rev == 0 {
		return 0, fmt.Errorf("%s: revision 0: %w", what, store.ErrInvalid)
	}
	if err := checkKey(op.Bucket, op.Key); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if err := store.CheckValue("value", op.Value); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	revs, err := s.txn(ctx, []store.Op{op})
	if err != nil {
		if te, ok := err.(*store.TxnError); ok {
			err = te.Err
		}
		return 0, s.fail(what, err)
	}
	return revs[0], nil
}

// Txn implements store.KV.
func (s *Store) Txn(ctx context.Context, ops ...store.Op) ([]uint64, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("transaction: %w", err)
	}
	defer done()
	if err := store.CheckOps(ops); err != nil {
		return nil, err
	}
	revs, err := s.txn(ctx, ops)
	if err != nil {
		if _, ok := err.(*store.TxnError); ok {
			return nil, err
		}
		return nil, s.fail("transaction", err)
	}
	return revs, nil
}

// txn publishes ops as one message or atomic batch, each conditional
// operation carrying its expected last subject sequence. When a condition
// fails it reads the keys to name the first failing operation; if all
// hold again by then, it tries again.
func (s *Store) txn(ctx context.Context, ops []store.Op) ([]uint64, error) {
	for {
		msgs := make([]pubMsg, len(ops))
		for i, op := range ops {
			subj := s.kvSubject(op.Bucket, op.Key)
			m := pubMsg{subject: subj, data: bytes.Clone(op.Value)}
			if m.data == nil {
				m.data = []byte{}
			}
			switch op.Kind {
			case store.OpPut:
			case store.OpCreate, store.OpCheck:
				if op.Kind == store.OpCheck && op.Rev > 0 {
					m.expect, m.expectSeq = true, op.Rev
					break
				}
				// Absent: either no message or a deletion marker, whose
				// sequence the condition must name.
				st, err := s.readKey(ctx, subj)
				if err != nil {
					return nil, err
				}
				if st.live {
					return nil, &store.TxnError{Index: i, Op: op, Err: store.ErrExists}
				}
				m.expect, m.expectSeq = true, st.seq
			case store.OpUpdate:
				m.expect, m.expectSeq = true, op.Rev
			case store.OpDelete:
				m.header = deleteHeader()
				if op.Rev > 0 {
					m.expect, m.expectSeq = true, op.Rev
				} else if len(ops) == 1 {
					st, err := s.readKey(ctx, subj)
					if err != nil {
						return nil, err
					}
					if !st.live {
						return []uint64{0}, nil // nothing to delete
					}
					m.expect, m.expectSeq = true, st.seq
				}
			}
			if op.Kind == store.OpCheck {
				// A check writes nothing of the key: a message on the
				// scratch subject carries the condition for the key.
				m.subject, m.expectSubject, m.data = s.names.chk, subj, nil
			}
			msgs[i] = m
		}
		first, err := s.publish(ctx, msgs)
		if err == nil {
			revs := make([]uint64, len(ops))
			for i, op := range ops {
				if op.Kind != store.OpDelete && op.Kind != store.OpCheck {
					revs[i] = first + uint64(i)
				}
			}
			return revs, nil
		}
		if isTooLarge(err) {
			return nil, fmt.Errorf("%v: %w", err, store.ErrTooLarge)
		}
		if !isWrongLast(err) {
			return nil, err
		}
		if te, err := s.explainTxn(ctx, ops); err != nil || te != nil {
			if err != nil {
				return nil, err
			}
			return nil, te
		}
		// Every condition holds again (or the key changed between reading
		// and writing it): try again.
	}
}

// explainTxn finds the first operation whose condition fails now.
func (s *Store) explainTxn(ctx context.Context, ops []store.Op) (*store.TxnError, error) {
	for i, op := range ops {
		var want error
		switch op.Kind {
		case store.OpPut:
			continue
		case store.OpDelete:
			if op.Rev == 0 {
				continue
			}
		}
		st, err := s.readKey(ctx, s.kvSubject(op.Bucket, op.Key))
		if err != nil {
			return nil, err
		}
		switch {
		case op.Kind == store.OpCreate || op.Kind == store.OpCheck && op.Rev == 0:
			if st.live {
				want = store.ErrExists
			}
		case !st.live:
			want = store.ErrNotFound
		case st.seq != op.Rev:
			want = store.ErrRevisionMismatch
		}
		if want != nil {
			return &store.TxnError{Index: i, Op: op, Err: want}, nil
		}
	}
	return nil, nil
}

// List implements store.KV. It lists the bucket's subjects (JetStream
// keeps them indexed), sorts them and reads the page's entries.
func (s *Store) List(ctx context.Context, bucket string, opts store.ListOptions) ([]store.Entry, bool, error) {
	what := fmt.Sprintf("listing %s", bucket)
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", what, err)
	}
	defer done()
	if err := store.CheckBucket(bucket); err != nil {
		return nil, false, fmt.Errorf("%s: %w", what, err)
	}
	limit, err := store.CheckList("key", opts)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", what, err)
	}
	base := s.names.kv + bucket + "."
	keys, err := s.sortedNames(ctx, s.kv, base, opts)
	if err != nil {
		return nil, false, s.fail(what, err)
	}
	var out []store.Entry
	for _, k := range keys {
		st, err := s.readKey(ctx, base+k)
		if err != nil {
			return nil, false, s.fail(what, err)
		}
		if !st.live {
			continue
		}
		if len(out) == limit {
			return out, true, nil
		}
		out = append(out, store.Entry{Bucket: bucket, Key: k, Value: st.value, Revision: st.seq})
	}
	return out, false, nil
}

// sortedNames returns the names after base of st's subjects that match
// the list options' prefix and come after opts.After, in byte order.
func (s *Store) sortedNames(ctx context.Context, st js.Stream, base string, opts store.ListOptions) ([]string, error) {
	filter := base + ">"
	if i := strings.LastIndexByte(opts.Prefix, '.'); i >= 0 {
		filter = base + opts.Prefix[:i+1] + ">" // narrow to the prefix's whole tokens
	}
	subs, err := s.subjects(ctx, st, filter)
	if err != nil {
		return nil, err
	}
	var names []string
	for subj := range subs {
		name, ok := strings.CutPrefix(subj, base)
		if !ok || !strings.HasPrefix(name, opts.Prefix) || name <= opts.After {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}
