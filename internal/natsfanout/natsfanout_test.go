package natsfanout

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"anom/internal/natstest"
	"anom/internal/push"
)

// testNet is one NATS server and the fan-outs of a network on it.
type testNet struct {
	t      *testing.T
	c      *natstest.Cluster
	secret []byte
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	return &testNet{t: t, c: natstest.Start(t, 1), secret: bytes.Repeat([]byte{7}, 32)}
}

// conn is a new client connection to the NATS server.
func (n *testNet) conn() *nats.Conn {
	n.t.Helper()
	nc, err := nats.Connect(n.c.URL())
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(nc.Close)
	return nc
}

// fanout is a server's fan-out on a connection of its own; mod adjusts
// its options.
func (n *testNet) fanout(mod func(*Options)) *Fanout {
	n.t.Helper()
	o := Options{Conn: n.conn(), Prefix: "anom", Secret: n.secret}
	if mod != nil {
		mod(&o)
	}
	f, err := New(o)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { f.Close() })
	return f
}

// receiver collects what a fan-out's subscription delivers.
type receiver struct {
	t   *testing.T
	got chan push.Push
}

// subscribe subscribes f until the test ends and waits until the NATS
// server knows of it (total: the subscriptions on the subject then).
func (n *testNet) subscribe(f *Fanout, total int) *receiver {
	n.t.Helper()
	r := &receiver{t: n.t, got: make(chan push.Push, 1024)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Subscribe(ctx, func(p push.Push) { r.got <- p }) }()
	n.t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			n.t.Errorf("Subscribe returned %v, want context.Canceled", err)
		}
	})
	n.waitInterest(f.Subject(), total)
	return r
}

func (n *testNet) waitInterest(subject string, total int) {
	n.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); n.c.Interest("n1", subject) < total; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			n.t.Fatalf("the NATS server has %d subscriptions on %s, want %d", n.c.Interest("n1", subject), subject, total)
		}
	}
}

// next waits for a push.
func (r *receiver) next() push.Push {
	r.t.Helper()
	select {
	case p := <-r.got:
		return p
	case <-time.After(10 * time.Second):
		r.t.Fatal("no push delivered in 10 s")
	}
	return push.Push{}
}

// none checks that nothing is delivered for a while.
func (r *receiver) none(d time.Duration) {
	r.t.Helper()
	select {
	case p := <-r.got:
		r.t.Fatalf("delivered %+v", p)
	case <-time.After(d):
	}
}

func testPush(i int) push.Push {
	return push.Push{Devices: []string{fmt.Sprintf("%032x", i), "ff"}, Frame: []byte(fmt.Sprintf("frame %d", i))}
}

func samePush(t *testing.T, got, want push.Push) {
	t.Helper()
	if strings.Join(got.Devices, ",") != strings.Join(want.Devices, ",") || !bytes.Equal(got.Frame, want.Frame) {
		t.Fatalf("got push %v %q, want %v %q", got.Devices, got.Frame, want.Devices, want.Frame)
	}
}

