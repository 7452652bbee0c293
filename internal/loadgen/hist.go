package loadgen

import (
	"math/bits"
	"sync"
	"time"
)

// Hist is a latency histogram with about 3% resolution from 1µs to
// hours: 32 sub-buckets per power of two of microseconds. It is safe for
// concurrent use.
type Hist struct {
	mu     sync.Mutex
	counts [64 * subBuckets]uint64
	n      uint64
	max    time.Duration
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
	b := bucketOf(us)
	h.mu.Lock()
	h.counts[b]++
	h.n++
	h.max = max(h.max, d)
	h.mu.Unlock()
}

// Count is the number of latencies recorded.
func (h *Hist) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Quantile returns the q-quantile (0 < q <= 1), as the upper edge of its
// bucket (never above the maximum seen); 0 if empty.
func (h *Hist) Quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(lower(b+1))*time.Microsecond, h.max)
		}
	}
	return h.max
}

// Max returns the largest latency recorded.
func (h *Hist) Max() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.max
}
