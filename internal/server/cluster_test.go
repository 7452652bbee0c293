package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"anom/escrow"
	"anom/identity"
	"anom/internal/escrowtest"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// cluster is two servers, a and b, on ONE Pebble store, as the servers of
// a cluster share one store. a opened the store (the network of the
// other tests); b is a second Server on it with a's configuration and
// its own listener. Each pushes through a StoreFanout.
type cluster struct{ a, b *network }

func newCluster(t testing.TB, mod func(*Config)) *cluster {
	t.Helper()
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := newNetworkNode(t, root, "a", mod)
	return &cluster{a: a, b: a.second("b")}
}

// escrowCluster is newCluster with an escrow policy, as escrowNetwork.
func escrowCluster(t *testing.T) *cluster {
	t.Helper()
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := newNetworkNode(t, root, "a", func(c *Config) {
		c.EscrowPolicy = escrowtest.SignedPolicy(t, root.Signer(), 1)
		c.ArchiveToken = "archive-secret"
		c.AlertDir = filepath.Join(t.TempDir(), "alerts")
	})
	return &cluster{a: a, b: a.second("b")}
}

// second starts another server, named node, on n's store; it stops
// before n's (cleanups run last first), and leaves the store to n.
func (n *network) second(node string) *network {
	t := n.t
	t.Helper()
	st := n.srv.st
	cfg := n.cfg
	cfg.Store = st
	cfg.Fanout = NewStoreFanout(st, []byte(node))
	srv, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	b := *n
	b.srv, b.addr, b.node = srv, l.Addr().String(), node
	var once sync.Once
	b.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(b.stop)
	return &b
}

// on connects m's device to n's server as well, sharing m's MLS group.
func (m *member) on(n *network) *member {
	m.t.Helper()
	c, r := n.connect(m.client)
	if e := r.GetError(); e != nil {
		m.t.Fatalf("connecting to server %s: %v %s", n.node, e.Code, e.Message)
	}
	return &member{client: c, bundle: m.bundle, group: m.group}
}

// callBoth sends f1 on c1 and f2 on c2 at once and returns the answers.
func callBoth(c1 *client, f1 *anomv1.Frame, c2 *client, f2 *anomv1.Frame) (*anomv1.Frame, *anomv1.Frame) {
	var r1, r2 *anomv1.Frame
	var wg sync.WaitGroup
	wg.Add(2)
	start := make(chan struct{})
	go func() { defer wg.Done(); <-start; r1 = c1.call(f1) }()
	go func() { defer wg.Done(); <-start; r2 = c2.call(f2) }()
	close(start)
	wg.Wait()
	return r1, r2
}

// commitsOf fetches a group's log from its start through c and returns
// the epochs of its commits, in log order, with the encoded commits.
func commitsOf(t *testing.T, c *client, g []byte) (epochs []uint64, msgs [][]byte) {
	t.Helper()
	for from := uint64(1); ; {
		ms := c.must(&anomv1.Frame{Body: &anomv1.Frame_Fetch{Fetch: &anomv1.Fetch{GroupId: g, From: from}}}).GetMessages()
		for _, m := range ms.GetMessages() {
			if mm, err := mls.DecodeMLSMessage(m.GetMessage()); err == nil && mm.WireFormat == mls.WirePublicMessage {
				epochs = append(epochs, m.GetEpoch())
				msgs = append(msgs, m.GetMessage())
			}
			from = m.GetSeq() + 1
		}
		if len(ms.GetMessages()) == 0 || from > ms.GetLast() {
			return epochs, msgs
		}
	}
}

