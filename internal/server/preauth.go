package server

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits on what a connection may do before it has authenticated: how
// many unauthenticated sessions there may be (in all and per source
// address), and how often one source address may fail to activate. The
// frame size before authentication is Limits.MaxPreAuthFrameSize, applied
// by the reader (conn.go).

// sourceOf is the address limits are kept by for a remote address
// "host:port": the IPv4 address, or the /64 an IPv6 address is in (what
// one subscriber is usually given, so changing the low bits does not
// give a new source). An unparsable address gives the zero Addr, which
// all such connections share.
func sourceOf(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return a
}

// sourceString shows a source for logs ("unknown" for the zero Addr).
func sourceString(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	if a.Is6() {
		return a.String() + "/64"
	}
	return a.String()
}

// preauthSessions counts the unauthenticated WebSocket sessions, in all
// and by source, so that neither a flood from one address nor one from
// many can hold more than the limits.
type preauthSessions struct {
	max, maxPerSource int
	mu                sync.Mutex
	total             int
	by                map[netip.Addr]int
}

func newPreauthSessions(l Limits) *preauthSessions {
	return &preauthSessions{max: l.MaxUnauthenticated, maxPerSource: l.MaxUnauthenticatedPerSource, by: map[netip.Addr]int{}}
}

// acquire takes a place for a new unauthenticated session from src;
// false if there is none (in all, or for that source).
func (p *preauthSessions) acquire(src netip.Addr) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.total >= p.max || p.by[src] >= p.maxPerSource {
		return false
	}
	p.total++
	p.by[src]++
	return true
}

// release gives back a place taken by acquire (once the session has
// authenticated or closed).
func (p *preauthSessions) release(src netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total--
	if n := p.by[src] - 1; n > 0 {
		p.by[src] = n
	} else {
		delete(p.by, src)
	}
}

// counts returns the sessions held in all and by src.
func (p *preauthSessions) counts(src netip.Addr) (total, bySource int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total, p.by[src]
}

// maxLimitedSources bounds the sources with an activation bucket of
// their own; beyond it (an attacker spread over many addresses) new
// sources share one bucket until the sweep forgets full ones.
const maxLimitedSources = 1 << 16

// activationLimiter rate-limits failed activations by source: a token
// bucket per source, which an attempt must find holding a token before
// its code is looked at, and which each failed attempt takes a token
// from. Successes cost nothing, so many devices activating from one
// address at once are not held up. Attempts that run at the same time
// may all fail and take their tokens after the check: the bucket then
// goes into debt, paid back before the source may try again, so over any
// time T a source gets at most burst + its concurrent attempts + rate·T
// failures looked at.
type activationLimiter struct {
	every rate.Limit
	burst int
	mu    sync.Mutex
	m     map[netip.Addr]*sourceBucket
	// overflow is shared by new sources while m is full.
	overflow *sourceBucket
}

type sourceBucket struct {
	lim     *rate.Limiter
	limited bool // refused since it last allowed an attempt: logged once; guarded by activationLimiter.mu
}

func newActivationLimiter(l Limits) *activationLimiter {
	a := &activationLimiter{every: rate.Limit(l.FailedActivationsPerMinute / 60), burst: l.FailedActivationBurst, m: map[netip.Addr]*sourceBucket{}}
	a.overflow = &sourceBucket{lim: rate.NewLimiter(a.every, a.burst)}
	return a
}

// bucket returns src's bucket (nil if it has none and create is false).
// Called with mu held.
func (a *activationLimiter) bucket(src netip.Addr, create bool) *sourceBucket {
	b := a.m[src]
	if b == nil && create {
		if len(a.m) >= maxLimitedSources {
			return a.overflow
		}
		b = &sourceBucket{lim: rate.NewLimiter(a.every, a.burst)}
		a.m[src] = b
	}
	return b
}

// check says whether src may attempt an activation: if not, how long
// until it may, and whether this is its first refusal since it was last
// allowed (to log it once).
func (a *activationLimiter) check(src netip.Addr, now time.Time) (wait time.Duration, first bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.bucket(src, false)
	if b == nil && len(a.m) >= maxLimitedSources {
		b = a.overflow
	}
	if b == nil {
		return 0, false // never failed: a full bucket
	}
	if b.lim.TokensAt(now) >= 1 {
		b.limited = false
		return 0, false
	}
	r := b.lim.ReserveN(now, 1)
	wait = r.DelayFrom(now)
	r.CancelAt(now)
	if wait <= 0 {
		wait = time.Millisecond
	}
	first = !b.limited
	b.limited = true
	return wait, first
}

// fail takes a token from src's bucket for a failed attempt, into debt
// if it has none left.
func (a *activationLimiter) fail(src netip.Addr, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.bucket(src, true).lim.ReserveN(now, 1)
}

// sweep forgets the sources whose buckets are full again (a new bucket
// would be the same).
func (a *activationLimiter) sweep(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for src, b := range a.m {
		if b.lim.TokensAt(now) >= float64(a.burst) {
			delete(a.m, src)
		}
	}
}

// len returns how many sources have a bucket of their own.
func (a *activationLimiter) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.m)
}
