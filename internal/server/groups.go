package server

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"anom/internal/store"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

const (
	minGroupID = 16
	maxGroupID = 64
)

// groupState is the server's view of one group: its record, guarded by
// mu. Application messages append under the read lock (concurrently);
// commits take the write lock, so membership and epoch cannot change
// while a message is being checked and appended.
type groupState struct {
	mu     sync.RWMutex
	loaded bool
	rec    groupRecord
	rev    uint64
	// fan caches the online sessions of the members (see groupSessions).
	fan atomic.Pointer[fanout]
}

// fanout is the online sessions of a group's members as the hub had them
// at generation gen; immutable.
type fanout struct {
	gen      uint64
	sessions []*session
}

// groupSessions returns the online sessions of the group's members, to be
// read only. Called with the group's lock (read or write) held. They are
// looked up in the hub once per hub generation (which every session that
// authenticates or closes advances) and change of members, not for every
// message.
func (s *Server) groupSessions(st *groupState) []*session {
	if f := st.fan.Load(); f != nil && f.gen == s.hub.gen.Load() {
		return f.sessions
	}
	list, gen := s.hub.devicesAt(st.rec.Leaves)
	st.fan.Store(&fanout{gen: gen, sessions: list})
	return list
}

// dropStaleFanouts forgets the cached sessions of groups whose cache is
// older than the hub, so that closed sessions are not kept in memory by
// groups that send nothing.
func (g *groupCache) dropStaleFanouts(gen uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, st := range g.m {
		if f := st.fan.Load(); f != nil && f.gen != gen {
			st.fan.CompareAndSwap(f, nil)
		}
	}
}

type groupCache struct {
	mu sync.Mutex
	m  map[string]*groupState
}

func newGroupCache() *groupCache { return &groupCache{m: map[string]*groupState{}} }

func (g *groupCache) entry(gh string) *groupState {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.m[gh]
	if st == nil {
		st = &groupState{}
		g.m[gh] = st
	}
	return st
}

func groupLog(gh string) string { return groupLogPre + gh }

func memberKey(devHex, gh string) string { return devHex + "." + gh }

func checkGroupID(id []byte) (string, error) {
	if len(id) < minGroupID || len(id) > maxGroupID {
		return "", errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "group id of %d bytes, want %d to %d", len(id), minGroupID, maxGroupID)
	}
	return hex.EncodeToString(id), nil
}

// group returns the loaded state of a group, with the write lock held if
// write, else the read lock. The caller unlocks.
func (s *Server) group(ctx context.Context, gh string, write bool) (*groupState, error) {
	st := s.groups.entry(gh)
	for {
		if write {
			st.mu.Lock()
		} else {
			st.mu.RLock()
		}
		if st.loaded {
			return st, nil
		}
		if !write {
			st.mu.RUnlock()
			st.mu.Lock()
		}
		err := s.loadGroup(ctx, gh, st)
		if err != nil {
			st.mu.Unlock()
			return nil, err
		}
		if write {
			return st, nil
		}
		st.mu.Unlock()
	}
}

// loadGroup reads the group record and replays commits appended after it
// (a crash between a commit's append and its record update). Called with
// the write lock.
func (s *Server) loadGroup(ctx context.Context, gh string, st *groupState) error {
	if st.loaded {
		return nil
	}
	e, err := s.st.Get(ctx, bucketGroups, gh)
	if err != nil {
		return storeError(err, "group "+gh)
	}
	var rec groupRecord
	if err := decodeRecord(e, &rec); err != nil {
		return err
	}
	st.rec, st.rev = rec, e.Revision
	st.fan.Store(nil)
	for {
		es, err := s.st.Read(ctx, groupLog(gh), st.rec.Applied+1, 0)
		if err != nil {
			return fmt.Errorf("replaying group %s: %w", gh, err)
		}
		if len(es) == 0 {
			break
		}
		for _, le := range es {
			if err := s.replayEntry(ctx, gh, st, le); err != nil {
				return err
			}
		}
	}
	st.loaded = true
	return nil
}

func (s *Server) replayEntry(ctx context.Context, gh string, st *groupState, le store.LogEntry) error {
	var gm anomv1.GroupMessage
	if err := proto.Unmarshal(le.Data, &gm); err != nil {
		return fmt.Errorf("replaying group %s entry %d: %w: %w", gh, le.Seq, store.ErrCorrupt, err)
	}
	m, err := mls.DecodeMLSMessage(gm.GetMessage())
	if err != nil || m.WireFormat != mls.WirePublicMessage || m.Public.Content.ContentType != mls.ContentCommit {
		// Not a commit: nothing to replay.
		st.rec.Applied = le.Seq
		return nil
	}
	plan, err := s.planCommit(st.rec.Leaves, uint32(m.Public.Content.Sender.LeafIndex), m.Public.Content.Commit, false)
	if err != nil {
		return fmt.Errorf("replaying group %s commit %d: %w", gh, le.Seq, err)
	}
	s.log.Info("replaying commit", "group", gh, "seq", le.Seq)
	return s.recordCommit(ctx, gh, st, plan, le.Seq, gm.GetEpoch())
}

