package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"anom/internal/store"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// readCounter is a store that counts the reads of group logs.
type readCounter struct {
	store.Store
	groupReads atomic.Int64
}

func (r *readCounter) Read(ctx context.Context, log string, from uint64, max int) ([]store.LogEntry, error) {
	if strings.HasPrefix(log, groupLogPre) {
		r.groupReads.Add(1)
	}
	return r.Store.Read(ctx, log, from, max)
}

// commitEmpty has m send an empty commit (an update of its path) to g,
// which must be accepted, applies it, and has each follower's group
// follow it.
func (m *member) commitEmpty(t *testing.T, g []byte, followers ...*member) {
	t.Helper()
	pc, err := m.group.Commit(mls.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.must(send(g, pc.Commit, nil))
	if err := m.group.ApplyCommit(pc); err != nil {
		t.Fatal(err)
	}
	for _, f := range followers {
		if _, err := f.group.Handle(pc.Commit); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClusterStaleWriterSkipsApplications: a server whose append to a
// group lost to many application messages of the other server appends
// after them without reading them (the commit log shows no commit among
// them), at the next sequence. Reading them all was what let a server
// starve in a saturated cluster.
func TestClusterStaleWriterSkipsApplications(t *testing.T) {
	c := newCluster(t, nil)
	rc := &readCounter{Store: c.a.srv.st}
	b := c.a.secondOn("b", rc, NewStoreFanout(rc, []byte("b")), nil)
	g := gid("cluster-skip")
	alice, bob := setupGroup(t, c.a, g)
	bobB := bob.on(b)
	bobB.sendText(t, g, "loads the group on b")
	var last uint64
	for i := range 200 {
		last = alice.sendText(t, g, "through a "+string(rune('a'+i%26)))
	}
	before := rc.groupReads.Load()
	skips := counterValue(t, b.srv, "anom_group_append_skips_total")
	if seq := bobB.sendText(t, g, "through b, after them"); seq != last+1 {
		t.Fatalf("b appended at %d, want %d", seq, last+1)
	}
	if n := rc.groupReads.Load() - before; n != 0 {
		t.Fatalf("b read the group log %d times to append after application messages", n)
	}
	if got := counterValue(t, b.srv, "anom_group_append_skips_total") - skips; got != 1 {
		t.Fatalf("%v skips counted, want 1", got)
	}
	// A commit through a is not skipped: b catches up and refuses the
	// old epoch.
	old, err := bob.group.Encrypt([]byte("old epoch"), nil)
	if err != nil {
		t.Fatal(err)
	}
	alice.commitEmpty(t, g)
	for range 5 {
		alice.sendText(t, g, "after the commit")
	}
	if r := bobB.call(send(g, old, nil)); code(r) != anomv1.ErrorCode_ERROR_CODE_EPOCH_CONFLICT || r.GetError().GetEpoch() != alice.group.Epoch() {
		t.Fatalf("old epoch through b after a's commit: %v", r)
	}
}

// TestClusterApplicationsAroundCommits: while one server takes commits,
// the other takes application messages for the group as fast as it can.
// Every message it accepts lies in the log between the commit of its
// epoch and the next, and every one it refuses was for an epoch already
// past. Run with two senders on b so that b's writer batches.
func TestClusterApplicationsAroundCommits(t *testing.T) {
	// The test's clock stands still, so rate-limit tokens never refill.
	c := newCluster(t, func(c *Config) { c.Limits.RequestBurst = 100_000 })
	g := gid("cluster-around")
	alice, bob := setupGroup(t, c.a, g)
	bobB := []*member{bob.on(c.b), bob.on(c.b)}
	const rounds = 8
	const per = 30
	for round := range rounds {
		epoch := bob.group.Epoch()
		msgs := make([][]*mls.MLSMessage, len(bobB))
		for i := range bobB {
			for range per {
				m, err := bob.group.Encrypt([]byte("m"), nil)
				if err != nil {
					t.Fatal(err)
				}
				msgs[i] = append(msgs[i], m)
			}
		}
		var wg sync.WaitGroup
		var accepted, refused atomic.Int64
		half := make(chan struct{}) // closed when half a sender's worth is in
		var maxSeq atomic.Uint64
		for i, m := range bobB {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, msg := range msgs[i] {
					r := m.call(send(g, msg, nil))
					switch {
					case r.GetSent() != nil:
						if accepted.Add(1) == per/2 {
							close(half)
						}
						for {
							cur := maxSeq.Load()
							if r.GetSent().GetSeq() <= cur || maxSeq.CompareAndSwap(cur, r.GetSent().GetSeq()) {
								break
							}
						}
					case code(r) == anomv1.ErrorCode_ERROR_CODE_EPOCH_CONFLICT:
						refused.Add(1)
					default:
						t.Errorf("round %d: %v", round, r)
						return
					}
				}
			}()
		}
		pc, err := alice.group.Commit(mls.CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		<-half
		cseq := alice.must(send(g, pc.Commit, nil)).GetSent().GetSeq()
		if err := alice.group.ApplyCommit(pc); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		t.Logf("round %d (epoch %d): commit at %d, %d accepted (last at %d), %d refused", round, epoch, cseq, accepted.Load(), maxSeq.Load(), refused.Load())
		if accepted.Load() > 0 && maxSeq.Load() > cseq {
			t.Fatalf("round %d: a message for epoch %d accepted at %d, after the commit at %d", round, epoch, maxSeq.Load(), cseq)
		}
		if accepted.Load()+refused.Load() != 2*per {
			t.Fatalf("round %d: %d accepted and %d refused of %d", round, accepted.Load(), refused.Load(), 2*per)
		}
		// Bob follows the commit; its pushes and the messages' are drained.
		if _, err := bob.group.Handle(pc.Commit); err != nil {
			t.Fatal(err)
		}
		for _, m := range append([]*member{bob}, bobB...) {
			for len(m.pushes) > 0 {
				<-m.pushes
			}
		}
	}
	// The log, through either server: every application message is in
	// the epoch of the commit before it.
	for _, cl := range []*client{alice.client, bobB[0].client} {
		commits := 0
		var epoch uint64
		for from := uint64(1); ; {
			ms := cl.must(&anomv1.Frame{Body: &anomv1.Frame_Fetch{Fetch: &anomv1.Fetch{GroupId: g, From: from}}}).GetMessages()
			for _, m := range ms.GetMessages() {
				if mm, err := mls.DecodeMLSMessage(m.GetMessage()); err == nil && mm.WireFormat == mls.WirePublicMessage {
					commits++
					epoch = m.GetEpoch()
				} else if m.GetEpoch() != epoch {
					t.Fatalf("message %d for epoch %d lies in epoch %d", m.GetSeq(), m.GetEpoch(), epoch)
				}
				from = m.GetSeq() + 1
			}
			if len(ms.GetMessages()) == 0 || from > ms.GetLast() {
				break
			}
		}
		if commits != rounds+1 {
			t.Fatalf("%d commits in the log, want %d", commits, rounds+1)
		}
	}
}

// busyStore is a store on which, while busy is set, every conditional
// append to a group log loses to another writer.
type busyStore struct {
	store.Store
	busy atomic.Bool
}

func (b *busyStore) AppendAll(ctx context.Context, appends ...store.Append) ([]uint64, error) {
	if b.busy.Load() && len(appends) > 0 && appends[0].Check && strings.HasPrefix(appends[0].Log, groupLogPre) {
		info, err := b.Store.Info(ctx, appends[0].Log)
		if err != nil {
			return nil, err
		}
		return nil, &store.ConflictError{Log: appends[0].Log, Expected: appends[0].IfLast, Last: info.Last}
	}
	return b.Store.AppendAll(ctx, appends...)
}

func (b *busyStore) AppendIf(ctx context.Context, log string, last uint64, entries ...[]byte) (uint64, error) {
	firsts, err := b.AppendAll(ctx, store.Append{Log: log, Entries: entries, Check: true, IfLast: last})
	if err != nil {
		return 0, err
	}
	return firsts[0], nil
}

// TestClusterGroupLogBusy: a message that loses every try to other
// writers is refused with UNAVAILABLE (nothing stored, retry), not
// INTERNAL, which a client takes as a refusal and drops; once the group
// is quiet again it is taken.
func TestClusterGroupLogBusy(t *testing.T) {
	c := newCluster(t, nil)
	bs := &busyStore{Store: c.a.srv.st}
	b := c.a.secondOn("b", bs, NewStoreFanout(bs, []byte("b")), nil)
	g := gid("cluster-busy")
	alice, bob := setupGroup(t, c.a, g)
	bobB := bob.on(b)
	bobB.sendText(t, g, "before")
	bs.busy.Store(true)
	msg, err := bob.group.Encrypt([]byte("while busy"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := bobB.call(send(g, msg, nil)); code(r) != anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE {
		t.Fatalf("a message that lost every try: %v", r)
	}
	bs.busy.Store(false)
	last := alice.sendText(t, g, "through a")
	if seq := bobB.sendText(t, g, "after"); seq != last+1 {
		t.Fatalf("b appended at %d after the busy spell, want %d", seq, last+1)
	}
}

// TestClusterLoadReadsOnlyCommits: a server that loads a group another
// server has been busy in reads the commits the commit log lists, not
// the messages since the last one (it read them all, under the group's
// lock, while its senders waited), and its view is right: two commits
// through the other server while its view was stale are both applied.
func TestClusterLoadReadsOnlyCommits(t *testing.T) {
	c := newCluster(t, nil)
	rc := &readCounter{Store: c.a.srv.st}
	b := c.a.secondOn("b", rc, NewStoreFanout(rc, []byte("b")), nil)
	g := gid("cluster-load")
	alice, bob := setupGroup(t, c.a, g)
	var last uint64
	for range 300 {
		last = alice.sendText(t, g, "through a")
	}
	bobB := bob.on(b)
	if seq := bobB.sendText(t, g, "loads the group on b"); seq != last+1 {
		t.Fatalf("b appended at %d, want %d", seq, last+1)
	}
	if n := rc.groupReads.Load(); n > 1 {
		t.Fatalf("loading the group read its log %d times", n)
	}
	// Two commits through a, with messages around them, while b's view
	// stays where it was; then b catches up through the commit log.
	for range 2 {
		alice.commitEmpty(t, g, bob)
		for range 50 {
			alice.sendText(t, g, "after a commit")
		}
	}
	before := rc.groupReads.Load()
	// bob's epoch is new to b's view: b catches up before it decides.
	last = alice.sendText(t, g, "last through a")
	if seq := bobB.sendText(t, g, "new epoch through b"); seq != last+1 {
		t.Fatalf("b appended at %d, want %d", seq, last+1)
	}
	if n := rc.groupReads.Load() - before; n > 2 {
		t.Fatalf("catching up with two commits read the group log %d times", n)
	}
	if n := counterValue(t, b.srv, "anom_group_catch_up_reads_total"); n != 0 {
		t.Fatalf("%v catch-ups read every entry", n)
	}
	gs := bobB.must(&anomv1.Frame{Body: &anomv1.Frame_ListGroups{ListGroups: &anomv1.ListGroups{}}}).GetGroups().GetGroups()
	if len(gs) != 1 || gs[0].GetEpoch() != alice.group.Epoch() {
		t.Fatalf("b reports %v, want epoch %d", gs, alice.group.Epoch())
	}
}

// TestClusterCatchUpWithoutCommitLog: a server whose view is older than
// what a trimmed commit log keeps catches up from the group record, and
// a group whose commits are in no commit log (made before there were
// commit logs) is caught up with by reading its whole log; either way
// the view is right.
func TestClusterCatchUpWithoutCommitLog(t *testing.T) {
	c := newCluster(t, nil)
	g := gid("cluster-nolog")
	gh := fmt.Sprintf("%x", g)
	ctx := context.Background()
	alice, bob := setupGroup(t, c.a, g)
	b := c.a.second("b")
	bobB := bob.on(b)
	bobB.sendText(t, g, "loads the group on b")
	for range 3 {
		alice.commitEmpty(t, g, bob)
		alice.sendText(t, g, "after a commit")
	}
	// The sweep keeps the last commits; a long history is trimmed to
	// its last.
	if err := c.a.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := c.a.srv.st.Info(ctx, commitLog(gh))
	if err != nil || info.Len() != 4 {
		t.Fatalf("commit log after the sweep: %+v, %v; want its 4 entries", info, err)
	}
	if err := c.a.srv.st.Trim(ctx, commitLog(gh), info.Last); err != nil {
		t.Fatal(err)
	}
	last := alice.sendText(t, g, "through a")
	if seq := bobB.sendText(t, g, "new epoch through b"); seq != last+1 {
		t.Fatalf("b appended at %d, want %d", seq, last+1)
	}
	if n := counterValue(t, b.srv, "anom_group_catch_up_reads_total"); n != 0 {
		t.Fatalf("%v catch-ups read every entry after a trimmed commit log", n)
	}
	// Without its commit log, a third server reads the whole log.
	if err := c.a.srv.st.DeleteLog(ctx, commitLog(gh)); err != nil {
		t.Fatal(err)
	}
	b2 := c.a.second("b2")
	bobB2 := bob.on(b2)
	last = alice.sendText(t, g, "through a again")
	if seq := bobB2.sendText(t, g, "through b2"); seq != last+1 {
		t.Fatalf("b2 appended at %d, want %d", seq, last+1)
	}
	if n := counterValue(t, b2.srv, "anom_group_catch_up_reads_total"); n == 0 {
		t.Fatal("a group without a commit log was caught up with without reading its log")
	}
	for _, cl := range []*client{bobB.client, bobB2.client} {
		gs := cl.must(&anomv1.Frame{Body: &anomv1.Frame_ListGroups{ListGroups: &anomv1.ListGroups{}}}).GetGroups().GetGroups()
		if len(gs) != 1 || gs[0].GetEpoch() != alice.group.Epoch() {
			t.Fatalf("a server reports %v, want epoch %d", gs, alice.group.Epoch())
		}
	}
}
