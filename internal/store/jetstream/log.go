package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	js "github.com/nats-io/nats.go/jetstream"

	"anom/internal/store"
)

// maxBatch is the servers' default atomic batch size (max_batch_size).
const maxBatch = 1000

func (s *Store) logSubject(log string) string { return s.names.log + log }

func (s *Store) cursorSubject(log, consumer string) string {
	return s.names.cur + strconv.Itoa(len(log)) + "." + log + "." + consumer
}

// tip is where a log ends: its last per-log sequence and the stream
// sequence of its last message (0: the log has no messages).
type tip struct{ last, sseq uint64 }

// tipCache remembers the tips of logs this Store appended to, so that an
// append usually needs no read first. A stale tip costs one failed
// conditional publish, never a wrong sequence: every append expects the
// stream sequence of the log's last message, which no other write keeps.
type tipCache struct {
	mu sync.Mutex
	m  map[string]tip
}

const maxCachedTips = 100_000

func (c *tipCache) get(log string) (tip, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[log]
	return t, ok
}

func (c *tipCache) put(log string, t tip) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedTips {
		c.m = make(map[string]tip)
	}
	if old, ok := c.m[log]; !ok || t.sseq > old.sseq {
		c.m[log] = t
	}
}

func (c *tipCache) drop(log string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, log)
}

// record decodes a log message.
func record(m *js.RawStreamMsg) (logRecord, error) {
	rec, err := decodeLogHeader(m.Header)
	if err != nil {
		return logRecord{}, fmt.Errorf("message %d of %s: %w", m.Sequence, m.Subject, err)
	}
	return rec, nil
}

// readTip reads a log's tip from the stream leader.
func (s *Store) readTip(ctx context.Context, log string) (tip, error) {
	m, err := s.lastMsg(ctx, s.logs, s.logSubject(log))
	if err != nil || m == nil {
		return tip{}, err
	}
	rec, err := record(m)
	if err != nil {
		return tip{}, err
	}
	t := tip{last: rec.Seq, sseq: m.Sequence}
	s.tips.put(log, t)
	return t, nil
}

// Append implements store.Logs.
func (s *Store) Append(ctx context.Context, log string, entries ...[]byte) (uint64, error) {
	firsts, err := s.AppendAll(ctx, store.Append{Log: log, Entries: entries})
	if err != nil {
		return 0, err
	}
	return firsts[0], nil
}

// AppendIf implements store.Logs.
func (s *Store) AppendIf(ctx context.Context, log string, last uint64, entries ...[]byte) (uint64, error) {
	firsts, err := s.AppendAll(ctx, store.Append{Log: log, Entries: entries, IfLast: last, Check: true})
	if err != nil {
		return 0, err
	}
	return firsts[0], nil
}

// AppendAll implements store.Logs.
func (s *Store) AppendAll(ctx context.Context, appends ...store.Append) ([]uint64, error) {
	what := "appending"
	if len(appends) > 0 {
		what = fmt.Sprintf("appending to %q", appends[0].Log)
	}
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer done()
	if err := store.CheckAppends(appends); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	n := 0
	for _, a := range appends {
		n += len(a.Entries)
	}
	if n > maxBatch {
		return nil, fmt.Errorf("%s: %d entries in one batch, limit %d: %w", what, n, maxBatch, store.ErrTooLarge)
	}
	firsts, err := s.appendAll(ctx, appends, n)
	if err != nil {
		var ce *store.ConflictError
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, s.fail(what, err)
	}
	return firsts, nil
}

