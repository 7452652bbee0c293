package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"anom/internal/store"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// Timer history. Members apply a disappearing-message timer to the
// messages after the timer message in the group's log, so the server keeps,
// per group, each timer change with the log sequence it applies from
// (bucket "timers", one record per group, changed by revision) and trims
// each message by the timer in force when it was stored. Changes whose
// messages are all gone are dropped at the next trim; past maxTimerChanges
// the two oldest merge into the longer of their timers, so the server may
// keep a message longer than its timer but never deletes it earlier.

// maxTimerChanges bounds a group's timer history.
const maxTimerChanges = 64

// timerMessageWindow is how recent a timer message must be for a member to
// tell the server the timer it set: a timer applies to the messages after
// it, so an old one would delete messages already stored.
const timerMessageWindow = 10 * time.Minute

// timerRecord is a group's timer history.
type timerRecord struct {
	// Seconds is the current timer, that of the last change.
	Seconds uint32 `json:"seconds"`
	// Changes, ordered by From. A record without them (written before the
	// history was kept) is one change from the start of the log.
	Changes []timerChange `json:"changes,omitempty"`
}

// timerChange is a timer in force for the messages from log sequence From
// up to the next change.
type timerChange struct {
	From    uint64 `json:"from"`
	Seconds uint32 `json:"seconds"`
	// Marked: the message at From-1 is the timer message that set it.
	// Like commits, a timer message goes only once every device has read
	// it, so a device catching up learns the timer.
	Marked bool `json:"marked,omitempty"`
}

// timerHistory returns a group's timer history and the record's revision
// (0 if there is none).
func (s *Server) timerHistory(ctx context.Context, gh string) (timerRecord, uint64, error) {
	e, err := s.st.Get(ctx, bucketTimers, gh)
	if errors.Is(err, store.ErrNotFound) {
		return timerRecord{}, 0, nil
	}
	if err != nil {
		return timerRecord{}, 0, fmt.Errorf("reading group timer: %w", err)
	}
	var tr timerRecord
	if err := decodeRecord(e, &tr); err != nil {
		return timerRecord{}, 0, err
	}
	if len(tr.Changes) == 0 && tr.Seconds > 0 {
		tr.Changes = []timerChange{{From: 0, Seconds: tr.Seconds}}
	}
	for i := 1; i < len(tr.Changes); i++ {
		if tr.Changes[i].From <= tr.Changes[i-1].From {
			return timerRecord{}, 0, fmt.Errorf("group %s timer history out of order: %w", gh, store.ErrCorrupt)
		}
	}
	return tr, e.Revision, nil
}

// groupTimer returns a group's current timer in seconds, 0 if none.
func (s *Server) groupTimer(ctx context.Context, gh string) (uint32, error) {
	tr, _, err := s.timerHistory(ctx, gh)
	if err != nil {
		return 0, err
	}
	if len(tr.Changes) == 0 {
		return 0, nil
	}
	return tr.Changes[len(tr.Changes)-1].Seconds, nil
}

// timerAt returns the timer in force for the message at seq, 0 if none.
func timerAt(changes []timerChange, seq uint64) time.Duration {
	i, found := slices.BinarySearchFunc(changes, seq, func(c timerChange, seq uint64) int {
		switch {
		case c.From < seq:
			return -1
		case c.From > seq:
			return 1
		}
		return 0
	})
	if !found {
		i-- // the last change before seq
	}
	if i < 0 {
		return 0
	}
	return time.Duration(changes[i].Seconds) * time.Second
}

// isTimerMessage reports whether the message at seq set one of the changes.
func isTimerMessage(changes []timerChange, seq uint64) bool {
	for _, c := range changes {
		if c.Marked && c.From == seq+1 {
			return true
		}
	}
	return false
}

// longerTimer returns the longer of two timers; 0 (off) is the longest.
func longerTimer(a, b uint32) uint32 {
	if a == 0 || b == 0 {
		return 0
	}
	return max(a, b)
}

// withTimerChange returns the history with c added in order (replacing a
// change from the same sequence) and bounded.
func withTimerChange(changes []timerChange, c timerChange) []timerChange {
	out := slices.Clone(changes)
	i, found := slices.BinarySearchFunc(out, c.From, func(e timerChange, from uint64) int {
		switch {
		case e.From < from:
			return -1
		case e.From > from:
			return 1
		}
		return 0
	})
	if found {
		out[i] = c
	} else {
		out = slices.Insert(out, i, c)
	}
	for len(out) > maxTimerChanges {
		out[1] = timerChange{From: out[0].From, Seconds: longerTimer(out[0].Seconds, out[1].Seconds), Marked: out[0].Marked}
		out = out[1:]
	}
	return out
}

