package server

import (
	"sync"
	"testing"

	anomv1 "anom/proto/anom/v1"
)

// BenchmarkSend measures durable application messages through the whole
// server (TLS WebSocket, checks, Pebble append, push to the other member)
// with 8 concurrent sending connections of one device, each waiting for
// its Sent. Every message is also pushed to the 7 other connections and to
// the other member, so each costs 8 pushes.
func BenchmarkSend(b *testing.B) {
	n := newNetwork(b, func(c *Config) {
		c.Limits.RequestsPerSecond = 1e9
		c.Limits.RequestBurst = 1 << 30
		c.Limits.MaxConnsPerDevice = 16
	})
	g := gid("bench")
	alice, bob := setupGroup(b, n, g)
	go func() {
		for range bob.pushes {
		}
	}()
	// One ciphertext per sender connection is enough: the server does not
	// decrypt, and the epoch stays the same.
	const senders = 8
	var conns []*client
	for range senders {
		c, r := n.connect(alice.client)
		if code(r) != 0 {
			b.Fatal(r.GetError())
		}
		go func() {
			for range c.pushes {
			}
		}()
		conns = append(conns, c)
	}
	alice.ws.CloseNow()
	m, err := alice.group.Encrypt(make([]byte, 1024), nil)
	if err != nil {
		b.Fatal(err)
	}
	frame := func() *anomv1.Frame { return send(g, m, nil) }
	b.SetBytes(1024)
	b.ResetTimer()
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	per := (b.N + senders - 1) / senders
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if r := c.call(frame()); code(r) != 0 {
					b.Error(r.GetError())
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(per*senders)/b.Elapsed().Seconds(), "msgs/s")
	// The CPU of the whole process (server and the test's clients) per
	// message: unlike msgs/s, which the fsyncs bound, it shows what the
	// server's work per message costs.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(per*senders), "cpu-ns/msg")
}

// BenchmarkSendCluster is BenchmarkSend with two servers on one store:
// half the sending connections on each, the recipient on the second, so
// every message is also pushed across servers (StoreFanout) and the
// senders of both race for the group log (conditional appends).
func BenchmarkSendCluster(b *testing.B) {
	c := newCluster(b, func(c *Config) {
		c.Limits.RequestsPerSecond = 1e9
		c.Limits.RequestBurst = 1 << 30
		c.Limits.MaxConnsPerDevice = 16
	})
	g := gid("bench-cluster")
	alice, bob := setupGroup(b, c.a, g)
	bobB := bob.on(c.b)
	for _, m := range []*member{bob, bobB} {
		go func() {
			for range m.pushes {
			}
		}()
	}
	const senders = 8
	var conns []*client
	for i := range senders {
		n := c.a
		if i%2 == 1 {
			n = c.b
		}
		cl, r := n.connect(alice.client)
		if code(r) != 0 {
			b.Fatal(r.GetError())
		}
		go func() {
			for range cl.pushes {
			}
		}()
		conns = append(conns, cl)
	}
	alice.ws.CloseNow()
	m, err := alice.group.Encrypt(make([]byte, 1024), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1024)
	b.ResetTimer()
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	per := (b.N + senders - 1) / senders
	for _, cl := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if r := cl.call(send(g, m, nil)); code(r) != 0 {
					b.Error(r.GetError())
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(per*senders)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(per*senders), "cpu-ns/msg")
	conflicts := counterValue(b, c.a.srv, "anom_group_append_conflicts_total") + counterValue(b, c.b.srv, "anom_group_append_conflicts_total")
	b.ReportMetric(conflicts/float64(per*senders), "conflicts/msg")
}

// counterValue reads a counter of a server's registry.
func counterValue(tb testing.TB, srv *Server, name string) float64 {
	tb.Helper()
	mfs, err := srv.reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	tb.Fatalf("no counter %s", name)
	return 0
}
