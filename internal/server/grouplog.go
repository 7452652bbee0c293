package server

import (
	"context"
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
		s.writeGroupBatch(s.ctx, gh, st, batch)
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
				cerr := s.catchUp(ctx, gh, st)
				st.mu.Unlock()
				if cerr == nil {
					continue
				}
				err = cerr
			}
		}
		if err != nil {
			err = storeError(err, "appending to group log")
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

// appendGroupIf writes one message durably after last (a commit) and
// returns its sequence, time and encoding (without sequence and time, as
// stored); a *store.ConflictError if another entry came first.
func (s *Server) appendGroupIf(ctx context.Context, gh string, last uint64, gm *anomv1.GroupMessage) (uint64, time.Time, []byte, error) {
	b, err := proto.Marshal(gm)
	if err != nil {
		return 0, time.Time{}, nil, fmt.Errorf("encoding group message: %w", err)
	}
	start := time.Now()
	seq, err := s.st.AppendIf(ctx, groupLog(gh), last, b)
	s.metrics.storeCommit.Observe(time.Since(start).Seconds())
	if err != nil {
		return 0, time.Time{}, nil, err
	}
	return seq, s.now(), b, nil
}
