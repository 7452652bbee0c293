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
	"time"

	"google.golang.org/protobuf/proto"

	"anom/escrow"
	"anom/identity"
	"anom/internal/escrowtest"
	"anom/internal/store"
	"anom/internal/store/pebble"
	"anom/internal/translog"
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
	n.t.Helper()
	return n.secondOn(node, n.srv.st, NewStoreFanout(n.srv.st, []byte(node)), nil)
}

// secondOn is second on a store and fan-out of the caller's; closeStore,
// if not nil, runs after the server stopped.
func (n *network) secondOn(node string, st store.Store, fan Fanout, closeStore func() error) *network {
	t := n.t
	t.Helper()
	cfg := n.cfg
	cfg.Store = st
	cfg.Fanout = fan
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
			if closeStore != nil {
				if err := closeStore(); err != nil {
					t.Errorf("closing store: %v", err)
				}
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

// TestAttackClusterRevokedDeviceElsewhere: a device revoked through one
// server keeps its session on the other and tries to go on there, or to
// connect there again. The other server closes its session with REVOKED
// as soon as the revocation is announced, and refuses it at
// authentication even if the announcement never came (a revocation
// written to the store alone, as by a crash just after it).
func TestAttackClusterRevokedDeviceElsewhere(t *testing.T) {
	c := newCluster(t, nil)
	ctx := context.Background()
	codes := c.a.codes(2, 1)
	dora := c.a.activate("dora", codes[0])
	onB, r := c.b.connect(dora)
	if code(r) != anomv1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		t.Fatalf("connecting to b: %v", r)
	}
	start := time.Now()
	if _, err := c.a.srv.Revoke(ctx, dora.cert.DeviceID, "test", c.a.clock.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-onB.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("b kept the revoked device's session")
	}
	select {
	case f := <-onB.pushes: // read before the connection's end
		if f.GetPushDisconnect().GetCode() != anomv1.ErrorCode_ERROR_CODE_REVOKED {
			t.Fatalf("b pushed %v, want a REVOKED disconnect", f)
		}
	default:
		t.Fatal("b closed the session without telling why")
	}
	t.Logf("revocation on a closed the session on b after %v", time.Since(start).Round(time.Millisecond))
	if _, r := c.b.connect(dora); code(r) != anomv1.ErrorCode_ERROR_CODE_REVOKED {
		t.Fatalf("b let the revoked device in again: %v", r)
	}

	// A revocation in the store whose announcement was lost.
	erin := c.a.activate("erin", codes[1])
	erinB, r := c.b.connect(erin)
	if code(r) != anomv1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		t.Fatalf("connecting to b: %v", r)
	}
	rev := c.a.srv.signRevocation(erin.cert.DeviceID, c.a.clock.Now())
	if _, err := c.a.srv.st.Create(ctx, bucketRevoked, erin.cert.DeviceID.String(), rev.Encode()); err != nil {
		t.Fatal(err)
	}
	if _, r := c.b.connect(erin); code(r) != anomv1.ErrorCode_ERROR_CODE_REVOKED {
		t.Fatalf("b let a device revoked in the store in: %v", r)
	}
	// The sweep finds it too, and closes the session b still had.
	if err := c.b.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-erinB.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("b kept the session of a device revoked in the store")
	}
}

// TestClusterPushAcrossServers: a message sent through one server is
// pushed to a recipient connected to the other as to one connected to the
// same server. It measures the latency from the send to each push (p50
// and p99 over the run) and fails if the cross-server push is far out of
// the budget of a chat message.
func TestClusterPushAcrossServers(t *testing.T) {
	same, cross := pushLatencies(t, newCluster(t, nil), 200)
	t.Logf("push latency over %d messages: same server p50 %v p99 %v; other server p50 %v p99 %v",
		len(same), quantile(same, 0.5), quantile(same, 0.99), quantile(cross, 0.5), quantile(cross, 0.99))
	if p99 := quantile(cross, 0.99); p99 > 250*time.Millisecond {
		t.Fatalf("cross-server push p99 %v beyond 250ms", p99)
	}
}

