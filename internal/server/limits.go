package server

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"anom/identity"
)

// Limits bounds every size and count the server accepts. Zero fields take
// the defaults in parentheses.
type Limits struct {
	// MaxFrameSize is the largest WebSocket message (1 MiB).
	MaxFrameSize int
	// MaxMessageSize is the largest MLS message or welcome (900 KiB).
	MaxMessageSize int
	// MaxKeyPackageSize is the largest key package (16 KiB).
	MaxKeyPackageSize int
	// MaxKeyPackages is how many one-time key packages a device may keep
	// on the server (100).
	MaxKeyPackages int
	// MaxGroupLeaves is the largest group, in leaves (1000).
	MaxGroupLeaves int
	// MaxAddsPerCommit bounds the members one commit may add (50).
	MaxAddsPerCommit int
	// MaxFetch is the most messages one Fetch returns (500).
	MaxFetch int
	// MaxLogEntries is the most transparency-log entries per request (1000).
	MaxLogEntries int
	// SendQueue is how many frames may wait to be written to one
	// connection before it is closed as too slow (1024).
	SendQueue int
	// RequestsPerSecond and RequestBurst rate-limit each device (200, 400).
	RequestsPerSecond float64
	RequestBurst      int
	// ClaimsPerMinute limits key-package claims per device (60), so no
	// device can drain others' key packages in bulk.
	ClaimsPerMinute int
	// PairingMissBurst and PairingMissesPerMinute limit per device the
	// fetches of pairing codes that are unknown, expired or another
	// user's (10, then 6 a minute), so that no device can guess at codes.
	PairingMissBurst       int
	PairingMissesPerMinute float64
	// AuthTimeout is how long a connection may stay unauthenticated (10s).
	AuthTimeout time.Duration
	// MaxConnsPerDevice bounds simultaneous sessions of one device (4).
	MaxConnsPerDevice int

	// Before authentication (preauth.go). A source is an IPv4 address or
	// an IPv6 /64 (failed activations also count by /48 and /32); every
	// device behind one NAT (or relay) shares one.

	// MaxPreAuthFrameSize is the largest WebSocket message before the
	// session has authenticated (4 KiB): enough for Hello, Auth and
	// Activate, whose largest legal forms are 18, 252 and 362 bytes (the
	// test checks they stay under a quarter of it), so a bare
	// frame header cannot make the server set aside MaxFrameSize.
	MaxPreAuthFrameSize int
	// MaxUnauthenticated bounds the WebSocket sessions that have not
	// authenticated yet, in all (4096); a further one is refused with
	// HTTP 503 before the upgrade. One costs about 20 KB while it waits
	// (measured with the largest header allowed), so the default holds
	// about 80 MB at most.
	MaxUnauthenticated int
	// MaxUnauthenticatedPerSource bounds them per source address (256).
	MaxUnauthenticatedPerSource int
	// FailedActivationBurst and FailedActivationsPerMinute rate-limit
	// failed activations per source address (10, and 6 a minute after
	// that): while a source has failed too often, its every activation
	// is refused with RATE_LIMITED without its code being looked at.
	FailedActivationBurst      int
	FailedActivationsPerMinute float64
	// An IPv6 activation must also pass a bucket for its /48 (one site:
	// 65,536 /64s) and one for its /32 (one provider's allocation), and
	// each failure counts in all three, so spreading attempts over many
	// /64s gains nothing past these allowances: for a /48 a burst of 30,
	// then 12 a minute; for a /32 a burst of 100, then 60 a minute.
	FailedActivationBurstPer48      int
	FailedActivationsPerMinutePer48 float64
	FailedActivationBurstPer32      int
	FailedActivationsPerMinutePer32 float64
	// MaxFailedActivationSources bounds the buckets kept for failed
	// activations (65,536; a few hundred bytes each). When it is full the
	// least recently failed prefix is forgotten, so a source that never
	// failed is never refused because the table is full.
	MaxFailedActivationSources int
	// ReadHeaderTimeout bounds how long a client may take to send an
	// HTTP request's headers, the TLS handshake included (10s).
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long an HTTP keep-alive connection (blobs) may
	// wait for its next request (2m).
	IdleTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxFrameSize, 1<<20)
	def(&l.MaxMessageSize, 900<<10)
	def(&l.MaxKeyPackageSize, 16<<10)
	def(&l.MaxKeyPackages, 100)
	def(&l.MaxGroupLeaves, 1000)
	def(&l.MaxAddsPerCommit, 50)
	def(&l.MaxFetch, 500)
	def(&l.MaxLogEntries, 1000)
	def(&l.SendQueue, 1024)
	def(&l.RequestBurst, 400)
	def(&l.ClaimsPerMinute, 60)
	def(&l.PairingMissBurst, 10)
	def(&l.MaxConnsPerDevice, 4)
	def(&l.MaxPreAuthFrameSize, 4<<10)
	def(&l.MaxUnauthenticated, 4096)
	def(&l.MaxUnauthenticatedPerSource, 256)
	def(&l.FailedActivationBurst, 10)
	def(&l.FailedActivationBurstPer48, 30)
	def(&l.FailedActivationBurstPer32, 100)
	def(&l.MaxFailedActivationSources, 1<<16)
	defRate := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	defRate(&l.FailedActivationsPerMinute, 6)
	defRate(&l.PairingMissesPerMinute, 6)
	defRate(&l.FailedActivationsPerMinutePer48, 12)
	defRate(&l.FailedActivationsPerMinutePer32, 60)
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = 10 * time.Second
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 2 * time.Minute
	}
	if l.RequestsPerSecond <= 0 {
		l.RequestsPerSecond = 200
	}
	if l.AuthTimeout <= 0 {
		l.AuthTimeout = 10 * time.Second
	}
	return l
}