// writeTimerHistory replaces the record at revision rev (0: none) with
// changes, or deletes it if changes hold no timer; ErrRevisionMismatch or
// ErrExists if another writer came first.
func (s *Server) writeTimerHistory(ctx context.Context, gh string, changes []timerChange, rev uint64) error {
	if len(changes) == 0 || len(changes) == 1 && changes[0].Seconds == 0 && !changes[0].Marked {
		if rev == 0 {
			return nil
		}
		return s.st.Delete(ctx, bucketTimers, gh, rev)
	}
	b := encodeRecord(timerRecord{Seconds: changes[len(changes)-1].Seconds, Changes: changes})
	var err error
	if rev == 0 {
		_, err = s.st.Create(ctx, bucketTimers, gh, b)
	} else {
		_, err = s.st.Update(ctx, bucketTimers, gh, b, rev)
	}
	return err
}

// timerChangeFor checks what a member tells of a timer message at seq and
// returns the change it makes (seq 0: from the next message stored).
func (s *Server) timerChangeFor(ctx context.Context, c *session, gh string, seconds uint32, seq uint64) (timerChange, error) {
	name := groupLog(gh)
	info, err := s.st.Info(ctx, name)
	if err != nil {
		return timerChange{}, storeError(err, "reading group log")
	}
	next := timerChange{From: info.Last + 1, Seconds: seconds}
	if seq == 0 {
		return next, nil
	}
	if seq > info.Last {
		return timerChange{}, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "timer message %d is beyond the log's end %d", seq, info.Last)
	}
	es, err := s.st.Read(ctx, name, seq, 1)
	if err != nil {
		return timerChange{}, storeError(err, "reading group log")
	}
	if len(es) == 0 || es[0].Seq != seq {
		// Every device read it and it is gone: nothing before the
		// next message is left to apply the timer to.
		return next, nil
	}
	var gm anomv1.GroupMessage
	if err := proto.Unmarshal(es[0].Data, &gm); err != nil {
		return timerChange{}, fmt.Errorf("decoding group %s entry %d: %w: %w", gh, seq, store.ErrCorrupt, err)
	}
	if !bytes.Equal(gm.GetSenderDevice(), c.device[:]) {
		return timerChange{}, errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "message %d is not this device's", seq)
	}
	if m, err := mls.DecodeMLSMessage(gm.GetMessage()); err != nil || m.WireFormat != mls.WirePrivateMessage {
		return timerChange{}, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "message %d is not an application message", seq)
	}
	if es[0].Time.Before(s.now().Add(-timerMessageWindow)) {
		return timerChange{}, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "timer message %d is older than %v", seq, timerMessageWindow)
	}
	return timerChange{From: seq + 1, Seconds: seconds, Marked: true}, nil
}

// setGroupTimer records a change of a group's disappearing-message timer;
// only a current member may make it.
func (s *Server) setGroupTimer(ctx context.Context, c *session, req *anomv1.SetGroupTimer) (*anomv1.Ok, error) {
	gh, err := checkGroupID(req.GetGroupId())
	if err != nil {
		return nil, err
	}
	if time.Duration(req.GetSeconds())*time.Second > MaxGroupTimer {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "timer of %d seconds; at most %v", req.GetSeconds(), MaxGroupTimer)
	}
	st, err := s.group(ctx, gh, false)
	if err != nil {
		return nil, err
	}
	member := slices.Contains(st.rec.Leaves, c.devHex)
	st.mu.RUnlock()
	if !member {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "not a member of the group")
	}
	change, err := s.timerChangeFor(ctx, c, gh, req.GetSeconds(), req.GetSeq())
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		tr, rev, err := s.timerHistory(ctx, gh)
		if err != nil {
			return nil, err
		}
		err = s.writeTimerHistory(ctx, gh, withTimerChange(tr.Changes, change), rev)
		if err == nil {
			break
		}
		if attempt < 8 && (errors.Is(err, store.ErrRevisionMismatch) || errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrNotFound)) {
			continue // another change came first
		}
		return nil, fmt.Errorf("setting group timer: %w", err)
	}
	s.log.Info("group timer set", "group", gh, "device", c.devHex, "seconds", req.GetSeconds(), "from", change.From)
	return &anomv1.Ok{}, nil
}

// pruneTimerHistory drops the changes none of whose messages are stored
// any more, in the log or kept aside. Another writer's change wins: the
// next trim prunes then.
func (s *Server) pruneTimerHistory(ctx context.Context, gh string, tr timerRecord, rev uint64) error {
	if rev == 0 {
		return nil
	}
	info, err := s.st.Info(ctx, groupLog(gh))
	if err != nil {
		return fmt.Errorf("pruning timers of %s: %w", gh, err)
	}
	earliest := info.First
	page, _, err := s.st.List(ctx, bucketKept, store.ListOptions{Prefix: gh + ".", Limit: 1})
	if err != nil {
		return fmt.Errorf("listing kept messages of %s: %w", gh, err)
	}
	if len(page) > 0 {
		seq, err := strconv.ParseUint(page[0].Key[len(gh)+1:], 10, 64)
		if err != nil {
			return fmt.Errorf("kept message key %s: %w", page[0].Key, store.ErrCorrupt)
		}
		earliest = min(earliest, seq)
	}
	changes := tr.Changes
	for len(changes) > 1 && changes[1].From <= earliest {
		changes = changes[1:]
	}
	if len(changes) == 1 && changes[0].Marked && changes[0].From <= earliest {
		changes = []timerChange{{From: changes[0].From, Seconds: changes[0].Seconds}} // its timer message is gone
	}
	if len(changes) == len(tr.Changes) && (len(changes) == 0 || changes[0] == tr.Changes[0]) {
		return nil
	}
	err = s.writeTimerHistory(ctx, gh, changes, rev)
	if errors.Is(err, store.ErrRevisionMismatch) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pruning timers of %s: %w", gh, err)
	}
	return nil
}

