// Package relay is anom's relay ("proxy server"): a TCP passthrough in
// front of one or more anom servers. It never terminates TLS: the bytes
// of a device's connection are copied to a server unchanged, so the relay
// sees only TLS records, never a message, a username or a key.
//
// Per connection the relay reads the client's TLS record headers until
// the handshake is done (the first application-data record), which lets
// it refuse what is not TLS and close a handshake that does not finish in
// time (slowloris); it opens the upstream connection only once the whole
// first record (the ClientHello) has arrived. After the handshake both
// directions are copied with io.Copy between TCP connections, which the
// Go runtime does with splice(2) on Linux: the payload stays in the
// kernel.
//
// Upstreams are health-checked (a TCP connect, or a TLS handshake) and a
// new connection goes to the healthy upstream with the fewest
// connections. Concurrent connections are capped per source address (an
// IPv6 source counts by its /64) and in all. On shutdown the relay stops
// accepting, lets open connections run for a grace period and then
// closes them.
//
// By default the relay logs counts only: no addresses of users and never
// content. Config.LogClientAddresses turns on a debug line per connection
// with the client's address, for an operator chasing a fault.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config configures a Relay; zero fields take the defaults given.
type Config struct {
	// Upstreams are the host:port addresses of the servers. Required.
	Upstreams []string
	// MaxPerSource bounds the concurrent connections from one source
	// address (an IPv6 source by its /64): 64.
	MaxPerSource int
	// MaxConns bounds the concurrent connections in all: 20000.
	MaxConns int
	// HandshakeTimeout bounds the time from accepting a connection to
	// the client's first application-data record, the end of its TLS
	// handshake: 10 seconds.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection after about this long without a
	// byte either way (checked in quarters of it): 15 minutes. A client
	// run by client.Run syncs every minute, so only dead or abandoned
	// connections reach it. Negative: never.
	IdleTimeout time.Duration
	// DialTimeout bounds connecting to an upstream: 5 seconds.
	DialTimeout time.Duration
	// HealthEvery is the interval of the upstream health checks: 5
	// seconds.
	HealthEvery time.Duration
	// HealthTLS makes the health check a TLS handshake with the upstream
	// (no client certificate; the server's certificate is not verified,
	// the devices do that) instead of a TCP connect.
	HealthTLS bool
	// Grace is how long connections may run on after shutdown begins
	// before they are closed: 30 seconds.
	Grace time.Duration
	// StatsEvery is the interval of the counts logged at Info level: 5
	// minutes. Negative: never.
	StatsEvery time.Duration
	// LogClientAddresses logs, at Debug level, each connection's client
	// address and the upstream it went to. Off by default: a relay in
	// its default configuration keeps no record of who connected.
	LogClientAddresses bool
	// Log receives the relay's log; nil discards it.
	Log *slog.Logger
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.MaxPerSource <= 0 {
		c.MaxPerSource = 64
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 20000
	}
	def(&c.HandshakeTimeout, 10*time.Second)
	def(&c.IdleTimeout, 15*time.Minute)
	def(&c.DialTimeout, 5*time.Second)
	def(&c.HealthEvery, 5*time.Second)
	def(&c.Grace, 30*time.Second)
	def(&c.StatsEvery, 5*time.Minute)
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Stats are the relay's counts since it started.
type Stats struct {
	Accepted          uint64 // connections accepted
	Active            int64  // connections open now
	Relayed           uint64 // connections that reached an upstream
	RefusedPerSource  uint64 // refused: the source had MaxPerSource open
	RefusedTotal      uint64 // refused: MaxConns open
	NotTLS            uint64 // closed: the first bytes were not a TLS handshake
	HandshakeTimeouts uint64 // closed: the TLS handshake did not finish in time
	IdleTimeouts      uint64 // closed: idle for IdleTimeout
	NoUpstream        uint64 // closed: no upstream could be reached
	BytesUp           uint64 // bytes copied from clients to upstreams
	BytesDown         uint64 // bytes copied from upstreams to clients
}

// Relay is a running relay; New makes one, Serve runs it.
type Relay struct {
	cfg  Config
	log  *slog.Logger
	ups  *pool
	srcs *sources

	mu     sync.Mutex
	conns  map[*pipe]struct{}
	closed bool

	st struct {
		accepted, relayed, refusedPerSource, refusedTotal atomic.Uint64
		notTLS, handshakeTimeouts, idleTimeouts           atomic.Uint64
		noUpstream, bytesUp, bytesDown                    atomic.Uint64
		active                                            atomic.Int64
	}
}

// New checks cfg and makes a relay.
func New(cfg Config) (*Relay, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("relay: no upstream")
	}
	seen := map[string]bool{}
	for _, u := range cfg.Upstreams {
		if _, _, err := net.SplitHostPort(u); err != nil {
			return nil, fmt.Errorf("relay: upstream %q: want host:port", u)
		}
		if seen[u] {
			return nil, fmt.Errorf("relay: upstream %q given twice", u)
		}
		seen[u] = true
	}
	r := &Relay{cfg: cfg, log: cfg.Log, srcs: newSources(cfg.MaxPerSource), conns: map[*pipe]struct{}{}}
	r.ups = newPool(cfg.Upstreams, cfg.Log)
	return r, nil
}

