package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"anom/internal/store"
	anomv1 "anom/proto/anom/v1"
)

// Retention of group logs. A message is kept until every device that may
// read it has acknowledged it (current members and removed devices that
// have not yet read their removal), and at most Config.Retention.
//
// A group's disappearing-message timer, which its members tell the server
// with SetGroupTimer, shortens that for the messages stored after the
// timer message (timers.go keeps the history): such a message older than
// its timer is deleted even if some device has not read it. Commits are
// the exception: a device that misses one can no longer follow the group,
// so a commit the timer trims from the log is kept aside (bucket "kept")
// until every device has it or the retention limit passes, and Fetch
// serves it in its place. Commits carry no application content. Timer
// messages stay the same way, and so do the messages stored before an
// expired one under no or a longer timer, since the log is trimmed only
// from its start.

// MaxGroupTimer is the longest disappearing-message timer.
const MaxGroupTimer = 366 * 24 * time.Hour

func keptKey(gh string, seq uint64) string {
	return gh + "." + fmt.Sprintf("%020d", seq)
}

// keptCommits returns up to n kept messages (mostly commits) of a group
// with from <= seq < upTo, in order.
func (s *Server) keptCommits(ctx context.Context, gh string, from, upTo uint64, n int) ([]*anomv1.GroupMessage, error) {
	if from >= upTo || n <= 0 {
		return nil, nil
	}
	var out []*anomv1.GroupMessage
	after := ""
	if from > 0 {
		after = keptKey(gh, from-1)
	}
	for len(out) < n {
		page, more, err := s.st.List(ctx, bucketKept, store.ListOptions{Prefix: gh + ".", After: after, Limit: n - len(out)})
		if err != nil {
			return nil, fmt.Errorf("reading kept commits of %s: %w", gh, err)
		}
		for _, e := range page {
			var gm anomv1.GroupMessage
			if err := proto.Unmarshal(e.Value, &gm); err != nil {
				return nil, fmt.Errorf("decoding kept commit %s: %w: %w", e.Key, store.ErrCorrupt, err)
			}
			if gm.GetSeq() >= upTo {
				return out, nil
			}
			out = append(out, &gm)
		}
		if !more || len(page) == 0 {
			return out, nil
		}
		after = page[len(page)-1].Key
	}
	return out, nil
}

// trimGroups applies retention to every group log and drops entries every
// device that may read them has acknowledged.
func (s *Server) trimGroups(ctx context.Context) error {
	cutoff := s.now().Add(-s.cfg.Retention)
	after := ""
	for {
		names, more, err := s.st.ListLogs(ctx, store.ListOptions{Prefix: groupLogPre, After: after})
		if err != nil {
			return fmt.Errorf("listing group logs: %w", err)
		}
		for _, name := range names {
			if err := s.trimGroup(ctx, name, cutoff); err != nil {
				return err
			}
		}
		if !more || len(names) == 0 {
			return nil
		}
		after = names[len(names)-1]
	}
}

// keepCommits is how many of its last entries a group's commit log keeps
// at least.
const keepCommits = 64

func (s *Server) trimGroup(ctx context.Context, name string, cutoff time.Time) error {
	if err := s.st.TrimBefore(ctx, name, cutoff); err != nil {
		return fmt.Errorf("trimming %s by age: %w", name, err)
	}
	gh := name[len(groupLogPre):]
	// Loading the group makes its record reflect every commit in the log,
	// so no replay needs what is trimmed below.
	st, err := s.group(ctx, gh, false)
	if err != nil {
		return err
	}
	members, epoch := slices.Clone(st.rec.Leaves), st.rec.Epoch
	st.mu.RUnlock()
	// The commit log's recent entries let a server whose view is a few
	// commits old catch up by reading only those (catchUpCommits); older
	// ones are not needed, the group record reflecting them.
	if ci, err := s.st.Info(ctx, commitLog(gh)); err != nil {
		return fmt.Errorf("reading the commit log of %s: %w", gh, err)
	} else if ci.Len() > 2*keepCommits {
		if err := s.st.Trim(ctx, commitLog(gh), ci.Last-keepCommits+1); err != nil {
			return fmt.Errorf("trimming the commit log of %s: %w", gh, err)
		}
	}
	if s.esc != nil {
		if _, err := s.sweepSlots(ctx, gh, epoch); err != nil {
			return err
		}
	}
	leaving, err := s.leavingMembers(ctx, gh)
	if err != nil {
		return err
	}
	low, seen := uint64(0), false
	see := func(d string, mr memberRecord, known bool) error {
		cur, err := s.st.Cursor(ctx, name, d)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("reading cursor: %w", err)
		}
		if known && mr.Joined > 0 {
			cur = max(cur, mr.Joined-1)
		}
		if !seen || cur < low {
			low, seen = cur, true
		}
		return nil
	}
	for _, d := range members {
		if d == "" {
			continue
		}
		mr, err := s.membership(ctx, d, gh)
		if err := see(d, mr, err == nil); err != nil {
			return err
		}
	}
	info, err := s.st.Info(ctx, name)
	if err != nil {
		return fmt.Errorf("trimming %s: %w", name, err)
	}
	for d, mr := range leaving {
		if mr.Removed < info.First {
			if _, err := s.st.Get(ctx, bucketKept, keptKey(gh, mr.Removed)); errors.Is(err, store.ErrNotFound) {
				// Retention dropped the removing commit: nothing left to read.
				if err := s.dropRemoved(ctx, d, gh, mr.Removed); err != nil {
					return err
				}
				continue
			}
		}
		if err := see(d, mr, true); err != nil {
			return err
		}
	}
	if seen && low > 0 {
		if err := s.st.Trim(ctx, name, low+1); err != nil {
			return fmt.Errorf("trimming %s: %w", name, err)
		}
	}
	tr, rev, err := s.timerHistory(ctx, gh)
	if err != nil {
		return err
	}
	if err := s.trimByTimers(ctx, gh, tr.Changes, low); err != nil {
		return err
	}
	if err := s.dropKept(ctx, gh, low, cutoff, tr.Changes); err != nil {
		return err
	}
	return s.pruneTimerHistory(ctx, gh, tr, rev)
}