// trimByTimers deletes from a group's log the application messages older
// than the timer they were stored under, setting aside (bucket "kept")
// the messages before them that must stay: those some device has not
// acknowledged (seq > low) and that are commits, timer messages or not
// yet past their own timer. Within one change the messages expire in the
// order they were stored, so only the expired ones and the first that is
// not are read.
func (s *Server) trimByTimers(ctx context.Context, gh string, changes []timerChange, low uint64) error {
	name := groupLog(gh)
	info, err := s.st.Info(ctx, name)
	if err != nil {
		return fmt.Errorf("trimming %s: %w", name, err)
	}
	if info.Len() == 0 {
		return nil
	}
	now := s.now()
	upTo := info.First // the log is trimmed before upTo
	for i, c := range changes {
		if c.Seconds == 0 {
			continue
		}
		end := info.Last + 1
		if i+1 < len(changes) {
			end = min(end, changes[i+1].From)
		}
		from := max(c.From, upTo)
		if from >= end {
			continue
		}
		x, err := s.firstUnexpired(ctx, name, from, end, now.Add(-time.Duration(c.Seconds)*time.Second))
		if err != nil {
			return err
		}
		if x > from {
			upTo = x
		}
	}
	if upTo <= info.First {
		return nil
	}
	for from := info.First; from < upTo; {
		es, err := s.st.Read(ctx, name, from, int(min(upTo-from, store.MaxReadEntries)))
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		if len(es) == 0 {
			break
		}
		var ops []store.Op
		for _, e := range es {
			if e.Seq >= upTo {
				break
			}
			from = e.Seq + 1
			if e.Seq <= low {
				continue
			}
			var gm anomv1.GroupMessage
			if err := proto.Unmarshal(e.Data, &gm); err != nil {
				return fmt.Errorf("decoding group %s entry %d: %w: %w", gh, e.Seq, store.ErrCorrupt, err)
			}
			if expiredMessage(changes, e.Seq, e.Time, gm.GetMessage(), now) {
				continue
			}
			gm.Seq, gm.TimeMs = e.Seq, e.Time.UnixMilli()
			b, err := proto.Marshal(&gm)
			if err != nil {
				return fmt.Errorf("encoding kept message: %w", err)
			}
			ops = append(ops, store.PutOp(bucketKept, keptKey(gh, e.Seq), b))
		}
		for len(ops) > 0 {
			n := min(len(ops), store.MaxTxnOps)
			if _, err := s.st.Txn(ctx, ops[:n]...); err != nil {
				return fmt.Errorf("keeping messages of %s: %w", gh, err)
			}
			ops = ops[n:]
		}
		if es[len(es)-1].Seq+1 >= upTo {
			break
		}
	}
	// What must stay is durable aside before the log loses it.
	if err := s.st.Trim(ctx, name, upTo); err != nil {
		return fmt.Errorf("trimming %s by its timers: %w", name, err)
	}
	return nil
}

// firstUnexpired returns the sequence of the first message in [from, end)
// stored at or after cutoff, end if none. It reads pages growing from one
// entry, as usually nothing or little has expired since the last sweep.
func (s *Server) firstUnexpired(ctx context.Context, name string, from, end uint64, cutoff time.Time) (uint64, error) {
	for page := 1; from < end; page = min(page*8, store.MaxReadEntries) {
		es, err := s.st.Read(ctx, name, from, int(min(uint64(page), end-from)))
		if err != nil {
			return 0, fmt.Errorf("reading %s: %w", name, err)
		}
		if len(es) == 0 {
			return end, nil
		}
		for _, e := range es {
			if e.Seq >= end {
				return end, nil
			}
			if !e.Time.Before(cutoff) {
				return e.Seq, nil
			}
			from = e.Seq + 1
		}
	}
	return end, nil
}

// expiredMessage reports whether the message at seq, stored at t, goes by
// its timer: an application message, not a timer message, older than the
// timer it was stored under.
func expiredMessage(changes []timerChange, seq uint64, t time.Time, msg []byte, now time.Time) bool {
	d := timerAt(changes, seq)
	if d == 0 || !t.Before(now.Add(-d)) || isTimerMessage(changes, seq) {
		return false
	}
	m, err := mls.DecodeMLSMessage(msg)
	return err == nil && m.WireFormat != mls.WirePublicMessage
}
