package pebble

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"anom/internal/store"
)

// Append implements store.Logs.
func (s *Store) Append(ctx context.Context, log string, entries ...[]byte) (uint64, error) {
	firsts, err := s.appendAll(ctx, []store.Append{{Log: log, Entries: entries}})
	if err != nil {
		return 0, fmt.Errorf("appending to log %q: %w", log, err)
	}
	return firsts[0], nil
}

// AppendIf implements store.Logs.
func (s *Store) AppendIf(ctx context.Context, log string, last uint64, entries ...[]byte) (uint64, error) {
	firsts, err := s.appendAll(ctx, []store.Append{{Log: log, Entries: entries, IfLast: last, Check: true}})
	if err != nil {
		return 0, fmt.Errorf("appending to log %q: %w", log, err)
	}
	return firsts[0], nil
}

// AppendAll implements store.Logs.
func (s *Store) AppendAll(ctx context.Context, appends ...store.Append) ([]uint64, error) {
	firsts, err := s.appendAll(ctx, appends)
	if err != nil {
		return nil, fmt.Errorf("appending to %d logs: %w", len(appends), err)
	}
	return firsts, nil
}

func (s *Store) appendAll(ctx context.Context, appends []store.Append) ([]uint64, error) {
	if err := store.CheckAppends(appends); err != nil {
		return nil, err
	}
	size := 0
	for _, a := range appends {
		for _, e := range a.Entries {
			size += len(e) + len(a.Log) + 16
		}
	}
	firsts := make([]uint64, len(appends))
	err := s.submit(ctx, size, func(t *tx) error {
		now := s.now()
		for i, a := range appends {
			first, err := t.appendLog(a, now)
			if err != nil {
				return err
			}
			firsts[i] = first
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return firsts, nil
}

func (t *tx) appendLog(a store.Append, now time.Time) (uint64, error) {
	mk := metaKey(a.Log)
	info, ok, err := t.getInfoAt(a.Log, mk)
	if err != nil {
		return 0, err
	}
	if !ok {
		info = store.LogInfo{First: 1}
	}
	if a.Check && info.Last != a.IfLast {
		return 0, &store.ConflictError{Log: a.Log, Expected: a.IfLast, Last: info.Last}
	}
	first := info.Last + 1
	for i, e := range a.Entries {
		t.setEntry(a.Log, first+uint64(i), now, e)
	}
	info.Last += uint64(len(a.Entries))
	t.set(mk, encodeMeta(info))
	t.appended(a.Log)
	return first, nil
}

// Read implements store.Logs.
func (s *Store) Read(ctx context.Context, log string, from uint64, max int) ([]store.LogEntry, error) {
	if err := store.CheckName("log", log); err != nil {
		return nil, fmt.Errorf("reading log: %w", err)
	}
	if max < 0 {
		return nil, fmt.Errorf("reading log %q: max %d: %w", log, max, store.ErrInvalid)
	}
	if max == 0 || max > store.MaxReadEntries {
		max = store.MaxReadEntries
	}
	if from == 0 {
		from = 1
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	v := s.acquire()
	defer v.release()
	_, hi := entryRange(log)
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: entryKey(log, from), UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("reading log %q: %w", log, err)
	}
	defer it.Close()
	var out []store.LogEntry
	bytes := 0
	for ok := it.First(); ok && len(out) < max && (bytes < store.MaxReadBytes || len(out) == 0); ok = it.Next() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		seq, err := parseEntryKey(log, it.Key())
		if err != nil {
			return nil, fmt.Errorf("reading log %q: %w", log, err)
		}
		at, data, err := decodeEntry(it.Value())
		if err != nil {
			return nil, fmt.Errorf("reading log %q at %d: %w", log, seq, err)
		}
		out = append(out, store.LogEntry{Seq: seq, Time: at, Data: append([]byte(nil), data...)})
		bytes += len(data)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("reading log %q: %w", log, err)
	}
	return out, nil
}

// Info implements store.Logs.
func (s *Store) Info(ctx context.Context, log string) (store.LogInfo, error) {
	if err := store.CheckName("log", log); err != nil {
		return store.LogInfo{}, fmt.Errorf("reading log info: %w", err)
	}
	if err := s.enter(); err != nil {
		return store.LogInfo{}, err
	}
	defer s.leave()
	v := s.acquire()
	defer v.release()
	return v.info(log)
}

func (v *view) info(log string) (store.LogInfo, error) {
	raw, ok, err := v.get(metaKey(log))
	if err != nil {
		return store.LogInfo{}, fmt.Errorf("reading log %q info: %w", log, err)
	}
	if !ok {
		return store.LogInfo{}, nil
	}
	info, err := decodeMeta(raw)
	if err != nil {
		return store.LogInfo{}, fmt.Errorf("reading log %q info: %w", log, err)
	}
	return info, nil
}

// Trim implements store.Logs.
func (s *Store) Trim(ctx context.Context, log string, before uint64) error {
	if err := store.CheckName("log", log); err != nil {
		return fmt.Errorf("trimming log: %w", err)
	}
	err := s.submit(ctx, len(log), func(t *tx) error {
		info, ok, err := t.getInfo(log)
		if err != nil || !ok {
			return err
		}
		if before > info.Last+1 {
			before = info.Last + 1
		}
		if before <= info.First {
			return nil
		}
		lo, hi := entryBounds(log, info.First, before)
		t.delRange(lo, hi)
		info.First = before
		t.set(metaKey(log), encodeMeta(info))
		return nil
	})
	if err != nil {
		return fmt.Errorf("trimming log %q before %d: %w", log, before, err)
	}
	return nil
}

// TrimBefore implements store.Logs.
func (s *Store) TrimBefore(ctx context.Context, log string, cutoff time.Time) error {
	if err := store.CheckName("log", log); err != nil {
		return fmt.Errorf("trimming log: %w", err)
	}
	seq, err := s.firstAtOrAfter(ctx, log, cutoff)
	if err != nil {
		return fmt.Errorf("trimming log %q before %v: %w", log, cutoff, err)
	}
	return s.Trim(ctx, log, seq)
}

// firstAtOrAfter returns the sequence of the first entry appended at or
// after cutoff, or Last+1 if there is none.
func (s *Store) firstAtOrAfter(ctx context.Context, log string, cutoff time.Time) (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	v := s.acquire()
	defer v.release()
	info, err := v.info(log)
	if err != nil {
		return 0, err
	}
	lo, hi := entryRange(log)
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		seq, err := parseEntryKey(log, it.Key())
		if err != nil {
			return 0, err
		}
		at, _, err := decodeEntry(it.Value())
		if err != nil {
			return 0, err
		}
		if !at.Before(cutoff) {
			return seq, nil
		}
	}
	if err := it.Error(); err != nil {
		return 0, err
	}
	return info.Last + 1, nil
}

// DeleteLog implements store.Logs.
func (s *Store) DeleteLog(ctx context.Context, log string) error {
	if err := store.CheckName("log", log); err != nil {
		return fmt.Errorf("deleting log: %w", err)
	}
	err := s.submit(ctx, len(log), func(t *tx) error {
		lo, hi := entryRange(log)
		t.delRange(lo, hi)
		lo, hi = cursorRange(log)
		t.delRange(lo, hi)
		t.del(metaKey(log))
		return nil
	})
	if err != nil {
		return fmt.Errorf("deleting log %q: %w", log, err)
	}
	return nil
}

// ListLogs implements store.Logs.
func (s *Store) ListLogs(ctx context.Context, o store.ListOptions) ([]string, bool, error) {
	limit, err := store.CheckList("log", o)
	if err != nil {
		return nil, false, fmt.Errorf("listing logs: %w", err)
	}
	if err := s.enter(); err != nil {
		return nil, false, err
	}
	defer s.leave()
	v := s.acquire()
	defer v.release()
	lo := metaKey(o.Prefix)
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return nil, false, fmt.Errorf("listing logs: %w", err)
	}
	defer it.Close()
	var ok bool
	if o.After != "" {
		ok = it.SeekGE(append(metaKey(o.After), 0))
	} else {
		ok = it.First()
	}
	var out []string
	for ; ok; ok = it.Next() {
		if len(out) == limit {
			return out, true, nil
		}
		name, err := parseMetaKey(it.Key())
		if err != nil {
			return nil, false, fmt.Errorf("listing logs: %w", err)
		}
		out = append(out, name)
	}
	if err := it.Error(); err != nil {
		return nil, false, fmt.Errorf("listing logs: %w", err)
	}
	return out, false, nil
}

