package jetstream

import (
	"context"
	"fmt"
	"testing"
)

// TestReadBulk: reads of bulkRead entries or more come through an ordered
// consumer; they return what message-by-message reads return: every
// entry from `from` on, in order, up to the limit, with other logs'
// messages interleaved in the stream.
func TestReadBulk(t *testing.T) {
	s := openStore(t, cluster(t), "bulk", nil)
	ctx := context.Background()
	const n = 150
	for i := 1; i <= n; i++ {
		if _, err := s.Append(ctx, "a", []byte(fmt.Sprintf("a%d", i))); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if _, err := s.Append(ctx, "b", []byte(fmt.Sprintf("b%d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		from      uint64
		limit     int
		first, to int
	}{
		{1, 0, 1, n}, {50, 0, 50, n}, {50, 80, 50, 129}, {n - bulkRead + 1, 0, n - bulkRead + 1, n}, {n - 10, 0, n - 10, n},
	} {
		es, err := s.Read(ctx, "a", tc.from, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != tc.to-tc.first+1 {
			t.Fatalf("Read(a, %d, %d): %d entries, want %d", tc.from, tc.limit, len(es), tc.to-tc.first+1)
		}
		for i, e := range es {
			want := tc.first + i
			if e.Seq != uint64(want) || string(e.Data) != fmt.Sprintf("a%d", want) {
				t.Fatalf("Read(a, %d, %d): entry %d is %d %q, want %d", tc.from, tc.limit, i, e.Seq, e.Data, want)
			}
		}
	}
	// The bulk path alone, as Read takes it.
	tp, err := s.readTip(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	cur, err := s.seek(ctx, s.logSubject("a"), 10, tp.sseq)
	if err != nil {
		t.Fatal(err)
	}
	es, err := s.readBulk(ctx, s.logSubject("a"), cur, tp.sseq, 10, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 100 || es[0].Seq != 10 || es[99].Seq != 109 {
		t.Fatalf("readBulk from 10: %d entries, %v … %v", len(es), es[0].Seq, es[len(es)-1].Seq)
	}
}
