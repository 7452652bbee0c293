package escrow

import (
	"fmt"
	"testing"
)

// Benchmarks for the speed targets: sealing ≤ 100 µs; records/second for
// opening with 2 of 3 custodians (see BenchmarkOpen2of3 for the figure).

// cpuMeter reports the CPU time per unit of a benchmark's loop (see
// cpuTime): start it just before the loop, then call report.
type cpuMeter struct{ start int64 }

func startCPU() cpuMeter { return cpuMeter{cpuTime()} }

// report adds "cpu-µs/<unit>": CPU time over b.N·per units.
func (m cpuMeter) report(b *testing.B, per int, unit string) {
	if m.start == 0 {
		return
	}
	b.ReportMetric(float64(cpuTime()-m.start)/1e3/float64(b.N*per), "cpu-µs/"+unit)
}

func benchRecord(b *testing.B) (*fixture, *Record, []byte) {
	f := newFixture(b, 2, 3)
	m := f.meta("dev-alice", "group-1", 1, t0)
	pt := []byte("a typical short chat message of about eighty bytes, with a little more text.")
	rec, err := Seal(f.policy.EscrowKey, f.exporter, m, pt)
	if err != nil {
		b.Fatal(err)
	}
	return f, rec, pt
}

func BenchmarkSeal(b *testing.B) {
	f, rec, pt := benchRecord(b)
	m := rec.Metadata
	b.ReportAllocs()
	cpu := startCPU()
	for i := 0; b.Loop(); i++ {
		m.Generation = uint32(i)
		r, err := Seal(f.policy.EscrowKey, f.exporter, m, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, 1, "op")
}

func BenchmarkRederive(b *testing.B) {
	f, rec, pt := benchRecord(b)
	rb, _ := rec.MarshalBinary()
	b.ReportAllocs()
	for b.Loop() {
		if err := Rederive(f.policy.EscrowKey, f.exporter, rec.Metadata, pt, rb); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPartialDecrypt(b *testing.B) {
	f, rec, _ := benchRecord(b)
	rnd := seededRand("bench")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.dealing.Shares[0].Decrypt(rnd, rec.R); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen2of3 verifies two custodians' proofs, combines and opens one
// record: the archive's cost per record.
func BenchmarkOpen2of3(b *testing.B) {
	f, rec, pt := benchRecord(b)
	var parts []*Partial
	for i := range 2 {
		p, _ := f.dealing.Shares[i].Decrypt(seededRand(fmt.Sprint(i)), rec.R)
		parts = append(parts, p)
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := Combine(f.policy, rec, parts)
		if err != nil || len(got) != len(pt) {
			b.Fatal(err)
		}
	}
	perOp := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(1/perOp, "records/s")
	b.ReportMetric(perOp*100000, "s/100k-records")
}

// BenchmarkAnswer100 and BenchmarkAnswer1000 are a custodian answering a
// request of 100 or 1,000 records: warrant check, both signatures, scope and
// the record proof per record, then the partials. They report the cost per
// record.
func BenchmarkAnswer100(b *testing.B)  { benchAnswer(b, 100) }
func BenchmarkAnswer1000(b *testing.B) { benchAnswer(b, 1000) }

func benchAnswer(b *testing.B, n int) {
	f := newFixture(b, 2, 3)
	req := &Request{Warrant: f.warrant(b, nil)}
	for i := range n {
		req.Records = append(req.Records, f.record(b, f.meta("dev-alice", "g", uint32(i), t0), "message", t0))
	}
	h := f.keyholder(0)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if _, err := h.Answer(req, t0, nil); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, n, "record")
	perRecord := b.Elapsed().Seconds() / float64(b.N*n)
	b.ReportMetric(1/perRecord, "records/s")
	b.ReportMetric(perRecord*1e6, "µs/record")
}

// BenchmarkOpen100 is the archive opening a request of 100 records from two
// custodians' responses (response signatures, proofs, combination, AEAD).
func BenchmarkOpen100(b *testing.B) {
	f := newFixture(b, 2, 3)
	req := &Request{Warrant: f.warrant(b, nil)}
	for i := range 100 {
		req.Records = append(req.Records, f.record(b, f.meta("dev-alice", "g", uint32(i), t0), "message", t0))
	}
	var resps []*Response
	for i := range 2 {
		r, err := f.keyholder(i).Answer(req, t0, nil)
		if err != nil {
			b.Fatal(err)
		}
		resps = append(resps, r)
	}
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if _, err := Open(f.policy, req, resps); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, 100, "record")
	rate := float64(b.N*100) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "records/s")
	b.ReportMetric(100000/rate, "s/100k-records")
}

// BenchmarkVerifyRecordProof is the check of one record's proof π: the
// server's cost per record when sends do not overlap.
func BenchmarkVerifyRecordProof(b *testing.B) {
	f, rec, _ := benchRecord(b)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if err := VerifyRecordProof(f.policy.EscrowKey, rec); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, 1, "record")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*1e6, "µs/record")
}

// BenchmarkVerifyRecordProofs checks batches of proofs at once (one
// multi-scalar multiplication per batch), reporting the cost per record.
func BenchmarkVerifyRecordProofs(b *testing.B) {
	f := newFixture(b, 2, 3)
	var all []*Record
	for i := range 1000 {
		rec, err := Seal(f.policy.EscrowKey, f.exporter, f.meta("dev-alice", "g", uint32(i), t0), []byte("a typical short chat message"))
		if err != nil {
			b.Fatal(err)
		}
		all = append(all, rec)
	}
	for _, n := range []int{8, 16, 64, 256, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			rnd := seededRand("weights")
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				if err := VerifyRecordProofs(rnd, f.policy.EscrowKey, all[:n]); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b, n, "record")
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N*n)*1e6, "µs/record")
		})
	}
}
