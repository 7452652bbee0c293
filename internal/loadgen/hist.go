package loadgen

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Hist is a latency histogram with about 3% resolution from 1µs to
// hours: 32 sub-buckets per power of two of microseconds. It is safe for
// concurrent use, and Add takes no lock (every receiving connection adds
// to one histogram); a reading taken while others add may miss the
// latest few.
type Hist struct {
	counts [64 * subBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

const subBits = 5
const subBuckets = 1 << subBits

func bucketOf(us uint64) int {
	if us < subBuckets {
		return int(us)
	}
	e := bits.Len64(us) - 1 - subBits // us >> e is in [32, 64)
	return (e+1)*subBuckets + int(us>>e) - subBuckets
}

// lower returns the smallest value of bucket b, in µs.
func lower(b int) uint64 {
	if b < subBuckets {
		return uint64(b)
	}
	e := b/subBuckets - 1
	return uint64(b%subBuckets+subBuckets) << e
}

// Add records one latency.
func (h *Hist) Add(d time.Duration) {
	us := uint64(max(d, 0) / time.Microsecond)
	h.counts[bucketOf(us)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			break
		}
	}
}

// Count is the number of latencies recorded.
func (h *Hist) Count() uint64 { return h.n.Load() }

// Quantile returns the q-quantile (0 < q <= 1), as the upper edge of its
// bucket (never above the maximum seen); 0 if empty.
func (h *Hist) Quantile(q float64) time.Duration {
	n, hmax := h.n.Load(), h.Max()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = min(max(rank, 1), n)
	var seen uint64
	for b := range h.counts {
		seen += h.counts[b].Load()
		if seen >= rank {
			return min(time.Duration(lower(b+1))*time.Microsecond, hmax)
		}
	}
	return hmax
}

// Max returns the largest latency recorded.
func (h *Hist) Max() time.Duration { return time.Duration(h.max.Load()) }
