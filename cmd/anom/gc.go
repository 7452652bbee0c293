package main

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The server's garbage collection. Go's default (GOGC=100) collects
// whenever the heap has grown by as much as the live data since the last
// collection. A server with a few thousand devices online has a live heap
// of some tens of MiB and allocates about that much per second per few
// thousand messages, so under load it collects several times a second;
// each collection takes a quarter of the CPU (half a core of two) for its
// duration and slows the allocating goroutines, which shows in the tail
// of the send-to-deliver latency. Unless GOGC is set in the environment,
// anom server therefore lets the heap grow by at least gcHeadroom beyond
// the live data before collecting, within GOGC 100 to gcMaxPercent, and
// re-decides every gcTunePeriod from the live heap: a small heap collects
// up to four times less often; a live heap of gcHeadroom or more (many
// idle connections, say) keeps Go's default, so the memory such a server
// uses is what it would be without this. The heap thus never exceeds
// what GOGC=100 gives by more than gcHeadroom. GOMEMLIMIT, if set, still
// applies on top.
const (
	gcHeadroom   = 256 << 20
	gcMaxPercent = 400
	gcTunePeriod = time.Second
)

// tuneCollector keeps the collector's settings until ctx ends: GOGC by
// the policy above unless GOGC is set in the environment, and, if
// autoLimit, the automatic memory limit (memlimit.go) for the live heap
// and the GOGC in force. One reading of the runtime's metrics every
// gcTunePeriod serves both.
func tuneCollector(ctx context.Context, autoLimit bool) {
	_, gogcSet := os.LookupEnv("GOGC")
	if gogcSet && !autoLimit {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/gogc:percent"}}
	percent, limit := 100, int64(-1)
	t := time.NewTicker(gcTunePeriod)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 && sample[1].Value.Kind() == metrics.KindUint64 {
			live := sample[0].Value.Uint64()
			gogc := int64(sample[1].Value.Uint64()) // -1 (off) reads as 2^64-1
			if !gogcSet {
				// Small changes are not worth a new heap goal.
				if p := gcPercent(live); p*10 < percent*9 || p*10 > percent*11 {
					debug.SetGCPercent(p)
					percent = p
				}
				gogc = int64(percent)
			}
			if autoLimit {
				// Nor are changes of the limit under 1/32.
				l := autoMemoryLimit(live, gogc)
				if d := l - limit; limit < 0 || d > limit/32 || -d > limit/32 {
					debug.SetMemoryLimit(l)
					limit = l
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// gcPercent is the GOGC that gives a live heap of live bytes gcHeadroom
// to grow, within 100 to gcMaxPercent.
func gcPercent(live uint64) int {
	if live == 0 {
		return gcMaxPercent
	}
	return int(min(max(gcHeadroom*100/live, 100), gcMaxPercent))
}
