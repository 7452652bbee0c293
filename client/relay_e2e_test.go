package client

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"anom/internal/relay"
)

// startTestRelay runs anom's relay in front of upstream; stop kills it:
// it stops accepting and closes every connection at once.
func startTestRelay(t *testing.T, upstream string) (addr string, stop func()) {
	t.Helper()
	r, err := relay.New(relay.Config{Upstreams: []string{upstream}, HealthEvery: 50 * time.Millisecond, HealthTLS: true,
		Grace: time.Millisecond, StatsEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, l) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("relay: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return l.Addr().String(), stop
}

// newDeviceVia activates a device through network net (the test
// network's, reached at other addresses).
func (n *testNet) newDeviceVia(name string, net Network) *device {
	n.t.Helper()
	d := &device{t: n.t, name: name, events: make(chan Event, 10000)}
	d.cfg = Config{Dir: filepath.Join(n.t.TempDir(), name), KDF: testKDF, Now: n.clock.Now, KeyPackages: 4,
		OnEvent: func(e Event) { d.events <- e }}
	c, err := Create(d.cfg, testPIN, "")
	if err != nil {
		n.t.Fatal(err)
	}
	d.c = c
	n.t.Cleanup(func() { d.c.Close() })
	if err := c.Activate(ctxT(n.t), net, n.code(12), name); err != nil {
		n.t.Fatalf("activating %s: %v", name, err)
	}
	return d
}

// TestRelayFailoverNoLoss: a real server behind two relays; devices
// activated with invites listing both chat in a group, some connected
// through each relay. One relay is killed mid-conversation: its devices
// fail over to the other and catch up. Every acknowledged message
// reaches every other member exactly once (0 lost, 0 duplicated), in
// history and in events.
func TestRelayFailoverNoLoss(t *testing.T) {
	n := newTestNet(t)
	r1, killR1 := startTestRelay(t, n.net.Address)
	r2, _ := startTestRelay(t, n.net.Address)
	via1 := n.net
	via1.Address, via1.Alternates = r1, []string{r2}
	via2 := n.net
	via2.Address, via2.Alternates = r2, []string{r1}
	alice, bob, carol := n.newDeviceVia("alice", via1), n.newDeviceVia("bob", via1), n.newDeviceVia("carol", via2)
	devs := []*device{alice, bob, carol}
	ctx := ctxT(t)

	g, err := bob.c.CreateGroup(ctx, "alice", "carol")
	if err != nil {
		t.Fatal(err)
	}
	alice.wait(EventJoined)
	carol.wait(EventJoined)
	o := RunOptions{SyncEvery: time.Second, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond, Timeout: 5 * time.Second}
	for _, d := range devs {
		startRun(t, d, o)
	}

	// Each device sends in turn; a send that fails (its connection
	// went with the relay) is not acknowledged, and the next text is a
	// new one.
	const perSender = 15
	var mu sync.Mutex
	acked := map[string]string{} // text -> sender
	tried := map[string]bool{}
	var wg sync.WaitGroup
	for _, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, try := 0, 0; i < perSender; try++ {
				text := fmt.Sprintf("%s-%d-%d", d.name, i, try)
				mu.Lock()
				tried[text] = true
				mu.Unlock()
				sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := d.c.SendText(sctx, g, text)
				cancel()
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked[text] = d.name
				mu.Unlock()
				i++
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	time.Sleep(150 * time.Millisecond)
	killR1()
	wg.Wait()

	// alice and bob were on relay 1: they are connected again, through
	// relay 2.
	for _, d := range []*device{alice, bob} {
		waitUntil(t, d.name+" reconnected through relay 2", func() bool {
			cn := d.c.live()
			return cn != nil && cn.addr == r2
		})
	}
	for _, d := range devs {
		waitUntil(t, d.name+" caught up", func() bool {
			h, err := d.c.History(g)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, m := range h {
				if m.Content.Kind == KindText && !m.Outgoing {
					seen[m.Content.Text] = true
				}
			}
			for text, from := range acked {
				if from != d.name && !seen[text] {
					return false
				}
			}
			return true
		})
	}
	lost, dup := 0, 0
	for _, d := range devs {
		h, err := d.c.History(g)
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, m := range h {
			if m.Content.Kind == KindText {
				count[m.Content.Text]++
			}
		}
		events := map[string]int{}
	drain:
		for {
			select {
			case e := <-d.events:
				if e.Type == EventMessage && e.Message.Content.Kind == KindText && !e.Message.Outgoing {
					events[e.Message.Content.Text]++
				}
			default:
				break drain
			}
		}
		for text, c := range count {
			if !tried[text] {
				t.Errorf("%s: unknown message %q", d.name, text)
			}
			if c > 1 || events[text] > 1 {
				dup++
				t.Errorf("%s: %q %d times in history, %d events", d.name, text, c, events[text])
			}
		}
		for text, from := range acked {
			if from != d.name && count[text] != 1 {
				lost++
				t.Errorf("%s: acknowledged %q from %s in history %d times", d.name, text, from, count[text])
			}
		}
	}
	t.Logf("%d messages acknowledged of %d tried; %d lost, %d duplicated", len(acked), len(tried), lost, dup)
	if len(acked) != 3*perSender {
		t.Fatalf("%d acknowledged, want %d", len(acked), 3*perSender)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDialFailsOver: an address that refuses connections is passed over
// for the next; when none answers, the error names each.
func TestDialFailsOver(t *testing.T) {
	n := newTestNet(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	via := n.net
	via.Address, via.Alternates = dead, []string{n.net.Address}
	d := n.newDeviceVia("dora", via)
	cn := d.c.live()
	if cn == nil || cn.addr != n.net.Address || d.c.nextAddr.Load() != 1 {
		t.Fatalf("connected to %v, next %d; want the alternate %s", cn, d.c.nextAddr.Load(), n.net.Address)
	}
	// The device keeps its alternates: connecting again goes straight
	// to the one that worked.
	if err := d.c.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if cn := d.c.live(); cn == nil || cn.addr != n.net.Address {
		t.Fatal("reconnect did not use the alternate")
	}
	allDead := via
	allDead.Alternates = []string{"127.0.0.1:1"}
	_, err = dial(ctxT(t), PinnedTransport{}, allDead)
	if err == nil || !strings.Contains(err.Error(), dead) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("dial error %v, want both addresses named", err)
	}
}
