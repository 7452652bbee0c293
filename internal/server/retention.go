package server

import (
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

// Retention of group logs. A message is kept until every device that may
// read it has acknowledged it (current members and removed devices that
// have not yet read their removal), and at most Config.Retention.
//
// A group's disappearing-message timer, which its members tell the server
// with SetGroupTimer, shortens that: a message older than the timer is
// deleted even if some device has not read it. Commits are the exception:
// a device that misses one can no longer follow the group, so a commit
// the timer trims from the log is kept aside (bucket "kept") until every
// device has it or the retention limit passes, and Fetch serves it in its
// place. Commits carry no application content.

// MaxGroupTimer is the longest disappearing-message timer.
const MaxGroupTimer = 366 * 24 * time.Hour

func keptKey(gh string, seq uint64) string {
	return gh + "." + fmt.Sprintf("%020d", seq)
}

// setGroupTimer records a group's disappearing-message timer; only a
// current member may set it.
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
	if req.GetSeconds() == 0 {
		err = s.st.Delete(ctx, bucketTimers, gh, 0)
	} else {
		_, err = s.st.Put(ctx, bucketTimers, gh, encodeRecord(timerRecord{Seconds: req.GetSeconds()}))
	}
	if err != nil {
		return nil, fmt.Errorf("setting group timer: %w", err)
	}
	s.log.Info("group timer set", "group", gh, "device", c.devHex, "seconds", req.GetSeconds())
	return &anomv1.Ok{}, nil
}

// groupTimer returns a group's timer in seconds, 0 if none.
func (s *Server) groupTimer(ctx context.Context, gh string) (uint32, error) {
	e, err := s.st.Get(ctx, bucketTimers, gh)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading group timer: %w", err)
	}
	var tr timerRecord
	if err := decodeRecord(e, &tr); err != nil {
		return 0, err
	}
	return tr.Seconds, nil
}

// keptCommits returns up to n kept commits of a group with from <= seq <
// upTo, in order.
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
	timer, err := s.groupTimer(ctx, gh)
	if err != nil {
		return err
	}
	if timer > 0 {
		if err := s.trimByTimer(ctx, gh, s.now().Add(-time.Duration(timer)*time.Second), low); err != nil {
			return err
		}
	}
	return s.dropKept(ctx, gh, low, cutoff)
}

// trimByTimer deletes a group's messages appended before cutoff, setting
// aside the commits some device has not acknowledged (seq > low).
func (s *Server) trimByTimer(ctx context.Context, gh string, cutoff time.Time, low uint64) error {
	name := groupLog(gh)
	from := uint64(0)
	for {
		es, err := s.st.Read(ctx, name, from, 0)
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		var ops []store.Op
		done := len(es) == 0
		for _, e := range es {
			if !e.Time.Before(cutoff) {
				done = true
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
			m, err := mls.DecodeMLSMessage(gm.GetMessage())
			if err != nil || m.WireFormat != mls.WirePublicMessage {
				continue // application messages go
			}
			gm.Seq, gm.TimeMs = e.Seq, e.Time.UnixMilli()
			b, err := proto.Marshal(&gm)
			if err != nil {
				return fmt.Errorf("encoding kept commit: %w", err)
			}
			ops = append(ops, store.PutOp(bucketKept, keptKey(gh, e.Seq), b))
		}
		for len(ops) > 0 {
			n := min(len(ops), store.MaxTxnOps)
			if _, err := s.st.Txn(ctx, ops[:n]...); err != nil {
				return fmt.Errorf("keeping commits of %s: %w", gh, err)
			}
			ops = ops[n:]
		}
		if done {
			break
		}
	}
	// The commits are durable aside before the log loses them.
	if err := s.st.TrimBefore(ctx, name, cutoff); err != nil {
		return fmt.Errorf("trimming %s by its timer: %w", name, err)
	}
	return nil
}

// dropKept deletes kept commits every device has (seq <= low) or older
// than the retention cutoff.
func (s *Server) dropKept(ctx context.Context, gh string, low uint64, cutoff time.Time) error {
	after := ""
	for {
		page, more, err := s.st.List(ctx, bucketKept, store.ListOptions{Prefix: gh + ".", After: after})
		if err != nil {
			return fmt.Errorf("listing kept commits of %s: %w", gh, err)
		}
		var ops []store.Op
		for _, e := range page {
			seq, err := strconv.ParseUint(e.Key[len(gh)+1:], 10, 64)
			if err != nil {
				return fmt.Errorf("kept commit key %s: %w", e.Key, store.ErrCorrupt)
			}
			var gm anomv1.GroupMessage
			if err := proto.Unmarshal(e.Value, &gm); err != nil {
				return fmt.Errorf("decoding kept commit %s: %w: %w", e.Key, store.ErrCorrupt, err)
			}
			if seq <= low || time.UnixMilli(gm.GetTimeMs()).Before(cutoff) {
				ops = append(ops, store.DeleteOp(bucketKept, e.Key, 0))
			}
		}
		for len(ops) > 0 {
			n := min(len(ops), store.MaxTxnOps)
			if _, err := s.st.Txn(ctx, ops[:n]...); err != nil {
				return fmt.Errorf("dropping kept commits of %s: %w", gh, err)
			}
			ops = ops[n:]
		}
		if !more || len(page) == 0 {
			return nil
		}
		after = page[len(page)-1].Key
	}
}
