package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"anom/internal/store"
)

// Group limits: the committer stops gathering requests into a group when
// either is reached.
const (
	maxGroupRequests = 1024
	maxGroupBytes    = 16 << 20
	// maxPipelinedGroups bounds the groups applied but not yet fsynced.
	maxPipelinedGroups = 64
)

// request is one mutation for the committer. fn checks its conditions and
// stages writes in tx; if it returns an error nothing it staged is applied.
type request struct {
	ctx  context.Context
	fn   func(tx *tx) error
	size int
	err  error
	done chan struct{} // buffered (1): signalled when the outcome is set
}

// submit hands fn to the committer and waits until its group is durable.
func (s *Store) submit(ctx context.Context, size int, fn func(tx *tx) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := ctx.Err(); err != nil {
		return err
	}
	r := requests.Get().(*request)
	r.ctx, r.fn, r.size = ctx, fn, size
	s.reqs <- r
	<-r.done // not abandoned on ctx end: the outcome must be reported
	err := r.err
	*r = request{done: r.done}
	requests.Put(r)
	return err
}

// requests recycles requests: done is signalled once per use, and a
// request goes back to the pool only after its signal was received.
var requests = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

// commitLoop is the committer: the only goroutine that writes to the
// database. It evaluates a group, applies it to Pebble (ordered, visible to
// the committer, WAL fsync requested but not awaited), takes a snapshot of
// exactly that state, and passes the group to syncLoop. So the next group is gathered and evaluated while the
// previous one is being fsynced, and Pebble's WAL writer covers every
// group queued during one fsync with the next.
func (s *Store) commitLoop(rev uint64) {
	defer close(s.synced)
	g := &group{s: s, rev: rev}
	for r := range s.reqs {
		g.reset()
		g.add(r)
	gather:
		for len(g.reqs) < maxGroupRequests && g.bytes < maxGroupBytes {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break gather
				}
				g.add(r)
			default:
				break gather
			}
		}
		s.synced <- g.run()
	}
}

// syncLoop waits, in commit order, for each group's fsync, then publishes
// its snapshot to readers, wakes waiters and answers its requests. Even
// groups that wrote nothing pass through it, so that no answer (say, a
// conflict caused by an earlier group) precedes the durability of what it
// depends on.
func (s *Store) syncLoop() {
	defer close(s.stopped)
	for p := range s.synced {
		err := p.err
		if p.batch != nil && err == nil {
			if err = p.batch.SyncWait(); err != nil {
				err = fmt.Errorf("syncing write-ahead log: %w", fullErr(err))
				s.broken.CompareAndSwap(nil, &err)
			}
		}
		var old *view
		if p.snap != nil {
			if err == nil {
				old = s.swapView(p.snap)
			} else {
				p.snap.Close()
			}
		}
		for _, r := range p.applied {
			r.err = err
		}
		if err == nil {
			for log := range p.logs {
				s.waiters.wake(log)
			}
		}
		for _, r := range p.reqs {
			r.done <- struct{}{}
		}
		// Cleaning up after the answers keeps it off their latency
		// (closing a snapshot may make Pebble look for compactions).
		if p.batch != nil {
			p.batch.Close()
		}
		if old != nil {
			old.release()
		}
	}
}

// group is the set of requests committed with one Pebble batch.
type group struct {
	s      *Store
	reqs   []*request
	bytes  int
	rev    uint64 // last revision handed out
	batch  *pebble.Batch
	points map[string]staged // writes of earlier requests of this group
	ranges []stagedRange     // range deletions of earlier requests
	gen    int               // orders points and ranges
	logs   map[string]bool   // logs appended to, to wake waiters
	metas  map[string]cachedMeta
	tx     tx // the request being evaluated (reused)
}

// begin returns the group's tx, emptied, for the next request. Nothing
// keeps a tx's slices or map after the request: apply copies what it
// stages (and the batch copies keys and values). What a large request
// grew is dropped rather than kept and cleared every time.
func (g *group) begin() *tx {
	t := &g.tx
	*t = tx{g: g, rev: g.rev, ops: reuse(t.ops), points: t.points, ranges: reuse(t.ranges), logs: reuse(t.logs)}
	if len(t.points) > maxReused {
		t.points = nil
	} else {
		clear(t.points)
	}
	return t
}