func (s *Store) appendAll(ctx context.Context, appends []store.Append, n int) ([]uint64, error) {
	tips := make([]tip, len(appends))
	for {
		for i, a := range appends {
			t, ok := s.tips.get(a.Log)
			if !ok || a.Check && t.last != a.IfLast {
				var err error
				if t, err = s.readTip(ctx, a.Log); err != nil {
					return nil, err
				}
			}
			if a.Check && t.last != a.IfLast {
				// Keep the tip just read: the caller usually appends
				// again after it.
				s.tips.put(a.Log, t)
				return nil, &store.ConflictError{Log: a.Log, Expected: a.IfLast, Last: t.last}
			}
			tips[i] = t
		}
		now := s.now()
		msgs := make([]pubMsg, 0, n)
		for i, a := range appends {
			for j, e := range a.Entries {
				if e == nil {
					e = []byte{}
				}
				m := pubMsg{subject: s.logSubject(a.Log), header: logHeader(tips[i].last+1+uint64(j), now, false), data: e}
				if j == 0 {
					m.expect, m.expectSeq = true, tips[i].sseq
				}
				msgs = append(msgs, m)
			}
		}
		first, err := s.publish(ctx, msgs)
		if err == nil {
			firsts := make([]uint64, len(appends))
			next := first
			for i, a := range appends {
				k := uint64(len(a.Entries))
				firsts[i] = tips[i].last + 1
				s.tips.put(a.Log, tip{last: tips[i].last + k, sseq: next + k - 1})
				next += k
			}
			for _, a := range appends {
				s.waiters.notify(s.logSubject(a.Log))
			}
			return firsts, nil
		}
		if isTooLarge(err) {
			return nil, fmt.Errorf("%v: %w", err, store.ErrTooLarge)
		}
		if !isWrongLast(err) {
			return nil, err
		}
		for _, a := range appends {
			s.tips.drop(a.Log)
		}
	}
}

// Read implements store.Logs.
func (s *Store) Read(ctx context.Context, log string, from uint64, limit int) ([]store.LogEntry, error) {
	what := fmt.Sprintf("reading %q from %d", log, from)
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer done()
	if err := store.CheckName("log", log); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if limit < 0 {
		return nil, fmt.Errorf("%s: max %d: %w", what, limit, store.ErrInvalid)
	}
	if limit == 0 || limit > store.MaxReadEntries {
		limit = store.MaxReadEntries
	}
	out, err := s.read(ctx, log, max(from, 1), limit)
	if err != nil {
		return nil, s.fail(what, err)
	}
	return out, nil
}

func (s *Store) read(ctx context.Context, log string, from uint64, limit int) ([]store.LogEntry, error) {
	t, err := s.readTip(ctx, log)
	if err != nil || t.sseq == 0 || from > t.last {
		return nil, err
	}
	subj := s.logSubject(log)
	cur, err := s.seek(ctx, subj, from, t.sseq)
	if err != nil || cur == 0 {
		return nil, err
	}
	if want := t.last - from + 1; t.last >= from && want >= bulkRead && limit >= bulkRead {
		if out, err := s.readBulk(ctx, subj, cur, t.sseq, from, min(uint64(limit), want)); err == nil {
			return out, nil
		}
		// The message-by-message reads below are the fallback.
	}
	var out []store.LogEntry
	size := 0
	for len(out) < limit {
		m, err := s.nextMsg(ctx, s.logs, subj, cur)
		if err != nil {
			return nil, err
		}
		if m == nil {
			break
		}
		cur = m.Sequence + 1
		rec, err := record(m)
		if err != nil {
			return nil, err
		}
		if rec.Marker || rec.Seq < from {
			continue
		}
		out = append(out, store.LogEntry{Seq: rec.Seq, Time: rec.Time, Data: m.Data})
		if size += len(m.Data); size >= store.MaxReadBytes {
			break
		}
	}
	return out, nil
}

// bulkRead is the entries from which a read takes its messages from an
// ordered consumer, many a request, instead of one request each: a
// server catching up with a group log that another server appends to at
// full speed read it one message a request about as fast as it grew,
// never reached its end, and so never appended again (a livelock seen in
// anom bench --cluster).
const bulkRead = 64

