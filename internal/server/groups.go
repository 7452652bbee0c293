package server

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
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

// groupState is this server's view of one group: its record as of the
// log's sequence last, guarded by mu. The store's group log is the judge
// of what the group is: every append to it is conditional on the last
// sequence the writer has seen (AppendIf), so two servers on one store
// cannot both append after the same entry, and a server whose view is
// stale finds out, reads what it missed (catchUp) and decides again.
// Application messages of this server are batched by the group's writer
// (grouplog.go); a commit takes the write lock while it decides and
// appends.
type groupState struct {
	mu     sync.RWMutex
	loaded bool
	rec    groupRecord
	rev    uint64
	// last is the log's last sequence this view has read or written:
	// rec reflects every commit up to it.
	last uint64
	// commits is the commit log's last sequence as read before the group
	// log was last read to its end (or as this server's own commit left
	// it): every commit it counts is at or before last. So if the commit
	// log still ends at commits, no commit lies after last.
	commits uint64
	// fan caches the online sessions of the members (see groupSessions).
	fan atomic.Pointer[fanout]

	// The queue of the group's writer (grouplog.go), guarded by qmu.
	qmu     sync.Mutex
	queue   []*groupAppend
	writing bool
	// nextTurn is when the group's writer may append again (waitTurn);
	// only the writer, of which one runs at a time, uses it.
	nextTurn time.Time
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

func commitLog(gh string) string { return commitLogPre + gh }

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

// loadGroup reads the group record and catches up with the log after
// it. Called with the write lock.
func (s *Server) loadGroup(ctx context.Context, gh string, st *groupState) error {
	if st.loaded {
		return nil
	}
	if err := s.loadGroupRecord(ctx, gh, st); err != nil {
		return err
	}
	if err := s.catchUp(ctx, gh, st); err != nil {
		return err
	}
	st.loaded = true
	return nil
}

// loadGroupRecord sets the view to the stored group record. Called with
// the write lock.
func (s *Server) loadGroupRecord(ctx context.Context, gh string, st *groupState) error {
	e, err := s.st.Get(ctx, bucketGroups, gh)
	if err != nil {
		return storeError(err, "group "+gh)
	}
	var rec groupRecord
	if err := decodeRecord(e, &rec); err != nil {
		return err
	}
	st.rec, st.rev, st.last = rec, e.Revision, rec.Applied
	st.commits = 0 // until catchUp reads the commit log
	st.fan.Store(nil)
	return nil
}

// catchUp applies what the group's log holds after the view: commits
// appended by another server (or by this one before a crash, between a
// commit's append and its record update). It finds them through the
// commit log and reads only them (catchUpCommits); where the commit log
// cannot tell, it reads every entry (catchUpAll). Called with the write
// lock; on an error the view is marked for reloading.
func (s *Server) catchUp(ctx context.Context, gh string, st *groupState) error {
	ok, err := s.catchUpCommits(ctx, gh, st)
	if err != nil {
		st.loaded = false
		return fmt.Errorf("catching up with group %s: %w", gh, err)
	}
	if ok {
		return nil
	}
	s.metrics.catchUpReads.Inc()
	return s.catchUpAll(ctx, gh, st)
}

// catchUpCommits catches the view up by reading only the commits after
// it, which the commit log lists, and moves it past the application
// messages without reading them: a server that loads a busy group, or
// finds that another server committed, no longer reads every message
// since the group's last commit under the group's lock (in a saturated
// cluster the second server spent the whole run doing that while its
// senders waited). It reports false where the commit log cannot tell
// (the view it leaves, possibly moved forward, is consistent, and
// catchUpAll goes on from it): a group whose commits predate commit logs, or
// a commit log (or a commit in the group log) trimmed past what the view
// needs.
func (s *Server) catchUpCommits(ctx context.Context, gh string, st *groupState) (bool, error) {
	// The group log's end first: every commit before it is in the commit
	// log read after it.
	gi, err := s.st.Info(ctx, groupLog(gh))
	if err != nil {
		return false, err
	}
	var cs []store.LogEntry
	for from := st.commits + 1; ; {
		es, err := s.st.Read(ctx, commitLog(gh), from, 0)
		if err != nil {
			return false, err
		}
		if len(es) == 0 {
			break
		}
		cs = append(cs, es...)
		from = es[len(es)-1].Seq + 1
	}
	if len(cs) == 0 && st.commits == 0 && st.rec.Epoch > 0 {
		return false, nil // commits, none in a commit log
	}
	seqs := make([]uint64, len(cs))
	for i, c := range cs {
		if len(c.Data) != 8 {
			return false, fmt.Errorf("commit log entry %d of %d bytes: %w", c.Seq, len(c.Data), store.ErrCorrupt)
		}
		seqs[i] = binary.BigEndian.Uint64(c.Data)
	}
	if len(cs) > 0 && cs[0].Seq > st.commits+1 && seqs[0] > st.last {
		// The commit log was trimmed after the view: the commits before
		// the first kept are unknown to it, but the stored record, which
		// every server that takes or reads a commit brings up to it,
		// reflects them if it reaches the one before the first kept.
		e, err := s.st.Get(ctx, bucketGroups, gh)
		if err != nil {
			return false, err
		}
		var rec groupRecord
		if err := decodeRecord(e, &rec); err != nil {
			return false, err
		}
		if rec.Applied+1 < seqs[0] {
			return false, nil
		}
		st.rec, st.rev, st.last = rec, e.Revision, rec.Applied
		st.fan.Store(nil)
	}
	for _, seq := range seqs {
		if seq <= st.last {
			continue // reflected in the view
		}
		es, err := s.st.Read(ctx, groupLog(gh), seq, 1)
		if err != nil {
			return false, err
		}
		if len(es) == 0 || es[0].Seq != seq {
			return false, nil // trimmed from the group log
		}
		if err := s.replayEntry(ctx, gh, st, es[0]); err != nil {
			return false, err
		}
	}
	if gi.Last > st.last {
		st.rec.Applied, st.last = gi.Last, gi.Last
	}
	if len(cs) > 0 {
		st.commits = cs[len(cs)-1].Seq
	}
	return true, nil
}

// catchUpAll catches up by reading every entry after the view.
func (s *Server) catchUpAll(ctx context.Context, gh string, st *groupState) error {
	// The commit log first: every commit it counts now is in the group
	// log by the time the read below finds its end.
	ci, err := s.st.Info(ctx, commitLog(gh))
	if err != nil {
		st.loaded = false
		return fmt.Errorf("catching up with group %s: %w", gh, err)
	}
	for {
		es, err := s.st.Read(ctx, groupLog(gh), st.last+1, 0)
		if err != nil {
			st.loaded = false
			return fmt.Errorf("catching up with group %s: %w", gh, err)
		}
		if len(es) == 0 {
			st.commits = max(st.commits, ci.Last)
			return nil
		}
		if es[0].Seq > st.last+1 {
			// Entries were trimmed: the server that trimmed them had the
			// record reflect every commit first; take it if it is ahead.
			e, err := s.st.Get(ctx, bucketGroups, gh)
			if err != nil {
				st.loaded = false
				return storeError(err, "group "+gh)
			}
			var rec groupRecord
			if err := decodeRecord(e, &rec); err != nil {
				st.loaded = false
				return err
			}
			if rec.Applied > st.last {
				st.rec, st.rev, st.last = rec, e.Revision, rec.Applied
				st.fan.Store(nil)
				continue
			}
		}
		for _, le := range es {
			if err := s.replayEntry(ctx, gh, st, le); err != nil {
				st.loaded = false
				return err
			}
		}
	}
}

func (s *Server) replayEntry(ctx context.Context, gh string, st *groupState, le store.LogEntry) error {
	var gm anomv1.GroupMessage
	if err := proto.Unmarshal(le.Data, &gm); err != nil {
		return fmt.Errorf("replaying group %s entry %d: %w: %w", gh, le.Seq, store.ErrCorrupt, err)
	}
	m, err := mls.DecodeMLSMessage(gm.GetMessage())
	if err != nil || m.WireFormat != mls.WirePublicMessage || m.Public.Content.ContentType != mls.ContentCommit {
		// Not a commit: nothing to replay.
		st.rec.Applied, st.last = le.Seq, le.Seq
		return nil
	}
	plan, err := s.planCommit(st.rec.Leaves, uint32(m.Public.Content.Sender.LeafIndex), m.Public.Content.Commit, false)
	if err != nil {
		return fmt.Errorf("replaying group %s commit %d: %w", gh, le.Seq, err)
	}
	s.log.Debug("catching up with a commit", "group", gh, "seq", le.Seq)
	return s.recordCommit(ctx, gh, st, plan, le.Seq, gm.GetEpoch())
}

// recordCommit applies a commit at seq to the view, the member index and
// the stored group record. Every server that reads the commit records it;
// the writes are conditional and ordered by sequence, so a server that
// comes late changes nothing a later commit wrote, and a crash part way
// is finished by whoever reads the commit next. Called with the write
// lock.
func (s *Server) recordCommit(ctx context.Context, gh string, st *groupState, plan *commitPlan, seq, epoch uint64) error {
	if err := s.recordMembers(ctx, gh, plan, seq); err != nil {
		st.loaded = false
		return err
	}
	st.rec = groupRecord{Epoch: epoch, Leaves: plan.leaves, Applied: seq}
	st.last = seq
	st.fan.Store(nil)
	if err := s.checkpointGroup(ctx, gh, st); err != nil {
		st.loaded = false
		return fmt.Errorf("recording commit %d of group %s: %w", seq, gh, err)
	}
	return nil
}

// checkpointGroup stores the view as the group record unless the stored
// one is as far already (another server recorded it).
func (s *Server) checkpointGroup(ctx context.Context, gh string, st *groupState) error {
	for attempt := 0; ; attempt++ {
		rev, err := s.st.Update(ctx, bucketGroups, gh, encodeRecord(st.rec), st.rev)
		if err == nil {
			st.rev = rev
			return nil
		}
		if !errors.Is(err, store.ErrRevisionMismatch) || attempt >= maxStoreRetries {
			return err
		}
		e, err := s.st.Get(ctx, bucketGroups, gh)
		if err != nil {
			return err
		}
		var rec groupRecord
		if err := decodeRecord(e, &rec); err != nil {
			return err
		}
		st.rev = e.Revision
		if rec.Applied >= st.rec.Applied {
			return nil
		}
	}
}

// maxStoreRetries bounds the retries of a conditional write that lost a
// race with another writer (another server of the cluster).
const maxStoreRetries = 64

// recordMembers updates the member index for a commit at seq: added
// devices become members from seq, removed ones leaving. Each member
// record is written only if no later event (a join or removal at a
// higher sequence) is recorded, and only at the revision read, so a
// server catching up late with an old commit cannot undo a newer one.
func (s *Server) recordMembers(ctx context.Context, gh string, plan *commitPlan, seq uint64) error {
	for attempt := 0; ; attempt++ {
		ops, err := s.memberOps(ctx, gh, plan, seq)
		if err != nil {
			return err
		}
		err = nil
		for len(ops) > 0 && err == nil {
			n := min(len(ops), store.MaxTxnOps)
			_, err = s.st.Txn(ctx, ops[:n]...)
			ops = ops[n:]
		}
		if err == nil {
			return nil
		}
		if attempt >= maxStoreRetries || !(errors.Is(err, store.ErrRevisionMismatch) || errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrNotFound)) {
			return fmt.Errorf("recording members of group %s: %w", gh, err)
		}
	}
}

