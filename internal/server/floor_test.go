package server

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// BenchmarkTLSPushFloor measures the least a push can cost on this
// machine: one 1 KiB WebSocket frame (the size of a bench message's push)
// written through crypto/tls on one loopback TCP connection and read and
// decrypted at the other end, with nothing else — no protobuf, no store,
// no session, no fan-out bookkeeping. batch is how many pushes share one
// Write (one TLS record and one system call): 1 is a push to a device
// that is keeping up, 14 fills a 16 KiB record. The cpu-ns/push figure is
// the process's user+system CPU time (both ends) per push; multiplied by
// the pushes a load needs, it bounds what two cores can deliver whatever
// the server does above the socket.
func BenchmarkTLSPushFloor(b *testing.B) {
	for _, batch := range []int{1, 4, 14} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { tlsPushFloor(b, batch) })
	}
}

func tlsPushFloor(b *testing.B, batch int) {
	srvConf, pool := testTLS(b)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvConf)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		if err := c.(*tls.Conn).Handshake(); err != nil {
			c.Close()
			close(accepted)
			return
		}
		accepted <- c
	}()
	cli, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	srv, ok := <-accepted
	if !ok {
		b.Fatal("handshake failed")
	}
	defer srv.Close()

	payload := make([]byte, 1024+96) // a 1 KiB ciphertext with its MLS and protobuf framing
	one := appendFrame(nil, ws.OpBinary, payload)
	var buf []byte
	for range batch {
		buf = append(buf, one...)
	}
	writes := (b.N + batch - 1) / batch
	total := int64(writes * len(buf))

	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, cli, total)
		done <- err
	}()
	before := cpuTime()
	start := time.Now()
	b.ResetTimer()
	for range writes {
		if _, err := srv.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	pushes := float64(writes * batch)
	b.ReportMetric(float64(cpuTime()-before)/pushes, "cpu-ns/push")
	b.ReportMetric(pushes/time.Since(start).Seconds(), "pushes/s")
}

// cpuTime is the process's user plus system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