// dropKept deletes kept messages every device has (seq <= low), older
// than the retention cutoff, or past the timer they were stored under.
// Kept messages were stored in the order of their sequences, so each of
// these is a run of keys read only up to the first message that stays:
// a sweep reads what it deletes, plus the commits and timer messages
// kept under a timer and one message per run.
func (s *Server) dropKept(ctx context.Context, gh string, low uint64, cutoff time.Time, changes []timerChange) error {
	const end = math.MaxUint64
	if low > 0 {
		if err := s.dropKeptRun(ctx, gh, 0, low+1, func(uint64, time.Time, []byte) (bool, bool) { return true, false }); err != nil {
			return err
		}
	}
	old := func(_ uint64, t time.Time, _ []byte) (bool, bool) { return t.Before(cutoff), !t.Before(cutoff) }
	if err := s.dropKeptRun(ctx, gh, low+1, end, old); err != nil {
		return err
	}
	now := s.now()
	for i, c := range changes {
		if c.Seconds == 0 {
			continue
		}
		upTo := uint64(end)
		if i+1 < len(changes) {
			upTo = changes[i+1].From
		}
		timerCutoff := now.Add(-time.Duration(c.Seconds) * time.Second)
		expired := func(seq uint64, t time.Time, msg []byte) (bool, bool) {
			if !t.Before(timerCutoff) {
				return false, true
			}
			return expiredMessage(changes, seq, t, msg, now), false
		}
		if err := s.dropKeptRun(ctx, gh, max(c.From, low+1), upTo, expired); err != nil {
			return err
		}
	}
	return nil
}

// dropKeptRun reads a group's kept messages with from <= seq < upTo in
// order and deletes those f drops, until f stops.
func (s *Server) dropKeptRun(ctx context.Context, gh string, from, upTo uint64, f func(seq uint64, t time.Time, msg []byte) (drop, stop bool)) error {
	if from >= upTo {
		return nil
	}
	after := ""
	if from > 0 {
		after = keptKey(gh, from-1)
	}
	for {
		page, more, err := s.st.List(ctx, bucketKept, store.ListOptions{Prefix: gh + ".", After: after, Limit: 64})
		if err != nil {
			return fmt.Errorf("listing kept messages of %s: %w", gh, err)
		}
		var ops []store.Op
		stop := !more || len(page) == 0
		for _, e := range page {
			seq, err := strconv.ParseUint(e.Key[len(gh)+1:], 10, 64)
			if err != nil {
				return fmt.Errorf("kept message key %s: %w", e.Key, store.ErrCorrupt)
			}
			if seq >= upTo {
				stop = true
				break
			}
			var gm anomv1.GroupMessage
			if err := proto.Unmarshal(e.Value, &gm); err != nil {
				return fmt.Errorf("decoding kept message %s: %w: %w", e.Key, store.ErrCorrupt, err)
			}
			drop, halt := f(seq, time.UnixMilli(gm.GetTimeMs()), gm.GetMessage())
			if drop {
				ops = append(ops, store.DeleteOp(bucketKept, e.Key, 0))
			}
			if halt {
				stop = true
				break
			}
		}
		for len(ops) > 0 {
			n := min(len(ops), store.MaxTxnOps)
			if _, err := s.st.Txn(ctx, ops[:n]...); err != nil {
				return fmt.Errorf("dropping kept messages of %s: %w", gh, err)
			}
			ops = ops[n:]
		}
		if stop {
			return nil
		}
		after = page[len(page)-1].Key
	}
}
