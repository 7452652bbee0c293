package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"anom/internal/store"
)

// Group limits: the committer stops gathering requests into a group when
// either is reached.
const (
	maxGroupRequests = 1024
	maxGroupBytes    = 16 << 20
)

// request is one mutation for the committer. fn checks its conditions and
// stages writes in tx; if it returns an error nothing it staged is applied.
type request struct {
	ctx  context.Context
	fn   func(tx *tx) error
	size int
	err  error
	done chan struct{}
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
	r := &request{ctx: ctx, fn: fn, size: size, done: make(chan struct{})}
	s.reqs <- r
	<-r.done // not abandoned on ctx end: the outcome must be reported
	return r.err
}

// commitLoop is the committer: the only goroutine that writes to keys
// other than blob chunks and upload markers.
func (s *Store) commitLoop(rev uint64) {
	defer close(s.stopped)
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
		g.run()
	}
}

// group is the set of requests committed with one fsync.
type group struct {
	s      *Store
	reqs   []*request
	bytes  int
	rev    uint64 // last revision handed out (committed or in this group)
	batch  *pebble.Batch
	points map[string]staged // writes of earlier requests of this group
	ranges []stagedRange     // range deletions of earlier requests
	gen    int               // orders points and ranges
	logs   map[string]bool   // logs appended to, to wake waiters
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
	g.reqs = g.reqs[:0]
	g.bytes = 0
	g.batch = g.s.db.NewBatch()
	g.points = make(map[string]staged)
	g.ranges = g.ranges[:0]
	g.logs = make(map[string]bool)
}

func (g *group) add(r *request) {
	g.reqs = append(g.reqs, r)
	g.bytes += r.size
}

func (g *group) run() {
	startRev := g.rev
	var applied []*request
	for _, r := range g.reqs {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		t := &tx{g: g, rev: g.rev}
		if err := r.fn(t); err != nil {
			r.err = err
			continue
		}
		if err := t.apply(); err != nil {
			r.err = err
			continue
		}
		applied = append(applied, r)
	}
	var err error
	if len(applied) > 0 {
		if g.rev != startRev {
			g.batch.Set(revKey(), encodeUint(g.rev), nil)
		}
		err = g.batch.Commit(pebble.Sync)
		if err != nil {
			// The state of the database is unknown; Pebble treats WAL
			// errors as fatal, so this is not expected to be reached.
			err = fmt.Errorf("committing: %w", err)
			g.rev = startRev
		} else {
			g.s.publishView()
		}
	}
	g.batch.Close()
	for _, r := range applied {
		r.err = err
	}
	if err == nil {
		for log := range g.logs {
			g.s.waiters.wake(log)
		}
	}
	for _, r := range g.reqs {
		close(r.done)
	}
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
	val, closer, err := t.g.s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %q: %w", key, err)
	}
	out := append([]byte(nil), val...)
	closer.Close()
	return out, true, nil
}

// apply moves the request's writes into the group.
func (t *tx) apply() error {
	b := t.g.batch
	for _, op := range t.ops {
		var err error
		switch {
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
	v, ok, err := t.get(metaKey(log))
	if err != nil || !ok {
		return store.LogInfo{}, false, err
	}
	info, err := decodeMeta(v)
	if err != nil {
		return store.LogInfo{}, false, fmt.Errorf("reading log %q: %w", log, err)
	}
	return info, true, nil
}