// memberOps returns the conditional writes of recordMembers.
func (s *Server) memberOps(ctx context.Context, gh string, plan *commitPlan, seq uint64) ([]store.Op, error) {
	var ops []store.Op
	for _, d := range plan.added {
		mr, rev, err := s.memberEntry(ctx, d, gh)
		if err != nil {
			return nil, err
		}
		if rev != 0 && (mr.Joined >= seq || mr.Removed > seq) {
			continue // this commit or a later one is recorded
		}
		val := encodeRecord(memberRecord{Joined: seq})
		if rev == 0 {
			ops = append(ops, store.CreateOp(bucketMembers, memberKey(d, gh), val))
		} else {
			ops = append(ops, store.UpdateOp(bucketMembers, memberKey(d, gh), val, rev))
		}
		ops = append(ops, store.DeleteOp(bucketLeaving, leavingKey(gh, d), 0))
	}
	rops, err := s.removalOps(ctx, gh, plan, seq)
	if err != nil {
		return nil, err
	}
	return append(ops, rops...), nil
}

// memberEntry returns a device's member record in a group and its
// revision, 0 if it has none.
func (s *Server) memberEntry(ctx context.Context, devHex, gh string) (memberRecord, uint64, error) {
	var mr memberRecord
	e, err := s.st.Get(ctx, bucketMembers, memberKey(devHex, gh))
	if errors.Is(err, store.ErrNotFound) {
		return mr, 0, nil
	}
	if err != nil {
		return mr, 0, fmt.Errorf("reading membership of %s in %s: %w", devHex, gh, err)
	}
	return mr, e.Revision, decodeRecord(e, &mr)
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
