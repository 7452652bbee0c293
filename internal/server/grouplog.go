package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"anom/internal/store"
	anomv1 "anom/proto/anom/v1"
)

// The group's writer: this server's application messages to a group are
// appended by one writer per group, in batches, each batch conditional on
// the log's last sequence as the writer last saw it. A batch that loses
// to another server's append (or to a commit of this one) reads what came
// first: if no commit is among it the batch is appended after it, else
// the messages for the old epoch are refused with EPOCH_CONFLICT, exactly
// as if they had arrived after the commit at one server. So every
// application message in a log lies between the commit of its epoch and
// the next, whichever servers took them.

// Bounds of one batch of the group's writer.
const (
	maxGroupBatch      = 64
	maxGroupBatchBytes = store.MaxTxnBytes * 3 / 4
)

// groupAppend is one application message waiting for the group's writer;
// done is closed once seq, t and stored, or err, are set.
type groupAppend struct {
	c      *session
	gid    []byte // the group's ID
	epoch  uint64 // the epoch the message was checked in
	entry  []byte // the encoded GroupMessage, as stored
	outbox [][]byte
	// claim is the escrow slot claimed for the message, released if the
	// message is not appended; certKey notes the sender's certificate
	// as forwarded once it is.
	claim   *slotClaim
	certKey string

	seq  uint64
	t    time.Time
	err  error
	done chan struct{}
}

// appendApplication hands a message to the group's writer and waits until
// it is durable (or refused).
func (s *Server) appendApplication(gh string, st *groupState, r *groupAppend) error {
	r.done = make(chan struct{})
	st.qmu.Lock()
	st.queue = append(st.queue, r)
	if !st.writing {
		st.writing = true
		go s.groupWriter(gh, st)
	}
	st.qmu.Unlock()
	<-r.done
	return r.err
}

// groupWriter appends the queued messages of a group in batches until the
// queue is empty. It works under the server's context, so a session that
// goes away does not fail the others' messages.
func (s *Server) groupWriter(gh string, st *groupState) {
	for {
		// Messages that arrive during the wait go in this batch.
		s.waitTurn(st)
		st.qmu.Lock()
		if len(st.queue) == 0 {
			st.writing = false
			st.queue = nil
			st.qmu.Unlock()
			return
		}
		n, size := 0, 0
		for n < len(st.queue) && n < maxGroupBatch {
			size += len(st.queue[n].entry)
			for _, o := range st.queue[n].outbox {
				size += len(o)
			}
			if n > 0 && size > maxGroupBatchBytes {
				break
			}
			n++
		}
		batch := make([]*groupAppend, n)
		copy(batch, st.queue)
		clear(st.queue[:n])
		st.queue = st.queue[n:]
		st.qmu.Unlock()
		start := time.Now()
		s.writeGroupBatch(s.ctx, gh, st, batch)
		if s.cfg.Fanout != nil {
			st.nextTurn = time.Now().Add(min(2*time.Since(start), maxTurnGap))
		}
	}
}

// maxTurnGap bounds the wait of waitTurn.
const maxTurnGap = 500 * time.Millisecond

// waitTurn waits, on a server of a cluster, until the group's next turn:
// after each batch appended (or refused) the group's writer waits twice
// as long as the batch took (retries included, at most maxTurnGap)
// before it appends again. Without the wait, a server that lost an
// append to another server's, and so needs a few requests (the log's new
// end, the commit log's) before it can try again, lost again to the
// other's next batch, round after round, for as long as the other's
// senders kept its queue full: in a saturated cluster a group's senders
// on one server waited a minute, and in the NATS fault tests a batch lost
// 64 times in a row. With a wait of once the append's time, at most
// 10 ms, 2,000 devices in 100 groups still left half the senders
// unanswered for a minute (the loser's few requests take longer than the
// winner's one, and an append under that load takes far more than
// 10 ms); with twice, at most 500 ms, none in 4 runs. The messages
// that arrive meanwhile go in the next batch, so a busy group's throughput changes little; a quiet group's
// messages rarely wait (only one sent within two appends' time of the
// last). A server on a store of its own (no Fanout) never waits.
func (s *Server) waitTurn(st *groupState) {
	d := time.Until(st.nextTurn)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.ctx.Done():
	}
}

