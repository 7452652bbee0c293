package relay

import (
	"net"
	"sync"
	"testing"
	"time"
)

// TestAttackRelayConnectionFlood: one source opening 100 connections at
// once gets MaxPerSource of them to an upstream; the rest are closed
// without one, and a client from another source is served meanwhile.
func TestAttackRelayConnectionFlood(t *testing.T) {
	up := newBackend(t, 'A')
	cfg := testConfig(up)
	cfg.MaxPerSource = 8
	r, addr, _ := startRelay(t, cfg)

	const flood = 100
	var wg sync.WaitGroup
	names := make([]byte, flood)
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, names[i] = relayed(t, addr, "127.0.0.1")
		}()
	}
	wg.Wait()
	served := 0
	for _, n := range names {
		if n != 0 {
			served++
		}
	}
	if served != cfg.MaxPerSource {
		t.Fatalf("flood: %d of %d connections relayed, want the cap, %d", served, flood, cfg.MaxPerSource)
	}
	st := r.Stats()
	if st.RefusedPerSource != flood-uint64(cfg.MaxPerSource) || st.Relayed != uint64(cfg.MaxPerSource) {
		t.Fatalf("stats %v, want %d refused per source and %d relayed", st, flood-cfg.MaxPerSource, cfg.MaxPerSource)
	}
	if m := up.maxOpen.Load(); m > int64(cfg.MaxPerSource)+1 { // +1: the health check's connect
		t.Fatalf("upstream saw %d connections at once", m)
	}
	if _, name := relayed(t, addr, "127.0.0.2"); name == 0 {
		t.Fatal("another source refused during the flood")
	}
}

// TestAttackRelaySlowHandshake: slowloris at the relay. Connections that
// send nothing, trickle their ClientHello, or send a ClientHello and
// never finish the handshake are all closed at HandshakeTimeout; only
// the last reaches an upstream (and that connection is closed too), and
// an honest client is served meanwhile.
func TestAttackRelaySlowHandshake(t *testing.T) {
	up := newBackend(t, 'A')
	cfg := testConfig(up)
	cfg.HandshakeTimeout = 400 * time.Millisecond
	r, addr, _ := startRelay(t, cfg)
	waitFor(t, "the first health check", func() bool { return up.accepted.Load() == 1 && up.open.Load() == 0 })

	start := time.Now()
	var conns []net.Conn
	for range 3 { // silent
		conns = append(conns, dialFrom(t, addr, "127.0.0.1"))
	}
	trickle := dialFrom(t, addr, "127.0.0.1")
	conns = append(conns, trickle)
	go func() {
		for _, b := range hello {
			if _, err := trickle.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	stalled := dialFrom(t, addr, "127.0.0.1")
	conns = append(conns, stalled)
	if _, err := stalled.Write(hello); err != nil {
		t.Fatal(err)
	}

	if _, name := relayed(t, addr, "127.0.0.2"); name == 0 {
		t.Fatal("honest client refused during the attack")
	}
	for i, c := range conns {
		if !closedSoon(c, 3*time.Second) {
			t.Fatalf("slow connection %d still open", i)
		}
	}
	if d := time.Since(start); d < cfg.HandshakeTimeout-50*time.Millisecond || d > 3*time.Second {
		t.Fatalf("slow connections closed after %v, want about %v", d, cfg.HandshakeTimeout)
	}
	st := r.Stats()
	if st.HandshakeTimeouts != 5 {
		t.Fatalf("HandshakeTimeouts = %d, want 5", st.HandshakeTimeouts)
	}
	if st.Relayed != 2 { // the stalled one and the honest one
		t.Fatalf("Relayed = %d, want 2: only a whole ClientHello reaches an upstream", st.Relayed)
	}
	waitFor(t, "the stalled connection's upstream side to close", func() bool { return up.open.Load() == 1 })
}