// Stats returns the relay's counts.
func (r *Relay) Stats() Stats {
	return Stats{
		Accepted:          r.st.accepted.Load(),
		Active:            r.st.active.Load(),
		Relayed:           r.st.relayed.Load(),
		RefusedPerSource:  r.st.refusedPerSource.Load(),
		RefusedTotal:      r.st.refusedTotal.Load(),
		NotTLS:            r.st.notTLS.Load(),
		HandshakeTimeouts: r.st.handshakeTimeouts.Load(),
		IdleTimeouts:      r.st.idleTimeouts.Load(),
		NoUpstream:        r.st.noUpstream.Load(),
		BytesUp:           r.st.bytesUp.Load(),
		BytesDown:         r.st.bytesDown.Load(),
	}
}

// Healthy returns the upstreams the last health checks found reachable,
// in configuration order.
func (r *Relay) Healthy() []string { return r.ups.healthy() }

// Serve accepts connections on l and relays them until ctx ends, then
// drains: it closes l, lets open connections run for Config.Grace and
// closes those still open. It returns nil after a drain, or the error
// that stopped accepting.
func (r *Relay) Serve(ctx context.Context, l net.Listener) error {
	hctx, stopHealth := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); r.ups.checkLoop(hctx, r.cfg) }()
	go func() { defer bg.Done(); r.statsLoop(hctx) }()
	defer func() { stopHealth(); bg.Wait() }()

	r.log.Info("relaying", "listen", l.Addr().String(), "upstreams", r.cfg.Upstreams,
		"max_per_source", r.cfg.MaxPerSource, "client_addresses_logged", r.cfg.LogClientAddresses)
	errc := make(chan error, 1)
	go func() { errc <- r.acceptLoop(l) }()
	var err error
	select {
	case <-ctx.Done():
		l.Close()
		<-errc
	case err = <-errc:
		l.Close()
	}
	r.drain()
	if err != nil {
		return fmt.Errorf("relay: accepting: %w", err)
	}
	return nil
}

func (r *Relay) acceptLoop(l net.Listener) error {
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if transientAccept(err) {
				// Out of file descriptors and the like: back off.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				r.log.Warn("accepting", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		r.st.accepted.Add(1)
		tc, ok := c.(*net.TCPConn)
		if !ok {
			c.Close()
			continue
		}
		r.admit(tc)
	}
}

// transientAccept reports whether accepting may succeed again later.
func transientAccept(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// admit counts a new connection against the caps and starts relaying it.
func (r *Relay) admit(c *net.TCPConn) {
	src := sourceOf(c.RemoteAddr())
	if r.st.active.Load() >= int64(r.cfg.MaxConns) {
		r.st.refusedTotal.Add(1)
		abort(c)
		return
	}
	if !r.srcs.acquire(src) {
		r.st.refusedPerSource.Add(1)
		if r.cfg.LogClientAddresses {
			r.log.Debug("refused: too many connections from the source", "client", c.RemoteAddr().String())
		}
		abort(c)
		return
	}
	p := &pipe{r: r, client: c, src: src}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.srcs.release(src)
		abort(c)
		return
	}
	r.conns[p] = struct{}{}
	r.mu.Unlock()
	r.st.active.Add(1)
	go p.run()
}

// done forgets a finished connection.
func (r *Relay) done(p *pipe) {
	r.mu.Lock()
	delete(r.conns, p)
	r.mu.Unlock()
	r.srcs.release(p.src)
	r.st.active.Add(-1)
}

// drain waits up to the grace period for open connections to end, then
// closes the rest.
func (r *Relay) drain() {
	r.mu.Lock()
	r.closed = true
	n := len(r.conns)
	r.mu.Unlock()
	if n > 0 {
		r.log.Info("draining", "connections", n, "grace", r.cfg.Grace)
	}
	deadline := time.Now().Add(r.cfg.Grace)
	for time.Now().Before(deadline) {
		if r.st.active.Load() == 0 {
			break
		}
		time.Sleep(min(50*time.Millisecond, time.Until(deadline)))
	}
	r.mu.Lock()
	left := make([]*pipe, 0, len(r.conns))
	for p := range r.conns {
		left = append(left, p)
	}
	r.mu.Unlock()
	if len(left) > 0 {
		r.log.Info("closing connections still open after the grace period", "connections", len(left))
	}
	for _, p := range left {
		p.closeAll()
	}
	for r.st.active.Load() > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	r.log.Info("stopped", "stats", r.Stats().String())
}

func (r *Relay) statsLoop(ctx context.Context) {
	if r.cfg.StatsEvery < 0 {
		return
	}
	t := time.NewTicker(r.cfg.StatsEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.log.Info("counts", "stats", r.Stats().String(), "healthy_upstreams", len(r.ups.healthy()))
		}
	}
}

// String shows the counts on one line.
func (s Stats) String() string {
	return fmt.Sprintf("accepted=%d active=%d relayed=%d refused_per_source=%d refused_total=%d not_tls=%d handshake_timeouts=%d idle_timeouts=%d no_upstream=%d bytes_up=%d bytes_down=%d",
		s.Accepted, s.Active, s.Relayed, s.RefusedPerSource, s.RefusedTotal, s.NotTLS, s.HandshakeTimeouts, s.IdleTimeouts, s.NoUpstream, s.BytesUp, s.BytesDown)
}

// abort closes c at once with a reset, so that a refused connection
// costs the relay no TIME_WAIT state.
func abort(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}