// rateLimiters holds per-device token buckets, shared by all of a
// device's sessions. A session holds its device's buckets only while it
// has requests (an idle one holds none); buckets no session holds are
// forgotten once they are full again, when a new pair would be the same.
type rateLimiters struct {
	limits Limits
	mu     sync.Mutex
	m      map[identity.DeviceID]*deviceLimiter
}

type deviceLimiter struct {
	requests      *rate.Limiter
	claims        *rate.Limiter
	pairingMisses *rate.Limiter // fetches of unknown pairing codes (pairing.go)
	refs          int           // sessions holding it; guarded by rateLimiters.mu
}

func newRateLimiters(l Limits) *rateLimiters {
	return &rateLimiters{limits: l, m: map[identity.DeviceID]*deviceLimiter{}}
}

// acquire returns the buckets of a device for a session to hold until it
// calls release.
func (r *rateLimiters) acquire(id identity.DeviceID) *deviceLimiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.m[id]
	if d == nil {
		d = &deviceLimiter{
			requests:      rate.NewLimiter(rate.Limit(r.limits.RequestsPerSecond), r.limits.RequestBurst),
			claims:        rate.NewLimiter(rate.Limit(float64(r.limits.ClaimsPerMinute)/60), r.limits.ClaimsPerMinute),
			pairingMisses: rate.NewLimiter(rate.Limit(r.limits.PairingMissesPerMinute/60), r.limits.PairingMissBurst),
		}
		r.m[id] = d
	}
	d.refs++
	return d
}

// release ends a session's hold on its device's buckets (from acquire).
func (r *rateLimiters) release(id identity.DeviceID, d *deviceLimiter, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d.refs--
	if d.refs == 0 && d.full(now) && r.m[id] == d {
		delete(r.m, id)
	}
}

// sweep forgets the buckets no session holds that are full again.
func (r *rateLimiters) sweep(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, d := range r.m {
		if d.refs == 0 && d.full(now) {
			delete(r.m, id)
		}
	}
}

// len returns how many devices have buckets.
func (r *rateLimiters) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// full says whether all its buckets are full: then they limit exactly as
// new ones would.
func (d *deviceLimiter) full(now time.Time) bool {
	return d.requests.TokensAt(now) >= float64(d.requests.Burst()) && d.claims.TokensAt(now) >= float64(d.claims.Burst()) &&
		d.pairingMisses.TokensAt(now) >= float64(d.pairingMisses.Burst())
}

// allow takes one token and, if none is left, says how long to wait.
func allow(l *rate.Limiter, now time.Time) (bool, time.Duration) {
	r := l.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
