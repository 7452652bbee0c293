package relay

import (
	"context"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// benchRelay runs a relay in front of a sink that discards what it reads
// (or, with hold, keeps connections open without reading).
func benchRelay(b *testing.B, hold bool) (addr string, held chan net.Conn) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { up.Close() })
	held = make(chan net.Conn, 1<<16)
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			if hold {
				held <- c
				continue
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	r, err := New(Config{Upstreams: []string{up.Addr().String()}, HealthEvery: time.Hour, StatsEvery: -1, MaxPerSource: 1 << 16, Grace: time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, l) }()
	b.Cleanup(func() { cancel(); <-done })
	return l.Addr().String(), held
}

// BenchmarkRelayThroughput: one connection's bytes through the relay
// (spliced) to a sink, in 64 KiB writes.
func BenchmarkRelayThroughput(b *testing.B) {
	addr, _ := benchRelay(b, false)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(append(append([]byte(nil), hello...), finished...)); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRelayConnMemory: the relay process's heap and stacks per open,
// idle, relayed connection (it includes the test's own client and
// upstream sockets, a few hundred bytes each).
func BenchmarkRelayConnMemory(b *testing.B) {
	const conns = 2000
	for range b.N {
		addr, held := benchRelay(b, true)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var cs []net.Conn
		for range conns {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Write(append(append([]byte(nil), hello...), finished...)); err != nil {
				b.Fatal(err)
			}
			cs = append(cs, c)
		}
		for range conns {
			<-held
		}
		time.Sleep(200 * time.Millisecond) // handshakes forwarded, copies waiting
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := float64((after.HeapInuse+after.StackInuse)-(before.HeapInuse+before.StackInuse)) / conns
		b.ReportMetric(per, "bytes/conn")
		for _, c := range cs {
			c.Close()
		}
	}
}

// BenchmarkDirectThroughput is BenchmarkRelayThroughput without the
// relay, for comparison.
func BenchmarkDirectThroughput(b *testing.B) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer up.Close()
	go func() {
		c, err := up.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", up.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}