const maxReused = 64

func reuse[T any](s []T) []T {
	if cap(s) > maxReused {
		return nil
	}
	clear(s)
	return s[:0]
}

// The committer keeps the log metas it has read or applied (at most
// maxCachedMetas), so an append to a busy log does not read its meta from
// the database: the committer is the only writer, and a failed commit
// stops all writes, so the cache never holds what was not applied. Readers
// do not use it (they read published snapshots).
var maxCachedMetas = 1 << 14 // a variable for tests

type cachedMeta struct {
	val []byte
	ok  bool
}

// cacheMeta records key's value as applied (ok false: it does not exist).
func (g *group) cacheMeta(key string, val []byte, ok bool) {
	if g.metas == nil {
		g.metas = make(map[string]cachedMeta)
	}
	if _, hit := g.metas[key]; !hit && len(g.metas) >= maxCachedMetas {
		for k := range g.metas {
			delete(g.metas, k)
			break
		}
	}
	g.metas[key] = cachedMeta{val: val, ok: ok}
}

// pending is a group on its way from the committer to syncLoop.
type pending struct {
	reqs    []*request
	applied []*request // requests whose writes are in batch
	batch   *pebble.Batch
	snap    *pebble.Snapshot // state right after batch
	logs    map[string]bool
	err     error // set if the group failed before its fsync
}

type staged struct {
	val []byte // nil: deleted
	gen int
}

type stagedRange struct {
	lo, hi []byte
	gen    int
}

func (g *group) reset() {
	g.reqs = nil
	g.bytes = 0
	g.batch = g.s.db.NewBatch()
	g.points = make(map[string]staged)
	g.ranges = nil
	g.logs = make(map[string]bool)
}

func (g *group) add(r *request) {
	g.reqs = append(g.reqs, r)
	g.bytes += r.size
}

// run evaluates and applies the group.
func (g *group) run() *pending {
	p := &pending{reqs: g.reqs, logs: g.logs}
	if b := g.s.broken.Load(); b != nil {
		for _, r := range g.reqs {
			r.err = fmt.Errorf("store failed earlier: %w", *b)
		}
		g.batch.Close()
		return p
	}
	startRev := g.rev
	for _, r := range g.reqs {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		t := g.begin()
		if err := r.fn(t); err != nil {
			r.err = err
			continue
		}
		if err := t.apply(); err != nil {
			// Part of the request may be in the batch: drop the whole
			// group and stop accepting writes (this is a bug if reached).
			err = fmt.Errorf("staging writes: %w", fullErr(err))
			g.s.broken.CompareAndSwap(nil, &err)
			for _, r := range g.reqs {
				r.err = err
			}
			g.batch.Close()
			g.rev = startRev
			return &pending{reqs: g.reqs, logs: map[string]bool{}}
		}
		p.applied = append(p.applied, r)
	}
	if len(p.applied) == 0 {
		g.batch.Close()
		return p
	}
	if g.rev != startRev {
		g.batch.Set(revKey(), encodeUint(g.rev), nil)
	}
	p.batch = g.batch
	if err := g.s.db.ApplyNoSyncWait(g.batch, pebble.Sync); err != nil {
		// The batch may or may not be in the WAL: stop accepting writes.
		p.err = fmt.Errorf("committing: %w", fullErr(err))
		g.s.broken.CompareAndSwap(nil, &p.err)
		g.rev = startRev
		return p
	}
	p.snap = g.s.db.NewSnapshot()
	for k, p := range g.points {
		if k[0] == prefixMeta {
			g.cacheMeta(k, p.val, p.val != nil)
		}
	}
	return p
}

// tx is one request's view of the database inside the committer: reads see
// the database plus earlier requests of the group plus its own writes.
type tx struct {
	g      *group
	rev    uint64
	ops    []txOp
	points map[string]staged
	ranges []stagedRange
	logs   []string
}

type txOp struct {
	key, val []byte // val nil with !rangeDel: point delete
	hi       []byte // range delete end
	rangeDel bool

	// A log entry (key nil): encoded straight into the batch.
	log  string
	seq  uint64
	at   int64 // Unix ns
	data []byte
}

// nextRev hands out a revision for a KV write.
func (t *tx) nextRev() uint64 {
	t.rev++
	return t.rev
}