// TestPublishSubscribe: the pushes of one server reach the other's
// subscription in order, not its own, and a burst goes in a few batches.
func TestPublishSubscribe(t *testing.T) {
	n := newTestNet(t)
	a := n.fanout(func(o *Options) { o.FlushInterval = 20 * time.Millisecond })
	b := n.fanout(nil)
	ra := n.subscribe(a, 1)
	rb := n.subscribe(b, 2)
	const count = 500
	for i := range count {
		if err := a.Publish(context.Background(), []push.Push{testPush(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range count {
		samePush(t, rb.next(), testPush(i))
	}
	ra.none(50 * time.Millisecond)
	st := a.Stats()
	// The first push goes at once (a was idle), the rest gathered every
	// 20 ms: far fewer batches than pushes.
	if st.Published < 2 || st.Published > count/10 {
		t.Fatalf("%d pushes went in %d batches", count, st.Published)
	}
	if got := b.Stats(); got.Received != st.Published || got.Delivered != count {
		t.Fatalf("receiver's stats %+v, publisher's %+v", got, st)
	}
	t.Logf("%d pushes in %d batches", count, st.Published)
}

// TestIdlePublisherSendsAtOnce: with a flush interval of an hour, a push
// of an idle publisher still arrives at once; the next, gathered, goes on
// Close.
func TestIdlePublisherSendsAtOnce(t *testing.T) {
	n := newTestNet(t)
	a := n.fanout(func(o *Options) { o.FlushInterval = time.Hour })
	rb := n.subscribe(n.fanout(nil), 1)
	a.Publish(context.Background(), []push.Push{testPush(1)})
	samePush(t, rb.next(), testPush(1))
	a.Publish(context.Background(), []push.Push{testPush(2)})
	rb.none(50 * time.Millisecond)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	samePush(t, rb.next(), testPush(2))
	if err := a.Publish(context.Background(), []push.Push{testPush(3)}); err != ErrClosed {
		t.Fatalf("Publish after Close: %v", err)
	}
}

// TestBatchSizeCap: pushes beyond MaxBatchBytes start a new batch, a push
// too large for NATS is refused with an error and counted, and the others
// still go.
func TestBatchSizeCap(t *testing.T) {
	n := newTestNet(t)
	a := n.fanout(func(o *Options) { o.FlushInterval = time.Hour; o.MaxBatchBytes = 4096 })
	b := n.fanout(nil)
	rb := n.subscribe(b, 1)
	big := push.Push{Devices: []string{"d"}, Frame: make([]byte, 1000)}
	huge := push.Push{Devices: []string{"d"}, Frame: make([]byte, 2<<20)}
	if err := a.Publish(context.Background(), []push.Push{testPush(0)}); err != nil { // sent at once
		t.Fatal(err)
	}
	pushes := []push.Push{big, big, big, huge, big, big}
	err := a.Publish(context.Background(), pushes)
	if err == nil || !strings.Contains(err.Error(), "maximum payload") {
		t.Fatalf("Publish of a 2 MiB push: %v", err)
	}
	a.Close()
	samePush(t, rb.next(), testPush(0))
	for range 5 {
		samePush(t, rb.next(), big)
	}
	rb.none(20 * time.Millisecond)
	// 1 + 5 pushes of 1 KB in 4 KB batches: 1 + 2.
	if st := a.Stats(); st.TooLarge != 1 || st.Published != 3 {
		t.Fatalf("stats %+v, want 1 too large and 3 batches", st)
	}
}

// TestNewRefuses: a fan-out needs a connection, a prefix and the
// network's secret.
func TestNewRefuses(t *testing.T) {
	n := newTestNet(t)
	for _, o := range []Options{
		{Prefix: "anom", Secret: n.secret},
		{Conn: n.conn(), Secret: n.secret},
		{Conn: n.conn(), Prefix: "anom", Secret: n.secret[:31]},
	} {
		if _, err := New(o); err == nil {
			t.Fatalf("New(%+v) succeeded", o)
		}
	}
}

// rawPublish publishes b on subject through a plain NATS client: what
// anyone allowed to publish there can do.
func rawPublish(t *testing.T, nc *nats.Conn, subject string, b []byte) {
	t.Helper()
	if err := nc.Publish(subject, b); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestAttackForeignPublisher: someone who may publish on the network's
// NATS subject but lacks its secret (a client of the NATS account with
// stolen credentials, another network sharing the account, a NATS
// operator without the network's data directory) sends pushes to the
// servers: garbage, well-formed batches under another network's key, a
// batch of the same network's key derived for another prefix, a batch
// claiming the receiver's own node, and a batch of an unknown version.
// None reaches a device; each is counted; the real server's push still
// goes through after them.
func TestAttackForeignPublisher(t *testing.T) {
	n := newTestNet(t)
	b := n.fanout(nil)
	rb := n.subscribe(b, 1)
	attacker := n.conn()
	evil := push.Push{Devices: []string{"00112233445566778899aabbccddeeff"}, Frame: []byte("forged frame")}
	now := time.Now().UnixNano()
	forged := func(secret []byte, subject string) []byte {
		key, err := batchKey(secret, subject)
		if err != nil {
			t.Fatal(err)
		}
		return encodeBatch(hmacFor(key), batch{node: [nodeLen]byte{0xee}, seq: 1, time: now, pushes: []push.Push{evil}})
	}
	otherNetwork := forged(bytes.Repeat([]byte{8}, 32), b.Subject())
	otherPrefix := forged(n.secret, "other.push")
	asReceiver := bytes.Clone(otherNetwork)
	copy(asReceiver[1:], b.node[:])
	v2 := bytes.Clone(otherNetwork)
	v2[0] = 2
	junk := make([]byte, 200)
	junk[0] = version
	for _, m := range [][]byte{{version, 'h', 'i'}, junk, otherNetwork, otherPrefix, asReceiver, v2} {
		rawPublish(t, attacker, b.Subject(), m)
	}
	a := n.fanout(nil)
	a.Publish(context.Background(), []push.Push{testPush(1)})
	samePush(t, rb.next(), testPush(1))
	rb.none(20 * time.Millisecond)
	// The batch claiming the receiver's node is skipped unread, as the
	// receiver's own; the others are counted.
	if st := b.Stats(); st.Malformed != 1 || st.Forged != 3 || st.Version != 1 || st.Received != 1 {
		t.Fatalf("receiver's stats %+v, want 1 malformed, 3 forged, 1 of an unknown version, 1 received", st)
	}
}

// TestAttackReplayedBatch: someone who can read and publish on the
// subject records a server's authentic batch and publishes it again: at
// once, and after the window. The receiver drops both (replayed, stale).
// What the package comment allows: a receiver that starts after the
// batch was sent, within the window, takes it once, never twice.
func TestAttackReplayedBatch(t *testing.T) {
	n := newTestNet(t)
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	attacker := n.conn()
	recorded := make(chan []byte, 16)
	sub, err := attacker.Subscribe("anom.push", func(m *nats.Msg) { recorded <- m.Data })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	b := n.fanout(func(o *Options) { o.Now = now })
	rb := n.subscribe(b, 2)
	a := n.fanout(func(o *Options) { o.Now = now })
	a.Publish(context.Background(), []push.Push{testPush(1)})
	samePush(t, rb.next(), testPush(1))
	var old []byte
	select {
	case old = <-recorded:
	case <-time.After(10 * time.Second):
		t.Fatal("the attacker recorded nothing")
	}

	rawPublish(t, attacker, "anom.push", old)
	rb.none(20 * time.Millisecond)
	if st := b.Stats(); st.Replayed != 1 {
		t.Fatalf("stats after a replay at once: %+v", st)
	}

	// A receiver started now has no record of a: it takes the replay
	// once (a duplicate wake-up for its sessions), then no more.
	late := n.fanout(func(o *Options) { o.Now = now })
	rl := n.subscribe(late, 3) // b, late and the attacker's recorder
	rawPublish(t, attacker, "anom.push", old)
	samePush(t, rl.next(), testPush(1))
	rawPublish(t, attacker, "anom.push", old)
	rl.none(20 * time.Millisecond)
	if st := late.Stats(); st.Received != 1 || st.Replayed != 1 {
		t.Fatalf("late receiver's stats: %+v", st)
	}

	// Past the window, every receiver drops it, even one started after.
	advance(DefaultWindow + time.Second)
	later := n.fanout(func(o *Options) { o.Now = now })
	rl2 := n.subscribe(later, 4)
	rawPublish(t, attacker, "anom.push", old)
	rl2.none(20 * time.Millisecond)
	rb.none(0)
	if st := later.Stats(); st.Stale != 1 || st.Received != 0 {
		t.Fatalf("stats of a receiver started after the window: %+v", st)
	}
	if st := b.Stats(); st.Stale != 1 || st.Received != 1 {
		t.Fatalf("first receiver's stats after the window: %+v", st)
	}
}
