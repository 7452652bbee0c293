package server

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"anom/internal/store"
	anomv1 "anom/proto/anom/v1"
)

// Reading a group: fetch, acknowledgement and the list of a device's
// groups.

// membership returns where the device joined the group, or FORBIDDEN.
func (s *Server) membership(ctx context.Context, devHex, gh string) (memberRecord, error) {
	var mr memberRecord
	e, err := s.st.Get(ctx, bucketMembers, memberKey(devHex, gh))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return mr, errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "not a member of the group")
		}
		return mr, fmt.Errorf("checking membership: %w", err)
	}
	return mr, decodeRecord(e, &mr)
}

func (s *Server) fetch(ctx context.Context, c *session, req *anomv1.Fetch) (*anomv1.Messages, error) {
	gh, err := checkGroupID(req.GetGroupId())
	if err != nil {
		return nil, err
	}
	mr, err := s.membership(ctx, c.devHex, gh)
	if err != nil {
		return nil, err
	}
	from := max(req.GetFrom(), mr.Joined)
	n := int(req.GetMax())
	if n <= 0 || n > s.limits.MaxFetch {
		n = s.limits.MaxFetch
	}
	es, err := s.st.Read(ctx, groupLog(gh), from, n)
	if err != nil {
		return nil, storeError(err, "reading group log")
	}
	info, err := s.st.Info(ctx, groupLog(gh))
	if err != nil {
		return nil, storeError(err, "reading group log")
	}
	out := &anomv1.Messages{GroupId: req.GetGroupId(), Last: info.Last}
	// Messages that must stay when the disappearing-message timer
	// trimmed the log (commits, timer messages, messages before under no
	// or a longer timer) are kept aside; they come first. They are
	// read after the log, so a trim in between loses none.
	upTo := info.Last + 1
	if len(es) > 0 {
		upTo = es[0].Seq
	}
	if out.Messages, err = s.keptCommits(ctx, gh, from, upTo, n); err != nil {
		return nil, err
	}
	for _, e := range es[:min(len(es), n-len(out.Messages))] {
		var gm anomv1.GroupMessage
		if err := proto.Unmarshal(e.Data, &gm); err != nil {
			return nil, fmt.Errorf("decoding group %s entry %d: %w: %w", gh, e.Seq, store.ErrCorrupt, err)
		}
		gm.Seq, gm.TimeMs = e.Seq, e.Time.UnixMilli()
		out.Messages = append(out.Messages, &gm)
	}
	if mr.Removed > 0 {
		// A removed device reads up to the commit that removed it.
		out.Last = min(out.Last, mr.Removed)
		for i, m := range out.Messages {
			if m.GetSeq() > mr.Removed {
				out.Messages = out.Messages[:i]
				break
			}
		}
	}
	return out, nil
}

func (s *Server) ack(ctx context.Context, c *session, req *anomv1.Ack) (*anomv1.Ok, error) {
	gh, err := checkGroupID(req.GetGroupId())
	if err != nil {
		return nil, err
	}
	mr, err := s.membership(ctx, c.devHex, gh)
	if err != nil {
		return nil, err
	}
	seq := req.GetSeq()
	if mr.Removed > 0 {
		seq = min(seq, mr.Removed)
	}
	if _, err := s.st.SetCursor(ctx, groupLog(gh), c.devHex, seq); err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "ack beyond the log")
		}
		return nil, storeError(err, "acknowledging")
	}
	if mr.Removed > 0 && seq >= mr.Removed {
		// The device has the commit that removed it: the group is gone
		// for it.
		if err := s.dropRemoved(ctx, c.devHex, gh, mr.Removed); err != nil {
			return nil, err
		}
	}
	return &anomv1.Ok{}, nil
}

func (s *Server) listGroups(ctx context.Context, c *session) (*anomv1.Groups, error) {
	out := &anomv1.Groups{}
	after := ""
	for {
		page, more, err := s.st.List(ctx, bucketMembers, store.ListOptions{Prefix: c.devHex + ".", After: after})
		if err != nil {
			return nil, fmt.Errorf("listing groups: %w", err)
		}
		for _, e := range page {
			var mr memberRecord
			if err := decodeRecord(e, &mr); err != nil {
				return nil, err
			}
			gh := e.Key[len(c.devHex)+1:]
			gid, err := hex.DecodeString(gh)
			if err != nil {
				return nil, fmt.Errorf("member key %s: %w", e.Key, store.ErrCorrupt)
			}
			st, err := s.group(ctx, gh, false)
			if err != nil {
				return nil, err
			}
			epoch := st.rec.Epoch
			st.mu.RUnlock()
			info, err := s.st.Info(ctx, groupLog(gh))
			if err != nil {
				return nil, storeError(err, "group log")
			}
			cur, err := s.st.Cursor(ctx, groupLog(gh), c.devHex)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, storeError(err, "cursor")
			}
			gs := &anomv1.GroupState{GroupId: gid, Epoch: epoch, Last: info.Last, Cursor: cur, Joined: mr.Joined, Removed: mr.Removed}
			if mr.Removed > 0 {
				gs.Last = min(gs.Last, mr.Removed)
			}
			if gs.TimerSeconds, err = s.groupTimer(ctx, gh); err != nil {
				return nil, err
			}
			out.Groups = append(out.Groups, gs)
		}
		if !more || len(page) == 0 {
			return out, nil
		}
		after = page[len(page)-1].Key
	}
}
