package server

import (
	"container/list"
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

// activationLimiter rate-limits failed activations by source: a token
// bucket per source, which an attempt must find holding a token before
// its code is looked at, and which each failed attempt takes a token
// from. Successes cost nothing, so many devices activating from one
// address at once are not held up. Attempts that run at the same time
// may all fail and take their tokens after the check: the bucket then
// goes into debt, paid back before the source may try again, so over any
// time T a source gets at most burst + its concurrent attempts + rate·T
// failures looked at.
//
// An IPv6 source (a /64) must also find a token in the bucket of its /48
// and of its /32, and each failure takes one from all three: one holder
// of a /48 has 65,536 /64s, and without them could spread its attempts
// over all of them, each with a burst of its own. A /48 or /32 shares
// its larger allowance among all its /64s, so the most one /48 gets is
// its own allowance however many /64s it uses.
//
// The table is bounded (MaxFailedActivationSources buckets). When it is
// full, the bucket of the prefix that failed least recently is forgotten
// to make room: a source with no bucket is one that may try, so a source
// that never failed is never refused because others filled the table.
// A bucket is touched at every failure of its prefix, and a /64's
// failure touches its /48 and /32 after it, so a network's larger
// buckets are always more recent than its /64s and are forgotten last.
// To make the server forget a bucket in debt, an attacker has to fail
// from as many other prefixes as the table holds after it, which the
// /48 and /32 buckets make cost that many networks.
type activationLimiter struct {
	levels4 []activationLevel // an IPv4 (or unknown) source
	levels6 []activationLevel // an IPv6 source: /64, /48, /32
	max     int
	mu      sync.Mutex
	m       map[netip.Prefix]*sourceBucket
	lru     *list.List // of *sourceBucket, the most recently failed first
}

// activationLevel is one bucket an attempt must pass: the prefix length
// it is kept by and its allowance.
type activationLevel struct {
	bits  int
	every rate.Limit
	burst int
}

type sourceBucket struct {
	key     netip.Prefix
	lim     *rate.Limiter
	el      *list.Element // in activationLimiter.lru
	limited bool          // refused since it last allowed an attempt: logged once; guarded by activationLimiter.mu
}

func newActivationLimiter(l Limits) *activationLimiter {
	lv := func(bits int, burst int, perMinute float64) activationLevel {
		return activationLevel{bits: bits, every: rate.Limit(perMinute / 60), burst: burst}
	}
	src := lv(64, l.FailedActivationBurst, l.FailedActivationsPerMinute)
	v4 := src
	v4.bits = 32
	return &activationLimiter{
		levels4: []activationLevel{v4},
		levels6: []activationLevel{src,
			lv(48, l.FailedActivationBurstPer48, l.FailedActivationsPerMinutePer48),
			lv(32, l.FailedActivationBurstPer32, l.FailedActivationsPerMinutePer32)},
		max: max(l.MaxFailedActivationSources, 3), // room for one source's three buckets
		m:   map[netip.Prefix]*sourceBucket{},
		lru: list.New(),
	}
}

// activationKey is one bucket's key for a source, and its allowance.
type activationKey struct {
	prefix netip.Prefix
	level  activationLevel
}

// keys returns the buckets an attempt from src must pass, the source's
// own first. The zero Addr (an unparsable remote address) has the zero
// Prefix.
func (a *activationLimiter) keys(src netip.Addr) []activationKey {
	levels := a.levels4
	if src.Is6() {
		levels = a.levels6
	}
	ks := make([]activationKey, len(levels))
	for i, lv := range levels {
		p, _ := src.Prefix(lv.bits) // the zero Prefix for the zero Addr
		ks[i] = activationKey{p, lv}
	}
	return ks
}

// bucket returns k's bucket, or nil if it has none. Called with mu held.
func (a *activationLimiter) bucket(k activationKey) *sourceBucket {
	return a.m[k.prefix]
}

// touch returns k's bucket, made if it has none (forgetting the least
// recently failed one if the table is full), as the most recently
// failed. Called with mu held.
func (a *activationLimiter) touch(k activationKey) *sourceBucket {
	if b := a.m[k.prefix]; b != nil {
		a.lru.MoveToFront(b.el)
		return b
	}
	for len(a.m) >= a.max {
		a.forget(a.lru.Back().Value.(*sourceBucket))
	}
	b := &sourceBucket{key: k.prefix, lim: rate.NewLimiter(k.level.every, k.level.burst)}
	b.el = a.lru.PushFront(b)
	a.m[k.prefix] = b
	return b
}

// forget drops a bucket. Called with mu held.
func (a *activationLimiter) forget(b *sourceBucket) {
	a.lru.Remove(b.el)
	delete(a.m, b.key)
}

// check says whether src may attempt an activation: if not, how long
// until it may, and whether this is its first refusal since it was last
// allowed (to log it once).
func (a *activationLimiter) check(src netip.Addr, now time.Time) (wait time.Duration, first bool) {
	wait, first, _ = a.checkBy(src, now)
	return wait, first
}

// checkBy is check that also says which prefix's bucket refused (the
// one with the longest wait).
func (a *activationLimiter) checkBy(src netip.Addr, now time.Time) (wait time.Duration, first bool, by netip.Prefix) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var refusing []*sourceBucket
	var allowing []*sourceBucket
	for _, k := range a.keys(src) {
		b := a.bucket(k)
		if b == nil {
			continue // never failed (or forgotten): a full bucket
		}
		if b.lim.TokensAt(now) >= 1 {
			allowing = append(allowing, b)
			continue
		}
		r := b.lim.ReserveN(now, 1)
		w := r.DelayFrom(now)
		r.CancelAt(now)
		if w <= 0 {
			w = time.Millisecond
		}
		if w > wait {
			wait, first, by = w, !b.limited, b.key
		}
		refusing = append(refusing, b)
	}
	if len(refusing) == 0 {
		for _, b := range allowing {
			b.limited = false
		}
		return 0, false, netip.Prefix{}
	}
	for _, b := range refusing {
		b.limited = true
	}
	return wait, first, by
}

// fail takes a token for a failed attempt from each of src's buckets,
// into debt if one has none left.
func (a *activationLimiter) fail(src netip.Addr, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range a.keys(src) { // the source's own first, so the larger prefixes are more recent
		a.touch(k).lim.ReserveN(now, 1)
	}
}

// sweep forgets the buckets that are full again (a new bucket would be
// the same).
func (a *activationLimiter) sweep(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, b := range a.m {
		if b.lim.TokensAt(now) >= float64(b.lim.Burst()) {
			a.forget(b)
		}
	}
}

// len returns how many buckets the table holds.
func (a *activationLimiter) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.m)
}