func (t *tx) set(key, val []byte) {
	if val == nil {
		val = []byte{}
	}
	t.stagePoint(key, val)
	t.ops = append(t.ops, txOp{key: key, val: val})
}

// setEntry writes a log entry. Entries are only read through snapshots,
// never by a tx, so they are not staged: key and value are encoded
// straight into the batch (the caller keeps data until its request is
// answered).
func (t *tx) setEntry(log string, seq uint64, at time.Time, data []byte) {
	t.ops = append(t.ops, txOp{log: log, seq: seq, at: at.UnixNano(), data: data})
}

func (t *tx) del(key []byte) {
	t.stagePoint(key, nil)
	t.ops = append(t.ops, txOp{key: key})
}

func (t *tx) delRange(lo, hi []byte) {
	t.g.gen++
	t.ranges = append(t.ranges, stagedRange{lo: lo, hi: hi, gen: t.g.gen})
	t.ops = append(t.ops, txOp{key: lo, hi: hi, rangeDel: true})
}

func (t *tx) stagePoint(key, val []byte) {
	if t.points == nil {
		t.points = make(map[string]staged)
	}
	t.g.gen++
	t.points[string(key)] = staged{val: val, gen: t.g.gen}
}

// appended records that the request appends to log.
func (t *tx) appended(log string) { t.logs = append(t.logs, log) }

// get returns the current value of key; ok is false if it does not exist.
func (t *tx) get(key []byte) ([]byte, bool, error) {
	var best staged
	found := false
	for _, m := range []map[string]staged{t.g.points, t.points} {
		if p, ok := m[string(key)]; ok && (!found || p.gen > best.gen) {
			best, found = p, true
		}
	}
	for _, rs := range [][]stagedRange{t.g.ranges, t.ranges} {
		for _, r := range rs {
			if bytes.Compare(key, r.lo) >= 0 && bytes.Compare(key, r.hi) < 0 && (!found || r.gen > best.gen) {
				best, found = staged{gen: r.gen}, true
			}
		}
	}
	if found {
		return best.val, best.val != nil, nil
	}
	meta := len(key) > 0 && key[0] == prefixMeta
	if meta {
		if m, hit := t.g.metas[string(key)]; hit {
			return m.val, m.ok, nil
		}
	}
	val, closer, err := t.g.s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		if meta {
			t.g.cacheMeta(string(key), nil, false)
		}
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %q: %w", key, err)
	}
	out := append([]byte(nil), val...)
	closer.Close()
	if meta {
		t.g.cacheMeta(string(key), out, true)
	}
	return out, true, nil
}

// apply moves the request's writes into the group.
func (t *tx) apply() error {
	b := t.g.batch
	for _, op := range t.ops {
		var err error
		switch {
		case op.key == nil:
			d := b.SetDeferred(entryKeyLen(op.log), entryLen(op.data))
			appendEntryKey(d.Key[:0], op.log, op.seq)
			appendEntry(d.Value[:0], op.at, op.data)
			err = d.Finish()
		case op.rangeDel:
			err = b.DeleteRange(op.key, op.hi, nil)
		case op.val == nil:
			err = b.Delete(op.key, nil)
		default:
			err = b.Set(op.key, op.val, nil)
		}
		if err != nil {
			return fmt.Errorf("staging write: %w", err)
		}
	}
	for k, p := range t.points {
		t.g.points[k] = p
	}
	t.g.ranges = append(t.g.ranges, t.ranges...)
	for _, l := range t.logs {
		t.g.logs[l] = true
	}
	t.g.rev = t.rev
	return nil
}

// getInfo returns a log's meta as the committer sees it.
func (t *tx) getInfo(log string) (store.LogInfo, bool, error) {
	return t.getInfoAt(log, metaKey(log))
}

// getInfoAt is getInfo with the meta key of log given.
func (t *tx) getInfoAt(log string, mk []byte) (store.LogInfo, bool, error) {
	v, ok, err := t.get(mk)
	if err != nil || !ok {
		return store.LogInfo{}, false, err
	}
	info, err := decodeMeta(v)
	if err != nil {
		return store.LogInfo{}, false, fmt.Errorf("reading log %q: %w", log, err)
	}
	return info, true, nil
}