// readBulk reads up to want entries (the log has at least that many from
// `from` on) of subj through an ordered consumer starting at stream
// sequence start, stopping at the log's tip, stream sequence tipSeq.
// Markers are skipped as in read.
func (s *Store) readBulk(ctx context.Context, subj string, start, tipSeq, from, want uint64) ([]store.LogEntry, error) {
	cons, err := s.js.OrderedConsumer(ctx, s.names.logStream, js.OrderedConsumerConfig{
		FilterSubjects: []string{subj},
		DeliverPolicy:  js.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
	})
	if err != nil {
		return nil, err
	}
	var out []store.LogEntry
	size := 0
	for uint64(len(out)) < want {
		// At least this many messages of subj exist from here on, so
		// the fetch fills without waiting for new ones.
		n := int(min(want-uint64(len(out)), 256))
		batch, err := cons.Fetch(n, js.FetchMaxWait(s.timeout))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			raw := &js.RawStreamMsg{Subject: m.Subject(), Sequence: meta.Sequence.Stream, Header: m.Headers(), Data: m.Data(), Time: meta.Timestamp}
			rec, err := record(raw)
			if err != nil {
				return nil, err
			}
			if !rec.Marker && rec.Seq >= from && uint64(len(out)) < want && size < store.MaxReadBytes {
				out = append(out, store.LogEntry{Seq: rec.Seq, Time: rec.Time, Data: raw.Data})
				size += len(raw.Data)
			}
			if raw.Sequence >= tipSeq {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if got == 0 || size >= store.MaxReadBytes {
			break
		}
	}
	return out, nil
}

// seek returns a stream sequence x such that every message of subj below
// x has a per-log sequence below from and the message at or after x has
// one at or above it (0 if the subject has no messages). It searches
// between the subject's first message and hi, the stream sequence of its
// last, whose per-log sequence the caller knows to be at least from.
func (s *Store) seek(ctx context.Context, subj string, from, hi uint64) (uint64, error) {
	first, err := s.nextMsg(ctx, s.logs, subj, 0)
	if err != nil || first == nil {
		return 0, err
	}
	rec, err := record(first)
	if err != nil {
		return 0, err
	}
	if rec.Seq >= from {
		return first.Sequence, nil
	}
	lo := first.Sequence + 1
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := s.nextMsg(ctx, s.logs, subj, mid)
		if err != nil {
			return 0, err
		}
		if m == nil {
			return 0, nil // deleted meanwhile
		}
		rec, err := record(m)
		if err != nil {
			return 0, err
		}
		if rec.Seq >= from {
			hi = mid
		} else {
			lo = m.Sequence + 1
		}
	}
	return lo, nil
}

// Info implements store.Logs.
func (s *Store) Info(ctx context.Context, log string) (store.LogInfo, error) {
	what := fmt.Sprintf("describing log %q", log)
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return store.LogInfo{}, fmt.Errorf("%s: %w", what, err)
	}
	defer done()
	if err := store.CheckName("log", log); err != nil {
		return store.LogInfo{}, fmt.Errorf("%s: %w", what, err)
	}
	info, _, err := s.info(ctx, log)
	if err != nil {
		return store.LogInfo{}, s.fail(what, err)
	}
	return info, nil
}

func (s *Store) info(ctx context.Context, log string) (store.LogInfo, tip, error) {
	t, err := s.readTip(ctx, log)
	if err != nil || t.sseq == 0 {
		return store.LogInfo{}, t, err
	}
	first, err := s.nextMsg(ctx, s.logs, s.logSubject(log), 0)
	if err != nil {
		return store.LogInfo{}, t, err
	}
	if first == nil { // deleted meanwhile
		return store.LogInfo{}, tip{}, nil
	}
	rec, err := record(first)
	if err != nil {
		return store.LogInfo{}, t, err
	}
	info := store.LogInfo{First: rec.Seq, Last: t.last}
	if rec.Marker {
		info.First++
	}
	return info, t, nil
}

// Trim implements store.Logs.
func (s *Store) Trim(ctx context.Context, log string, before uint64) error {
	what := fmt.Sprintf("trimming %q before %d", log, before)
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer done()
	if err := store.CheckName("log", log); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := s.trim(ctx, log, before); err != nil {
		return s.fail(what, err)
	}
	return nil
}

func (s *Store) trim(ctx context.Context, log string, before uint64) error {
	subj := s.logSubject(log)
	for {
		info, t, err := s.info(ctx, log)
		if err != nil || t.sseq == 0 {
			return err
		}
		before = min(before, info.Last+1)
		if before <= info.First {
			return nil
		}
		if before <= info.Last {
			x, err := s.seek(ctx, subj, before, t.sseq)
			if err != nil || x == 0 {
				return err
			}
			return s.purge(ctx, s.logs, subj, x)
		}
		// Trimming everything: a marker keeps the last sequence.
		m := pubMsg{subject: subj, header: logHeader(info.Last, s.now(), true), data: []byte{}, expect: true, expectSeq: t.sseq}
		seq, err := s.publish(ctx, []pubMsg{m})
		if isWrongLast(err) {
			s.tips.drop(log)
			continue
		}
		if err != nil {
			return err
		}
		s.tips.put(log, tip{last: info.Last, sseq: seq})
		return s.purge(ctx, s.logs, subj, seq)
	}
}

