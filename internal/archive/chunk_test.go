package archive_test

import (
	"bytes"
	"testing"
	"time"

	"anom/escrow"
	"anom/internal/archive"
	"anom/internal/custodian"
	"anom/internal/escrowtest"
)

// TestChunksBySize: a chunk is split so that each custodian request (with
// its log evidence: tree head, consistency proof, logged certificates and
// inclusion proofs) stays within the request bound, a record too large to
// share goes alone, and every candidate is sent once, in order.
func TestChunksBySize(t *testing.T) {
	n := escrowtest.New(t, 9, 2, 3)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	w := n.Warrant(t, escrow.Warrant{Scope: escrow.Scope{Usernames: []string{"alice"}}, From: t0, To: t0.Add(time.Hour)})
	alice := n.Device(t, "alice")
	// Logged items are the log index (8 bytes) and the encoded entry.
	cert, key := n.CertificateItem(t, alice).Data[8:], n.CountersignItem(t).Data[8:]
	var recs []*escrow.ServerRecord
	for i, size := range []int{100, 300 << 10, 300 << 10, 300 << 10, 100, escrow.MaxPlaintext, 100, 100} {
		recs = append(recs, n.Message(t, alice, []byte("group"), t0.Add(time.Duration(i)*time.Second), bytes.Repeat([]byte{'x'}, size)))
	}
	for _, tc := range []struct {
		maxRecords int
		maxBytes   int64
		want       []int
	}{
		{1000, custodian.DefaultMaxRequestBytes, []int{8}}, // a largest record and more fit the default
		{1000, 700 << 10, []int{3, 2, 1, 2}},               // two 300 KiB records at most; the 1 MiB one alone
		{3, 64 << 20, []int{3, 3, 2}},
		{1000, 1 << 10, []int{1, 1, 1, 1, 1, 1, 1, 1}}, // each too large to share: alone
	} {
		got, err := archive.ChunkSizes(w, recs, n.CertificateIndex(alice), cert, key, tc.maxRecords, tc.maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		var sizes []int
		i := 0
		for _, c := range got {
			sizes = append(sizes, len(c))
			for _, x := range c {
				if x != recs[i] {
					t.Fatalf("record %d out of order", i)
				}
				i++
			}
			if len(c) > 1 {
				// The envelope as the archive sends it, with a consistency
				// proof from a tracked head (the longest it gets here).
				b, err := n.Envelope(t, &escrow.Request{Warrant: w, Records: c}, 1).MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(b)) > tc.maxBytes {
					t.Errorf("limit %d: a request of %d records is %d bytes", tc.maxBytes, len(c), len(b))
				}
			}
		}
		if i != len(recs) || len(sizes) != len(tc.want) || !equalInts(sizes, tc.want) {
			t.Errorf("records %d, bytes %d: requests of %v, want %v", tc.maxRecords, tc.maxBytes, sizes, tc.want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