// pushLatencies sends n messages through c.a, one at a time, to a
// recipient connected to both servers, and returns the latency from each
// send to its push on the same server and on the other.
func pushLatencies(t testing.TB, c *cluster, n int) (same, cross []time.Duration) {
	t.Helper()
	g := gid(fmt.Sprintf("push-latency-%d", n))
	alice, bob := setupGroup(t, c.a, g)
	bobB := bob.on(c.b)
	msgs := make([]*anomv1.Frame, n)
	for i := range msgs {
		m, err := alice.group.Encrypt(fmt.Appendf(nil, "push %d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = send(g, m, nil)
	}
	wait := func(m *member, t0 time.Time, out chan<- time.Duration) {
		select {
		case <-m.pushes:
			out <- time.Since(t0)
		case <-time.After(10 * time.Second):
			out <- -1
		}
	}
	for i, f := range msgs {
		t0 := time.Now()
		onA, onB := make(chan time.Duration, 1), make(chan time.Duration, 1)
		go wait(bob, t0, onA)
		go wait(bobB, t0, onB)
		alice.must(f)
		da, db := <-onA, <-onB
		if da < 0 || db < 0 {
			t.Fatalf("message %d: no push (same server %v, other server %v)", i, da, db)
		}
		same, cross = append(same, da), append(cross, db)
	}
	return same, cross
}

// quantile is the q-quantile of d.
func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// treeHeadOf asks c's server for its signed tree head, with a consistency
// proof from size from (0: none), and checks the head's signature.
func treeHeadOf(t *testing.T, n *network, c *client, from uint64) (translog.SignedTreeHead, []byte) {
	t.Helper()
	th := c.must(&anomv1.Frame{Body: &anomv1.Frame_GetTreeHead{GetTreeHead: &anomv1.GetTreeHead{FromSize: from}}}).GetTreeHead_()
	var sth translog.SignedTreeHead
	if err := sth.UnmarshalBinary(th.GetTreeHead()); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.VerifyTreeHead(n.root.Public(), sth, translog.SignedTreeHead{}); err != nil {
		t.Fatal(err)
	}
	return sth, th.GetConsistencyProof()
}

// TestClusterTransparencyLogOneHistory: devices activate through both
// servers at once, so both append to the one transparency log. Every
// certificate gets its own index, a server serves a device logged by the
// other with a proof against its own head, and the two servers' signed
// heads are of one history (the consistency proof between them holds).
func TestClusterTransparencyLogOneHistory(t *testing.T) {
	c := newCluster(t, nil)
	const per = 5
	codes := c.a.codes(2*per, 1)
	devs := make([]*client, 2*per)
	var wg sync.WaitGroup
	for i := range devs {
		n := c.a
		if i%2 == 1 {
			n = c.b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			devs[i] = n.activate(fmt.Sprintf("user%d", i), codes[i])
		}()
	}
	wg.Wait()
	// Each device looked up through the server it did not activate on.
	indexes := map[uint64]bool{}
	for i, d := range devs {
		n, via := c.b, devs[1]
		if i%2 == 1 {
			n, via = c.a, devs[0]
		}
		dir := via.must(&anomv1.Frame{Body: &anomv1.Frame_Lookup{Lookup: &anomv1.Lookup{Username: fmt.Sprintf("user%d", i)}}}).GetDirectory()
		if len(dir.Devices) != 1 || string(dir.Devices[0].Certificate) != string(d.cert.Encode()) {
			t.Fatalf("server %s does not show user%d's device: %v", n.node, i, dir)
		}
		de := dir.Devices[0]
		if indexes[de.LogIndex] {
			t.Fatalf("log index %d given twice", de.LogIndex)
		}
		indexes[de.LogIndex] = true
		var sth translog.SignedTreeHead
		if err := sth.UnmarshalBinary(dir.TreeHead); err != nil {
			t.Fatal(err)
		}
		var proof translog.InclusionProof
		if err := proof.UnmarshalBinary(de.InclusionProof); err != nil {
			t.Fatal(err)
		}
		if err := proof.Verify(translog.HashLeaf(de.LogEntry), sth.Root); err != nil {
			t.Fatalf("user%d through server %s: inclusion proof: %v", i, n.node, err)
		}
	}
	// One history: b's head is a prefix of a's (or the same), and a
	// proves it.
	hb, _ := treeHeadOf(t, c.b, devs[1], 0)
	ha, proof := treeHeadOf(t, c.a, devs[0], hb.Size)
	if ha.Size < hb.Size {
		t.Fatalf("a's head (%d) behind b's (%d) after a proof was asked from b's", ha.Size, hb.Size)
	}
	if ha.Size > hb.Size {
		var cp translog.ConsistencyProof
		if err := cp.UnmarshalBinary(proof); err != nil {
			t.Fatal(err)
		}
		if err := cp.Verify(hb.Root, ha.Root); err != nil {
			t.Fatalf("the servers' heads are not of one log: %v", err)
		}
	} else if ha.Root != hb.Root {
		t.Fatal("the servers sign different roots for one size")
	}
}

// TestClusterStartTogether: two servers start at once on a fresh store,
// each logging the directory key, the countersigning key and the escrow
// policy if not logged yet. Whatever entries both appended, they end up
// naming the same entries, so their tree heads carry the same signer
// entry and they serve the same policy entry.
func TestClusterStartTogether(t *testing.T) {
	for round := range 5 {
		root, err := identity.GenerateRootKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		st, err := pebble.Open(t.TempDir(), pebble.Options{})
		if err != nil {
			t.Fatal(err)
		}
		keys := testServerKeys(t, root, time.Now())
		cfg := Config{Store: st, RootPublic: root.Public(), Directory: keys.Directory, Countersign: keys.Countersign, CountersignCert: keys.CountersignCert,
			Name: "test.anom", EscrowPolicy: escrowtest.SignedPolicy(t, root.Signer(), 1)}
		var srvs [2]*Server
		var errs [2]error
		var wg sync.WaitGroup
		for i := range srvs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				srvs[i], errs[i] = New(context.Background(), cfg)
			}()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: starting: %v / %v", round, errs[0], errs[1])
		}
		a, b := srvs[0], srvs[1]
		if a.dirIdx != b.dirIdx || a.esc.csIdx != b.esc.csIdx || a.esc.logIndex != b.esc.logIndex {
			t.Fatalf("round %d: the servers name different entries: directory key %d/%d, countersigning key %d/%d, policy %d/%d",
				round, a.dirIdx, b.dirIdx, a.esc.csIdx, b.esc.csIdx, a.esc.logIndex, b.esc.logIndex)
		}
		for _, s := range srvs {
			if _, err := s.escrowPolicy(context.Background()); err != nil {
				t.Fatalf("round %d: serving the policy: %v", round, err)
			}
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClusterEscrowClaimReleased: a server with a stale view claims the
// slot of a message for the old epoch and only then learns, from the
// conditional append, that a commit came first through the other server.
// The message is refused with EPOCH_CONFLICT, nothing of it is in the log
// or the outbox, and its claim is given back.
func TestClusterEscrowClaimReleased(t *testing.T) {
	c := escrowCluster(t)
	ctx := context.Background()
	g := gid("cluster-claim")
	alice, bob := setupGroup(t, c.a, g)
	bobB := bob.on(c.b)
	now := c.a.clock.Now()
	msg, rec := sealed(t, c.a, alice, []byte("warm up"), now)
	alice.must(sendRecord(g, msg, signRec(t, rec, alice.priv))) // a's view is loaded
	stale, rec := sealed(t, c.a, alice, []byte("old epoch"), now)
	staleFrame := sendRecord(g, stale, signRec(t, rec, alice.priv))
	staleSlot, err := rec.Metadata.Slot()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := bob.group.Commit(mls.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bobB.must(send(g, pc.Commit, nil))
	gh := fmt.Sprintf("%x", g)
	info, err := c.a.srv.st.Info(ctx, groupLog(gh))
	if err != nil {
		t.Fatal(err)
	}
	outbox, err := c.a.srv.st.Info(ctx, logOutbox)
	if err != nil {
		t.Fatal(err)
	}
	r := alice.call(staleFrame)
	if code(r) != anomv1.ErrorCode_ERROR_CODE_EPOCH_CONFLICT || r.GetError().GetEpoch() != pc.Epoch()+1 {
		t.Fatalf("message for the old epoch through the stale server: %v", r)
	}
	after, err := c.a.srv.st.Info(ctx, groupLog(gh))
	if err != nil {
		t.Fatal(err)
	}
	outAfter, err := c.a.srv.st.Info(ctx, logOutbox)
	if err != nil {
		t.Fatal(err)
	}
	if after.Last != info.Last || outAfter.Last != outbox.Last {
		t.Fatalf("the refused message left entries: group log %d -> %d, outbox %d -> %d", info.Last, after.Last, outbox.Last, outAfter.Last)
	}
	// The refused message's own claim is looked for, not a count of all
	// claims: either server's retention pass may sweep the warm-up
	// message's claim (an old epoch's) at any moment after the commit.
	key := slotKey(gh, rec.Metadata.Epoch, staleSlot)
	if claims := slotClaims(t, c.a); slices.Contains(claims, key) {
		t.Fatalf("the refused message's slot claim %s was kept (claims now: %v)", key, claims)
	}
}

// TestEscrowClaimWithoutMessage: a crash between a slot's claim and the
// append leaves the claim without a message. Nothing was acknowledged;
// the record is refused if sent again (a slot never gets two records),
// and the message encrypted again, in a new slot, goes through.
func TestEscrowClaimWithoutMessage(t *testing.T) {
	n := escrowNetwork(t)
	ctx := context.Background()
	g := gid("claim-crash")
	alice, bob := setupGroup(t, n, g)
	msg, rec := sealed(t, n, alice, []byte("lost in a crash"), n.clock.Now())
	slot, err := rec.Metadata.Slot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.srv.claimSlot(ctx, fmt.Sprintf("%x", g), alice.group.Epoch(), slot); err != nil {
		t.Fatal(err)
	}
	if r := alice.call(sendRecord(g, msg, signRec(t, rec, alice.priv))); code(r) != anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD {
		t.Fatalf("the record of a claimed slot: %v", r)
	}
	msg, rec = sealed(t, n, alice, []byte("lost in a crash"), n.clock.Now())
	seq := alice.must(sendRecord(g, msg, signRec(t, rec, alice.priv))).GetSent().GetSeq()
	if p := bob.nextPush().GetPushMessages().GetMessages(); len(p) != 1 || p[0].GetSeq() != seq {
		t.Fatalf("bob's push: %v", p)
	}
}