// recordCommit stores the group record after a commit and updates the
// member index. Called with the write lock.
func (s *Server) recordCommit(ctx context.Context, gh string, st *groupState, plan *commitPlan, seq, epoch uint64) error {
	rec := groupRecord{Epoch: epoch, Leaves: plan.leaves, Applied: seq}
	rev, err := s.st.Txn(ctx, store.UpdateOp(bucketGroups, gh, encodeRecord(rec), st.rev))
	if err != nil {
		st.loaded = false
		return fmt.Errorf("recording commit %d of group %s: %w", seq, gh, err)
	}
	st.rec, st.rev = rec, rev[0]
	st.fan.Store(nil)
	var ops []store.Op
	for _, d := range plan.added {
		ops = append(ops, store.PutOp(bucketMembers, memberKey(d, gh), encodeRecord(memberRecord{Joined: seq})),
			store.DeleteOp(bucketLeaving, leavingKey(gh, d), 0))
	}
	rops, err := s.removalOps(ctx, gh, plan, seq)
	if err != nil {
		st.loaded = false
		return err
	}
	ops = append(ops, rops...)
	for len(ops) > 0 {
		n := min(len(ops), store.MaxTxnOps)
		if _, err := s.st.Txn(ctx, ops[:n]...); err != nil {
			st.loaded = false
			return fmt.Errorf("recording members of group %s: %w", gh, err)
		}
		ops = ops[n:]
	}
	return nil
}

func (s *Server) createGroup(ctx context.Context, c *session, req *anomv1.CreateGroup) (*anomv1.Ok, error) {
	gh, err := checkGroupID(req.GetGroupId())
	if err != nil {
		return nil, err
	}
	rec := groupRecord{Epoch: 0, Leaves: []string{c.devHex}}
	_, err = s.st.Txn(ctx,
		store.CreateOp(bucketGroups, gh, encodeRecord(rec)),
		store.PutOp(bucketMembers, memberKey(c.devHex, gh), encodeRecord(memberRecord{Joined: 1})),
	)
	if err != nil {
		var te *store.TxnError
		if errors.As(err, &te) && errors.Is(err, store.ErrExists) {
			return nil, errorf(anomv1.ErrorCode_ERROR_CODE_EXISTS, "group exists")
		}
		return nil, fmt.Errorf("creating group: %w", err)
	}
	return &anomv1.Ok{}, nil
}

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
	st, err := s.group(ctx, gh, false)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(st.rec.Leaves, c.devHex) {
		st.mu.RUnlock()
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "not a member of the group")
	}
	if pm.Epoch != st.rec.Epoch {
		st.mu.RUnlock()
		return nil, &Error{Code: anomv1.ErrorCode_ERROR_CODE_EPOCH_CONFLICT, Message: fmt.Sprintf("message for epoch %d", pm.Epoch), Epoch: st.rec.Epoch}
	}
	gm := &anomv1.GroupMessage{SenderDevice: c.device[:], Message: req.GetMessage(), Epoch: st.rec.Epoch}
	var (
		seq    uint64
		t      time.Time
		stored []byte
	)
	if s.esc != nil {
		seq, t, stored, err = s.appendEscrowed(ctx, c, gh, req, pm, st.rec.Leaves, gm)
	} else {
		seq, t, stored, err = s.appendGroup(ctx, gh, gm)
	}
	var targets []*session
	if err == nil {
		targets = s.groupSessions(st)
	}
	st.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	s.metrics.messagesApp.Inc()
	s.pushTo(targets, pushFrame(req.GetGroupId(), stored, seq, t.UnixMilli()), c)
	return &anomv1.Sent{Seq: seq, Epoch: gm.Epoch}, nil
}

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
	seq, t, stored, err := s.appendGroup(ctx, gh, gm)
	if err != nil {
		return nil, err
	}
	if err := s.recordCommit(ctx, gh, st, plan, seq, gm.Epoch); err != nil {
		// The commit is durable in the log; the record is rebuilt from
		// it on the next access, so the commit stands.
		s.log.Error("recording commit", "group", gh, "seq", seq, "err", err)
	}
	s.metrics.messagesCommit.Inc()
	s.pushTo(s.hub.appendDevices(nil, plan.leaves, plan.removed), pushFrame(req.GetGroupId(), stored, seq, t.UnixMilli()), c)
	return &anomv1.Sent{Seq: seq, Epoch: gm.Epoch}, nil
}

// appendGroup writes one message durably and returns its sequence, time
// and encoding (without sequence and time, as stored).
func (s *Server) appendGroup(ctx context.Context, gh string, gm *anomv1.GroupMessage) (uint64, time.Time, []byte, error) {
	b, err := proto.Marshal(gm)
	if err != nil {
		return 0, time.Time{}, nil, fmt.Errorf("encoding group message: %w", err)
	}
	start := time.Now()
	seq, err := s.st.Append(ctx, groupLog(gh), b)
	s.metrics.storeCommit.Observe(time.Since(start).Seconds())
	if err != nil {
		return 0, time.Time{}, nil, storeError(err, "appending to group log")
	}
	return seq, s.now(), b, nil
}

// pushTo pushes b to the sessions, except the sending session, which
// gets the Sent answer.
func (s *Server) pushTo(targets []*session, b []byte, from *session) {
	for _, c := range targets {
		if c != from {
			c.push(b)
		}
	}
}

func marshalPush(f *anomv1.Frame) ([]byte, error) { return proto.Marshal(f) }

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
