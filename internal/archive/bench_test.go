package archive_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"anom/escrow"
	"anom/internal/archive"
	"anom/internal/custodian"
	"anom/internal/escrowtest"
	"anom/internal/store/pebble"
)

// BenchmarkOpen opens N archived records of one user with 2 of 3
// in-process custodians over TLS on loopback (chunks of 1,000 records) and
// reports records per second, the process's CPU time per record (archive
// and custodians together) and, with -benchmem, the memory allocated per
// open. N is 10,000 unless ANOM_BENCH_RECORDS says
// otherwise (100,000 takes minutes to set up: every record is sealed,
// signed and ingested first).
func BenchmarkOpen(b *testing.B) {
	n := 10000
	if s := os.Getenv("ANOM_BENCH_RECORDS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	net := escrowtest.New(b, 9, 2, 3)
	st, err := pebble.Open(b.TempDir(), pebble.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	a, err := archive.New(ctx, archive.Config{Store: st, Policy: net.Policy, Root: net.Root.Public(), Log: net, Now: clock, ClientCertificate: &net.ArchiveCert})
	if err != nil {
		b.Fatal(err)
	}
	src := &archive.MemSource{}
	alice := net.Device(b, "alice")
	src.Add(net.CountersignItem(b))
	src.Add(net.CertificateItem(b, alice))
	// The server countersigns concurrent sends in batches (of up to 32
	// under load, internal/server/proofs.go); ANOM_BENCH_BATCH=1 gives
	// records countersigned alone.
	batch := 32
	if s := os.Getenv("ANOM_BENCH_BATCH"); s != "" {
		var err error
		if batch, err = strconv.Atoi(s); err != nil || batch < 1 {
			b.Fatalf("ANOM_BENCH_BATCH=%q: want a positive number", s)
		}
	}
	for lo := 0; lo < n; lo += batch {
		var recs []*escrow.Record
		at := t0.Add(time.Duration(lo) * time.Millisecond)
		for i := lo; i < min(n, lo+batch); i++ {
			rec, err := net.Seal(alice, grpAB, at, []byte(fmt.Sprintf("message %d: a typical short chat message of about eighty bytes......", i)))
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, rec)
		}
		srs, err := net.SignBatch(alice, recs, at)
		if err != nil {
			b.Fatal(err)
		}
		for _, sr := range srs {
			rb, err := sr.MarshalBinary()
			if err != nil {
				b.Fatal(err)
			}
			src.Add(archive.Item{Kind: archive.KindRecord, Data: rb})
		}
	}
	for {
		k, err := a.IngestOnce(ctx, src, 5000)
		if err != nil {
			b.Fatal(err)
		}
		if k == 0 {
			break
		}
	}
	// The parties' goroutines carry a profiler label (party=archive or
	// custodian), so that a -cpuprofile splits the CPU between them
	// (go tool pprof -tags): in a deployment each custodian runs on its
	// own machine.
	var eps []custodian.Endpoint
	pprof.Do(ctx, pprof.Labels("party", "custodian"), func(context.Context) {
		for i := range 3 {
			eps = append(eps, net.StartCustodian(b, i, clock).Endpoint)
		}
	})
	w := net.Warrant(b, escrow.Warrant{Scope: escrow.Scope{Usernames: []string{"alice"}}, From: t0, To: t0.Add(time.Hour)})
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		pprof.Do(ctx, pprof.Labels("party", "archive"), func(ctx context.Context) {
			rep, err := a.Open(ctx, w, eps, filepath.Join(b.TempDir(), "out"), archive.OpenOptions{Chunk: 1000})
			if err != nil || len(rep.Records) != n {
				b.Fatalf("opened %d of %d: %v", len(rep.Records), n, err)
			}
		})
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "records/s")
	if cpu != 0 {
		b.ReportMetric(float64(cpuTime()-cpu)/1e3/float64(n*b.N), "cpu-µs/record")
	}
}