// TestAttackClusterTwoCommitsOneEpoch: a malicious member holds a session
// on each of two servers sharing a store and sends two different commits
// for the same epoch through both at once, round after round, to fork the
// group (each server accepting one). Exactly one commit is accepted per
// epoch; the other is refused with EPOCH_CONFLICT carrying the epoch now
// in force, as when both arrive at one server; a member on the other
// server is pushed the winner only, and both servers serve one and the
// same history.
func TestAttackClusterTwoCommitsOneEpoch(t *testing.T) {
	c := newCluster(t, nil)
	g := gid("cluster-race")
	alice, bob := setupGroup(t, c.a, g)
	aliceB := alice.on(c.b)
	bobB := bob.on(c.b)
	const rounds = 20
	var winners [][]byte
	for round := range rounds {
		e := alice.group.Epoch()
		pc1, err := alice.group.Commit(mls.CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pc2, err := alice.group.Commit(mls.CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r1, r2 := callBoth(alice.client, send(g, pc1.Commit, nil), aliceB.client, send(g, pc2.Commit, nil))
		var win *mls.PendingCommit
		var sent, lost *anomv1.Frame
		switch {
		case r1.GetSent() != nil && code(r2) == anomv1.ErrorCode_ERROR_CODE_EPOCH_CONFLICT:
			win, sent, lost = pc1, r1, r2
		case r2.GetSent() != nil && code(r1) == anomv1.ErrorCode_ERROR_CODE_EPOCH_CONFLICT:
			win, sent, lost = pc2, r2, r1
		default:
			t.Fatalf("round %d: answers %v and %v; want one accepted and one EPOCH_CONFLICT", round, r1, r2)
		}
		if got := sent.GetSent().GetEpoch(); got != e+1 {
			t.Fatalf("round %d: accepted commit moved to epoch %d, want %d", round, got, e+1)
		}
		if got := lost.GetError().GetEpoch(); got != e+1 {
			t.Fatalf("round %d: the loser is told epoch %d, want %d", round, got, e+1)
		}
		if err := alice.group.ApplyCommit(win); err != nil {
			t.Fatal(err)
		}
		winners = append(winners, win.Commit.Encode())
		// Bob, connected to both servers, is pushed the winner (and
		// only it) on each, and his group follows it.
		for _, m := range []*member{bobB, bob} {
			p := m.nextPush().GetPushMessages().GetMessages()
			if len(p) != 1 || string(p[0].GetMessage()) != string(winners[round]) {
				t.Fatalf("round %d: bob's push on server %d is not the accepted commit", round, len(p))
			}
			if m == bobB {
				mm, err := mls.DecodeMLSMessage(p[0].GetMessage())
				if err != nil {
					t.Fatal(err)
				}
				if _, err := bob.group.Handle(mm); err != nil {
					t.Fatalf("round %d: bob cannot follow the accepted commit: %v", round, err)
				}
			}
		}
	}
	if bob.group.Epoch() != alice.group.Epoch() {
		t.Fatalf("bob at epoch %d, alice at %d", bob.group.Epoch(), alice.group.Epoch())
	}
	// One history, on either server: one commit per epoch, the winners.
	epA, msgA := commitsOf(t, alice.client, g)
	epB, msgB := commitsOf(t, bobB.client, g)
	if !slices.Equal(epA, epB) || len(msgA) != len(msgB) {
		t.Fatalf("the servers serve different histories: %v / %v", epA, epB)
	}
	for i := range msgA {
		if string(msgA[i]) != string(msgB[i]) {
			t.Fatalf("commit %d differs between the servers", i)
		}
	}
	for i, e := range epA {
		if e != uint64(i+1) {
			t.Fatalf("commit epochs %v: not one commit per epoch", epA)
		}
	}
	for i, w := range winners {
		if string(msgA[i+1]) != string(w) {
			t.Fatalf("commit for epoch %d is not the one accepted", i+2)
		}
	}
	// Both servers' views agree on the epoch.
	for _, cl := range []*client{alice.client, bobB.client} {
		gs := cl.must(&anomv1.Frame{Body: &anomv1.Frame_ListGroups{ListGroups: &anomv1.ListGroups{}}}).GetGroups().GetGroups()
		if len(gs) != 1 || gs[0].GetEpoch() != alice.group.Epoch() {
			t.Fatalf("a server reports %v, want epoch %d", gs, alice.group.Epoch())
		}
	}
}

// TestClusterApplicationAfterRemoteCommit: a server whose view of a group
// is stale (a commit went through the other server) neither takes a
// message for the old epoch nor refuses one for the new.
func TestClusterApplicationAfterRemoteCommit(t *testing.T) {
	c := newCluster(t, nil)
	g := gid("cluster-stale")
	alice, bob := setupGroup(t, c.a, g)
	bobB := bob.on(c.b)
	bob.sendText(t, g, "loads the group on a") // a's view is loaded
	bobB.sendText(t, g, "loads the group on b")
	old, err := alice.group.Encrypt([]byte("old epoch"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := bob.group.Commit(mls.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bobB.must(send(g, pc.Commit, nil)) // through b
	if err := bob.group.ApplyCommit(pc); err != nil {
		t.Fatal(err)
	}
	// a has not seen the commit; it must still refuse the old epoch.
	r := alice.call(send(g, old, nil))
	if code(r) != anomv1.ErrorCode_ERROR_CODE_EPOCH_CONFLICT || r.GetError().GetEpoch() != bob.group.Epoch() {
		t.Fatalf("message for the old epoch through the stale server: %v", r)
	}
	// And take one for the new epoch (sent by bob, who is there).
	if seq := bob.sendText(t, g, "new epoch"); seq == 0 {
		t.Fatal("no sequence")
	}
}

// TestClusterEscrowSendsRace: four sessions, two on each server, send
// escrowed messages into one group at once. Every message is accepted
// once, the group log's sequences are dense, and the outbox holds exactly
// one countersigned record per message, with sequence numbers unique
// across both servers.
func TestClusterEscrowSendsRace(t *testing.T) {
	c := escrowCluster(t)
	g := gid("cluster-escrow")
	alice, bob := setupGroup(t, c.a, g)
	senders := []*member{alice, alice.on(c.b), bob, bob.on(c.b)}
	const per = 25
	now := c.a.clock.Now()
	frames := make([][]*anomv1.Frame, len(senders))
	for i, m := range senders {
		for k := range per {
			msg, rec := sealed(t, c.a, m, fmt.Appendf(nil, "m %d %d", i, k), now)
			frames[i] = append(frames[i], sendRecord(g, msg, signRec(t, rec, m.priv)))
		}
	}
	var mu sync.Mutex
	var seqs []uint64
	var wg sync.WaitGroup
	for i, m := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, f := range frames[i] {
				r := m.call(f)
				if r.GetSent() == nil {
					t.Errorf("sender %d: %v", i, r)
					return
				}
				mu.Lock()
				seqs = append(seqs, r.GetSent().GetSeq())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("sequences not unique and dense: %v", seqs)
		}
	}
	ctx := context.Background()
	st := c.a.srv.st
	// The group log: each message once, each with its record.
	es, err := st.Read(ctx, groupLog(fmt.Sprintf("%x", g)), seqs[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != len(seqs) {
		t.Fatalf("%d entries in the log from %d, want %d", len(es), seqs[0], len(seqs))
	}
	countersigned := map[uint64]bool{}
	for _, e := range es {
		var gm anomv1.GroupMessage
		if err := proto.Unmarshal(e.Data, &gm); err != nil {
			t.Fatal(err)
		}
		sr, err := escrow.ParseServerRecord(gm.GetEscrowRecord())
		if err != nil {
			t.Fatal(err)
		}
		if countersigned[sr.Sequence] {
			t.Fatalf("countersignature sequence %d given twice", sr.Sequence)
		}
		countersigned[sr.Sequence] = true
	}
	// The outbox: exactly one record per message, the same ones.
	out, err := st.Read(ctx, logOutbox, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	records := 0
	for _, e := range out {
		if e.Data[0] != outboxRecord {
			continue
		}
		sr, err := escrow.ParseServerRecord(e.Data[1:])
		if err != nil {
			t.Fatal(err)
		}
		if !countersigned[sr.Sequence] {
			t.Fatalf("outbox record %d is of no message in the log", sr.Sequence)
		}
		records++
	}
	if records != len(seqs) {
		t.Fatalf("%d records in the outbox for %d messages", records, len(seqs))
	}
}

// TestAttackClusterSlotTwice: a member sends a message with its escrow
// record through each of two servers at once, so that each would take
// it (the message twice, two countersigned records for one slot).
// Exactly one is accepted; the other is refused for its slot.
func TestAttackClusterSlotTwice(t *testing.T) {
	c := escrowCluster(t)
	g := gid("cluster-slot")
	alice, _ := setupGroup(t, c.a, g)
	aliceB := alice.on(c.b)
	now := c.a.clock.Now()
	for round := range 10 {
		msg, rec := sealed(t, c.a, alice, fmt.Appendf(nil, "slot %d", round), now)
		f := sendRecord(g, msg, signRec(t, rec, alice.priv))
		r1, r2 := callBoth(alice.client, f, aliceB.client, proto.Clone(f).(*anomv1.Frame))
		ok1, ok2 := r1.GetSent() != nil, r2.GetSent() != nil
		if ok1 == ok2 {
			t.Fatalf("round %d: answers %v and %v; want exactly one accepted", round, r1, r2)
		}
		lost := r1
		if ok1 {
			lost = r2
		}
		if code(lost) != anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD {
			t.Fatalf("round %d: the second record for the slot got %v", round, lost)
		}
	}
}
