package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/translog"
)

// TestConcurrentActivations activates many devices at once (their
// certificates are logged in batches): each gets its own log index,
// holding its certificate, recorded in its device record, and the log is
// not longer than the certificates in it.
func TestConcurrentActivations(t *testing.T) {
	n := newNetwork(t, nil)
	ctx := context.Background()
	const count = 100
	codes := n.codes(count, 1)
	size := n.srv.tlog.Size()
	certs := make([]*identity.DeviceCertificate, count)
	idxs := make([]uint64, count)
	var wg sync.WaitGroup
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pub, _, _ := ed25519.GenerateKey(rand.Reader)
			cert, idx, err := n.srv.Activate(ctx, codes[i], fmt.Sprintf("user%d", i), pub)
			if err != nil {
				t.Error(err)
				return
			}
			certs[i], idxs[i] = cert, idx
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if got := n.srv.tlog.Size(); got != size+count {
		t.Fatalf("log grew by %d entries for %d certificates", got-size, count)
	}
	seen := map[uint64]bool{}
	for i, cert := range certs {
		if seen[idxs[i]] {
			t.Fatalf("index %d given twice", idxs[i])
		}
		seen[idxs[i]] = true
		es, err := n.srv.tlog.Entries(ctx, idxs[i], idxs[i]+1)
		if err != nil {
			t.Fatal(err)
		}
		e, err := translog.DecodeEntry(es[0])
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind != translog.KindDeviceCertificate || !bytes.Equal(e.Payload, cert.Encode()) {
			t.Fatalf("device %d: entry %d is not its certificate", i, idxs[i])
		}
		rec, _, err := n.srv.deviceRecord(ctx, cert.DeviceID.String())
		if err != nil {
			t.Fatal(err)
		}
		if !rec.Logged || rec.LogIndex != idxs[i] {
			t.Fatalf("device %d: record says logged %v at %d, want %d", i, rec.Logged, rec.LogIndex, idxs[i])
		}
	}
	// Nothing is left pending: a restart logs nothing again.
	n.restart()
	if got := n.srv.tlog.Size(); got != size+count {
		t.Fatalf("after restart the log has %d entries, want %d", got, size+count)
	}
}

// BenchmarkActivate measures activations (code check, certificate,
// transparency-log append, records) with 64 concurrent callers.
func BenchmarkActivate(b *testing.B) {
	n := newNetwork(b, nil)
	ctx := context.Background()
	// A distributor of its own, with quota for b.N codes.
	dist, _ := identity.GenerateDistributorKey(rand.Reader)
	dc := &identity.DistributorCertificate{Name: "bench", Key: dist.Public(), Quota: uint32(b.N)}
	if err := n.root.SignDistributorCertificate(dc); err != nil {
		b.Fatal(err)
	}
	if err := n.srv.AddDistributor(ctx, dc); err != nil {
		b.Fatal(err)
	}
	var codes []identity.ActivationCode
	for len(codes) < b.N {
		batch := &identity.CodeBatch{Distributor: "bench", Months: 1, Expires: n.clock.Now().Add(24 * time.Hour)}
		for range min(1000, b.N-len(codes)) {
			c, _ := identity.NewActivationCode(rand.Reader)
			codes = append(codes, c)
			batch.Hashes = append(batch.Hashes, c.Hash())
		}
		if err := dist.SignCodeBatch(batch); err != nil {
			b.Fatal(err)
		}
		if err := n.srv.ImportCodes(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	keys := make([]ed25519.PublicKey, b.N)
	for i := range keys {
		keys[i], _, _ = ed25519.GenerateKey(rand.Reader)
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	var next sync.Mutex
	i := 0
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				j := i
				i++
				next.Unlock()
				if j >= b.N {
					return
				}
				if _, _, err := n.srv.Activate(ctx, codes[j], fmt.Sprintf("bench%d", j), keys[j]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "activations/s")
}
