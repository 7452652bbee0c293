package server

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"anom/internal/store"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// Sending to a group: application messages (through the group's writer,
// grouplog.go) and commits.

// send appends a message to a group log once it is durable, then fans it
// out.
func (s *Server) send(ctx context.Context, c *session, req *anomv1.Send) (*anomv1.Sent, error) {
	gh, err := checkGroupID(req.GetGroupId())
	if err != nil {
		return nil, err
	}
	if len(req.GetMessage()) > s.limits.MaxMessageSize || len(req.GetWelcome()) > s.limits.MaxMessageSize {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_TOO_LARGE, "message of %d bytes or welcome of %d bytes; limit %d", len(req.GetMessage()), len(req.GetWelcome()), s.limits.MaxMessageSize)
	}
	m, err := mls.DecodeMLSMessage(req.GetMessage())
	if err != nil {
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, err, "message")
	}
	switch m.WireFormat {
	case mls.WirePrivateMessage:
		return s.sendApplication(ctx, c, gh, req, m.Private)
	case mls.WirePublicMessage:
		return s.sendCommit(ctx, c, gh, req, m.Public)
	}
	return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, "wire format %d cannot be sent to a group", m.WireFormat)
}

func (s *Server) sendApplication(ctx context.Context, c *session, gh string, req *anomv1.Send, pm *mls.PrivateMessage) (*anomv1.Sent, error) {
	if pm.ContentType != mls.ContentApplication {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, "private messages carry application data only; commits and proposals must be public")
	}
	if len(req.GetWelcome()) > 0 {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a welcome goes only with a commit")
	}
	if string(pm.GroupID) != string(req.GetGroupId()) {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, "message is for another group")
	}
	st, leaves, err := s.applicationView(ctx, c, gh, pm.Epoch)
	if err != nil {
		return nil, err
	}
	gm := &anomv1.GroupMessage{SenderDevice: c.device[:], Message: req.GetMessage(), Epoch: pm.Epoch}
	r := &groupAppend{c: c, gid: req.GetGroupId(), epoch: pm.Epoch}
	if s.esc != nil {
		err = s.prepareEscrowed(ctx, c, gh, req, pm, leaves, gm, r)
	} else {
		r.entry, err = proto.Marshal(gm)
	}
	if err != nil {
		return nil, err
	}
	if err := s.appendApplication(gh, st, r); err != nil {
		return nil, err
	}
	return &anomv1.Sent{Seq: r.seq, Epoch: gm.Epoch}, nil
}

// applicationView checks that the device is a member of the group in the
// message's epoch, as far as this server's view knows, and returns the
// group and its leaves in that epoch. A view that disagrees is brought up
// to date from the log first (another server may have taken a commit);
// the group's writer checks the epoch again, against the store, when it
// appends.
func (s *Server) applicationView(ctx context.Context, c *session, gh string, epoch uint64) (*groupState, []string, error) {
	st, err := s.group(ctx, gh, false)
	if err != nil {
		return nil, nil, err
	}
	leaves, cur := st.rec.Leaves, st.rec.Epoch
	st.mu.RUnlock()
	if epoch != cur || !slices.Contains(leaves, c.devHex) {
		if st, err = s.group(ctx, gh, true); err != nil {
			return nil, nil, err
		}
		err := s.catchUp(ctx, gh, st)
		leaves, cur = st.rec.Leaves, st.rec.Epoch
		st.mu.Unlock()
		if err != nil {
			return nil, nil, err
		}
	}
	if !slices.Contains(leaves, c.devHex) {
		return nil, nil, errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "not a member of the group")
	}
	if epoch != cur {
		return nil, nil, &Error{Code: anomv1.ErrorCode_ERROR_CODE_EPOCH_CONFLICT, Message: fmt.Sprintf("message for epoch %d", epoch), Epoch: cur}
	}
	return st, leaves, nil
}

// sendCommit accepts a commit if it is the first for the group's current
// epoch. The store decides: the commit is appended only if the log's last
// sequence is the one this server's view is of; if another server (or
// writer) appended first, the view catches up and the commit is judged
// again, so of two commits for one epoch, on one server or two, exactly
// one is appended and the other gets EPOCH_CONFLICT with the epoch now in
// force.
func (s *Server) sendCommit(ctx context.Context, c *session, gh string, req *anomv1.Send, pub *mls.PublicMessage) (*anomv1.Sent, error) {
	content := &pub.Content
	if content.ContentType != mls.ContentCommit || content.Commit == nil {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, "public messages must be commits (content type %d); proposals go inline in a commit", content.ContentType)
	}
	if content.Sender.Type != mls.SenderMember {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "only members may commit (sender type %d)", content.Sender.Type)
	}
	if string(content.GroupID) != string(req.GetGroupId()) {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, "commit is for another group")
	}
	st, err := s.group(ctx, gh, true)
	if err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if err := s.catchUp(ctx, gh, st); err != nil {
			return nil, err
		}
		if !slices.Contains(st.rec.Leaves, c.devHex) {
			return nil, errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "not a member of the group")
		}
		if content.Epoch != st.rec.Epoch {
			return nil, &Error{Code: anomv1.ErrorCode_ERROR_CODE_EPOCH_CONFLICT, Message: fmt.Sprintf("commit for epoch %d", content.Epoch), Epoch: st.rec.Epoch}
		}
		leaf := uint32(content.Sender.LeafIndex)
		if int(leaf) >= len(st.rec.Leaves) || st.rec.Leaves[leaf] != c.devHex {
			return nil, errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "sender leaf %d is not this device's", leaf)
		}
		plan, err := s.planCommit(st.rec.Leaves, leaf, content.Commit, true)
		if err != nil {
			return nil, err
		}
		if len(plan.added) > 0 {
			w, err := mls.DecodeMLSMessage(req.GetWelcome())
			if err != nil || w.WireFormat != mls.WireWelcome {
				return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, "a commit that adds members needs its welcome")
			}
		} else if len(req.GetWelcome()) > 0 {
			return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "welcome without added members")
		}
		gm := &anomv1.GroupMessage{SenderDevice: c.device[:], Message: req.GetMessage(), Welcome: req.GetWelcome(), Epoch: st.rec.Epoch + 1}
		for _, d := range plan.added {
			b, _ := hex.DecodeString(d)
			gm.AddedDevices = append(gm.AddedDevices, b)
		}
		seq, t, stored, err := s.appendCommit(ctx, gh, st.last, st.commits, gm)
		if errors.Is(err, store.ErrConflict) && attempt < maxStoreRetries {
			s.metrics.appendConflicts.Inc()
			continue // another entry came first: catch up and judge again
		}
		if err != nil {
			return nil, storeError(err, "appending to group log")
		}
		st.commits++
		if err := s.recordCommit(ctx, gh, st, plan, seq, gm.Epoch); err != nil {
			// The commit is durable in the log; the record is rebuilt from
			// it on the next access, so the commit stands.
			s.log.Error("recording commit", "group", gh, "seq", seq, "err", err)
		}
		s.metrics.messagesCommit.Inc()
		frame := pushFrame(req.GetGroupId(), stored, seq, t.UnixMilli())
		s.pushTo(s.hub.appendDevices(nil, plan.leaves, plan.removed), frame, c)
		s.publish(Push{Devices: append(slices.Clip(plan.leaves), plan.removed...), Frame: frame})
		return &anomv1.Sent{Seq: seq, Epoch: gm.Epoch}, nil
	}
}
