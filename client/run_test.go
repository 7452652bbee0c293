package client

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// flakyTransport is PinnedTransport with a switch that makes the server
// unreachable and a way to cut the live connection.
type flakyTransport struct {
	PinnedTransport
	down  atomic.Bool
	dials atomic.Int32
	mu    sync.Mutex
	last  MessageConn
}

func (f *flakyTransport) WebSocket(ctx context.Context, n Network, url string) (MessageConn, error) {
	f.dials.Add(1)
	if f.down.Load() {
		return nil, errors.New("network unreachable (test)")
	}
	ws, err := f.PinnedTransport.WebSocket(ctx, n, url)
	if err == nil {
		f.mu.Lock()
		f.last = ws
		f.mu.Unlock()
	}
	return ws, err
}

func (f *flakyTransport) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last.Close(CloseGoingAway, "cut by the test")
}

func newFlakyDevice(t *testing.T, n *testNet, name string, wipeAfter time.Duration) (*device, *flakyTransport) {
	t.Helper()
	ft := &flakyTransport{}
	d := &device{t: t, name: name, events: make(chan Event, 1000)}
	d.cfg = Config{Dir: filepath.Join(t.TempDir(), name), KDF: testKDF, Now: n.clock.Now, KeyPackages: 4, WipeAfter: wipeAfter,
		OnEvent:   func(e Event) { d.events <- e },
		Transport: ft}
	c, err := Create(d.cfg, testPIN, "")
	if err != nil {
		t.Fatal(err)
	}
	d.c = c
	t.Cleanup(func() { d.c.Close() })
	if err := c.Activate(ctxT(t), n.net, n.code(12), name); err != nil {
		t.Fatal(err)
	}
	return d, ft
}

// startRun runs d's client.Run until the test ends; its result arrives on
// the returned channel.
func startRun(t *testing.T, d *device, o RunOptions) (context.CancelFunc, chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.c.Run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return cancel, done
}

func waitRun(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

// TestRunReconnects: Run brings a device back after its connection is cut
// and while the server is unreachable (with backoff), catches up on what
// was sent meanwhile, and ends with ctx.
func TestRunReconnects(t *testing.T) {
	n := newTestNet(t)
	ctx := ctxT(t)
	rita, ft := newFlakyDevice(t, n, "rita", 0)
	bob := n.newDevice("bob")
	cancel, done := startRun(t, rita, RunOptions{SyncEvery: 50 * time.Millisecond, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond, Timeout: 5 * time.Second})

	g, err := bob.c.CreateGroup(ctx, "rita")
	if err != nil {
		t.Fatal(err)
	}
	rita.wait(EventJoined)

	// The connection is cut: Run reconnects by itself.
	ft.cut()
	rita.wait(EventDisconnected)
	rita.wait(EventConnected)
	if err := bob.c.SendText(ctx, g, "after the cut"); err != nil {
		t.Fatal(err)
	}
	rita.waitText("after the cut")

	// The server unreachable for a while: messages sent meanwhile arrive
	// by the catch-up of the reconnection.
	ft.down.Store(true)
	before := ft.dials.Load()
	ft.cut()
	rita.wait(EventDisconnected)
	for _, s := range []string{"one", "two", "three"} {
		if err := bob.c.SendText(ctx, g, s); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for ft.dials.Load()-before < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d attempts while down", ft.dials.Load()-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	attempts := ft.dials.Load()
	time.Sleep(300 * time.Millisecond)
	// Backoff: at most one attempt per 50 ms (half of the 100 ms cap).
	if got := ft.dials.Load() - attempts; got > int32(time.Since(start)/(50*time.Millisecond))+1 {
		t.Errorf("%d attempts in %v: no backoff", got, time.Since(start))
	}
	ft.down.Store(false)
	// The catch-up's messages come first, then EventConnected.
	for _, s := range []string{"one", "two", "three"} {
		rita.waitText(s)
	}
	rita.wait(EventConnected)

	cancel()
	if err := waitRun(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v", err)
	}
}

// TestRunClosed: Close ends Run with ErrClosed.
func TestRunClosed(t *testing.T) {
	n := newTestNet(t)
	rita, _ := newFlakyDevice(t, n, "rita", 0)
	_, done := startRun(t, rita, RunOptions{})
	rita.c.Close()
	if err := waitRun(t, done); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
}

// TestRunAutoWipe: a device that Run cannot bring back to the server wipes
// itself once WipeAfter has passed, and Run returns ErrWiped.
func TestRunAutoWipe(t *testing.T) {
	n := newTestNet(t)
	rita, ft := newFlakyDevice(t, n, "rita", 3*24*time.Hour)
	ft.down.Store(true)
	ft.cut()
	rita.wait(EventDisconnected)
	_, done := startRun(t, rita, RunOptions{SyncEvery: 20 * time.Millisecond, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 20 * time.Millisecond})
	n.clock.Set(2 * 24 * time.Hour)
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Run ended within the limit: %v", err)
	default:
	}
	n.clock.Set(3*24*time.Hour + time.Minute)
	if err := waitRun(t, done); !errors.Is(err, ErrWiped) {
		t.Fatalf("Run of an overdue device: %v", err)
	}
	rita.wait(EventWiped)
	if _, err := Open(rita.cfg, testPIN); !errors.Is(err, ErrNoState) {
		t.Fatalf("after the auto-wipe: %v", err)
	}
}