// Wait implements store.Logs.
func (s *Store) Wait(ctx context.Context, log string, after uint64) (uint64, error) {
	if err := store.CheckName("log", log); err != nil {
		return 0, fmt.Errorf("waiting on log: %w", err)
	}
	for {
		slot := s.waiters.add(log)
		info, err := s.Info(ctx, log)
		if err != nil {
			s.waiters.remove(log, slot)
			return 0, err
		}
		if info.Last > after {
			s.waiters.remove(log, slot)
			return info.Last, nil
		}
		select {
		case <-slot.ch:
		case <-ctx.Done():
			s.waiters.remove(log, slot)
			return 0, ctx.Err()
		case <-s.closing:
			s.waiters.remove(log, slot)
			return 0, store.ErrClosed
		}
		s.waiters.remove(log, slot)
	}
}

// SetCursor implements store.Logs.
func (s *Store) SetCursor(ctx context.Context, log, consumer string, seq uint64) (uint64, error) {
	if err := checkCursor(log, consumer); err != nil {
		return 0, fmt.Errorf("setting cursor: %w", err)
	}
	var cur uint64
	err := s.submit(ctx, len(log)+len(consumer), func(t *tx) error {
		info, _, err := t.getInfo(log)
		if err != nil {
			return err
		}
		if seq > info.Last {
			return fmt.Errorf("sequence %d beyond last %d: %w", seq, info.Last, store.ErrInvalid)
		}
		k := cursorKey(log, consumer)
		raw, ok, err := t.get(k)
		if err != nil {
			return err
		}
		cur = 0
		if ok {
			if cur, err = decodeUint("cursor", raw); err != nil {
				return err
			}
		}
		if seq > cur {
			cur = seq
			t.set(k, encodeUint(seq))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("setting cursor %q of log %q: %w", consumer, log, err)
	}
	return cur, nil
}

// Cursor implements store.Logs.
func (s *Store) Cursor(ctx context.Context, log, consumer string) (uint64, error) {
	if err := checkCursor(log, consumer); err != nil {
		return 0, fmt.Errorf("reading cursor: %w", err)
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	v := s.acquire()
	defer v.release()
	raw, ok, err := v.get(cursorKey(log, consumer))
	if err != nil {
		return 0, fmt.Errorf("reading cursor %q of log %q: %w", consumer, log, err)
	}
	if !ok {
		return 0, nil
	}
	cur, err := decodeUint("cursor", raw)
	if err != nil {
		return 0, fmt.Errorf("reading cursor %q of log %q: %w", consumer, log, err)
	}
	return cur, nil
}

func checkCursor(log, consumer string) error {
	if err := store.CheckName("log", log); err != nil {
		return err
	}
	return store.CheckName("consumer", consumer)
}