// TrimBefore implements store.Logs.
func (s *Store) TrimBefore(ctx context.Context, log string, t time.Time) error {
	what := fmt.Sprintf("trimming %q before %v", log, t)
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer done()
	if err := store.CheckName("log", log); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	subj := s.logSubject(log)
	var cur uint64
	for {
		m, err := s.nextMsg(ctx, s.logs, subj, cur)
		if err != nil {
			return s.fail(what, err)
		}
		if m == nil {
			break
		}
		cur = m.Sequence + 1
		rec, err := record(m)
		if err != nil {
			return s.fail(what, err)
		}
		if !rec.Marker && !rec.Time.Before(t) {
			if err := s.trim(ctx, log, rec.Seq); err != nil {
				return s.fail(what, err)
			}
			return nil
		}
	}
	if err := s.trim(ctx, log, 1<<63); err != nil {
		return s.fail(what, err)
	}
	return nil
}

// DeleteLog implements store.Logs.
func (s *Store) DeleteLog(ctx context.Context, log string) error {
	what := fmt.Sprintf("deleting log %q", log)
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer done()
	if err := store.CheckName("log", log); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	s.tips.drop(log)
	if err := s.purge(ctx, s.logs, s.logSubject(log), 0); err != nil {
		return s.fail(what, err)
	}
	s.tips.drop(log)
	if err := s.purge(ctx, s.kv, s.cursorSubject(log, ">"), 0); err != nil {
		return s.fail(what, err)
	}
	return nil
}

// ListLogs implements store.Logs.
func (s *Store) ListLogs(ctx context.Context, opts store.ListOptions) ([]string, bool, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("listing logs: %w", err)
	}
	defer done()
	limit, err := store.CheckList("log", opts)
	if err != nil {
		return nil, false, fmt.Errorf("listing logs: %w", err)
	}
	names, err := s.sortedNames(ctx, s.logs, s.names.log, opts)
	if err != nil {
		return nil, false, s.fail("listing logs", err)
	}
	if len(names) > limit {
		return names[:limit], true, nil
	}
	return names, false, nil
}

// SetCursor implements store.Logs.
func (s *Store) SetCursor(ctx context.Context, log, consumer string, seq uint64) (uint64, error) {
	what := fmt.Sprintf("setting cursor %q of %q to %d", consumer, log, seq)
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	defer done()
	if err := store.CheckName("log", log); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if err := store.CheckName("consumer", consumer); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	subj := s.cursorSubject(log, consumer)
	for {
		cur, st, err := s.cursor(ctx, subj)
		if err != nil {
			return 0, s.fail(what, err)
		}
		if seq <= cur {
			return cur, nil
		}
		t, err := s.readTip(ctx, log)
		if err != nil {
			return 0, s.fail(what, err)
		}
		if seq > t.last {
			return 0, fmt.Errorf("%s: beyond the last sequence %d: %w", what, t.last, store.ErrInvalid)
		}
		_, err = s.publish(ctx, []pubMsg{{subject: subj, data: encodeUint64(seq), expect: true, expectSeq: st.seq}})
		if isWrongLast(err) {
			continue
		}
		if err != nil {
			return 0, s.fail(what, err)
		}
		return seq, nil
	}
}

// Cursor implements store.Logs.
func (s *Store) Cursor(ctx context.Context, log, consumer string) (uint64, error) {
	what := fmt.Sprintf("reading cursor %q of %q", consumer, log)
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	defer done()
	if err := store.CheckName("log", log); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if err := store.CheckName("consumer", consumer); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	cur, _, err := s.cursor(ctx, s.cursorSubject(log, consumer))
	if err != nil {
		return 0, s.fail(what, err)
	}
	return cur, nil
}

func (s *Store) cursor(ctx context.Context, subj string) (uint64, kvState, error) {
	st, err := s.readKey(ctx, subj)
	if err != nil || !st.live {
		return 0, st, err
	}
	cur, err := decodeUint64("cursor", st.value)
	return cur, st, err
}