// writeGroupBatch appends a batch conditionally, catching up and trying
// again while other writers come first, then pushes the messages and
// answers their senders.
func (s *Server) writeGroupBatch(ctx context.Context, gh string, st *groupState, batch []*groupAppend) {
	finish := func(r *groupAppend, err error) {
		r.err = err
		if err != nil && r.claim != nil {
			s.releaseSlot(r.claim)
		}
		close(r.done)
	}
	for attempt := 0; ; attempt++ {
		if _, err := s.group(ctx, gh, false); err != nil {
			for _, r := range batch {
				finish(r, err)
			}
			return
		}
		last, epoch, leaves := st.last, st.rec.Epoch, st.rec.Leaves
		targets := s.groupSessions(st)
		st.mu.RUnlock()
		live := batch[:0]
		for _, r := range batch {
			if r.epoch != epoch {
				finish(r, &Error{Code: anomv1.ErrorCode_ERROR_CODE_EPOCH_CONFLICT, Message: fmt.Sprintf("message for epoch %d", r.epoch), Epoch: epoch})
				continue
			}
			live = append(live, r)
		}
		batch = live
		if len(batch) == 0 {
			return
		}
		first, err := s.appendBatch(ctx, gh, last, batch)
		if errors.Is(err, store.ErrConflict) && attempt < maxStoreRetries {
			s.metrics.appendConflicts.Inc()
			var ce *store.ConflictError
			if errors.As(err, &ce) && ce.Log != groupLog(gh) {
				err = fmt.Errorf("log %s: %w", ce.Log, err) // not the group's condition
			} else {
				st.mu.Lock()
				cerr := s.skipApplications(ctx, gh, st, last, ce)
				st.mu.Unlock()
				if cerr == nil {
					continue
				}
				err = cerr
			}
		}
		if err != nil {
			if errors.Is(err, store.ErrConflict) {
				// Lost every try to other writers: nothing was appended.
				err = wrapErr(anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE, err, "the group's log is busy on other servers; nothing was stored, retry")
			} else {
				err = storeError(err, "appending to group log")
			}
			for _, r := range batch {
				finish(r, err)
			}
			return
		}
		t := s.now()
		st.mu.Lock()
		if st.last == last {
			st.last = last + uint64(len(batch))
		}
		st.mu.Unlock()
		var pushes []Push
		for i, r := range batch {
			r.seq, r.t = first+uint64(i), t
			if r.certKey != "" {
				s.certForwarded(ctx, r.certKey)
			}
			frame := pushFrame(r.gid, r.entry, r.seq, t.UnixMilli())
			s.pushTo(targets, frame, r.c)
			pushes = append(pushes, Push{Devices: leaves, Frame: frame})
			s.metrics.messagesApp.Inc()
			finish(r, nil)
		}
		s.publish(pushes...)
		return
	}
}

// skipApplications brings the view past what another writer appended
// before the batch's append after last failed with ce. If the commit log
// still ends where the view counted it, everything up to ce.Last is
// application messages (every commit is in the commit log from the moment
// it is in the group log, and all those the view counts are at or before
// its last), which change nothing in the view: it moves to ce.Last
// without reading them. Otherwise it catches up with the log. Reading
// every entry the other writer appended, as it did before, let a server
// that lost one race spend its turn reading while the other appended
// again: in a saturated cluster a group's senders on the losing server
// waited for a minute. Called with the write lock.
func (s *Server) skipApplications(ctx context.Context, gh string, st *groupState, last uint64, ce *store.ConflictError) error {
	if st.last != last || ce.Last <= last {
		// The view moved meanwhile (a commit of this server, a catch-up),
		// or the conflict is not about entries after last.
		return s.catchUp(ctx, gh, st)
	}
	// Whether the commit log has an entry after the view's count (one
	// request on JetStream where Info takes two).
	es, err := s.st.Read(ctx, commitLog(gh), st.commits+1, 1)
	if err != nil {
		st.loaded = false
		return fmt.Errorf("reading the commit log of group %s: %w", gh, err)
	}
	if len(es) > 0 {
		return s.catchUp(ctx, gh, st)
	}
	s.metrics.appendSkips.Inc()
	st.rec.Applied, st.last = ce.Last, ce.Last
	return nil
}

// appendBatch appends the batch's messages to the group log after last,
// and their escrow records to the outbox in the same atomic write.
func (s *Server) appendBatch(ctx context.Context, gh string, last uint64, batch []*groupAppend) (uint64, error) {
	entries := make([][]byte, len(batch))
	var outbox [][]byte
	for i, r := range batch {
		entries[i] = r.entry
		outbox = append(outbox, r.outbox...)
	}
	start := time.Now()
	defer func() { s.metrics.storeCommit.Observe(time.Since(start).Seconds()) }()
	if len(outbox) == 0 {
		return s.st.AppendIf(ctx, groupLog(gh), last, entries...)
	}
	firsts, err := s.st.AppendAll(ctx,
		store.Append{Log: groupLog(gh), Entries: entries, Check: true, IfLast: last},
		store.Append{Log: logOutbox, Entries: outbox},
	)
	if err != nil {
		return 0, err
	}
	return firsts[0], nil
}

// appendCommit writes a commit durably after last, with its entry in the
// group's commit log after commits, and returns its sequence, time and
// encoding (without sequence and time, as stored); a *store.ConflictError
// if another entry came first in either log.
func (s *Server) appendCommit(ctx context.Context, gh string, last, commits uint64, gm *anomv1.GroupMessage) (uint64, time.Time, []byte, error) {
	b, err := proto.Marshal(gm)
	if err != nil {
		return 0, time.Time{}, nil, fmt.Errorf("encoding group message: %w", err)
	}
	start := time.Now()
	firsts, err := s.st.AppendAll(ctx,
		store.Append{Log: groupLog(gh), Entries: [][]byte{b}, Check: true, IfLast: last},
		store.Append{Log: commitLog(gh), Entries: [][]byte{binary.BigEndian.AppendUint64(nil, last+1)}, Check: true, IfLast: commits},
	)
	s.metrics.storeCommit.Observe(time.Since(start).Seconds())
	if err != nil {
		return 0, time.Time{}, nil, err
	}
	if firsts[0] != last+1 || firsts[1] != commits+1 {
		return 0, time.Time{}, nil, fmt.Errorf("commit appended at %d and %d, want %d and %d: %w", firsts[0], firsts[1], last+1, commits+1, store.ErrCorrupt)
	}
	return firsts[0], s.now(), b, nil
}
