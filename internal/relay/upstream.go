package relay

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// upstream is one server behind the relay.
type upstream struct {
	addr    string
	healthy atomic.Bool
	conns   atomic.Int64 // connections relayed to it now
}

// pool is the relay's upstreams.
type pool struct {
	ups  []*upstream
	next atomic.Uint64 // where ties start, for round robin among equals
	log  *slog.Logger
}

func newPool(addrs []string, log *slog.Logger) *pool {
	p := &pool{log: log}
	for _, a := range addrs {
		u := &upstream{addr: a}
		// Healthy until a check or a connection says otherwise, so the
		// relay serves from its first second.
		u.healthy.Store(true)
		p.ups = append(p.ups, u)
	}
	return p
}

// pick returns the healthy upstream with the fewest connections, not in
// tried, ties taken in turn; when no healthy one is left, an unhealthy
// one not tried (a health check may lag); nil when all were tried.
func (p *pool) pick(tried map[*upstream]bool) *upstream {
	start := int(p.next.Add(1))
	var best *upstream
	bestHealthy := false
	var bestConns int64
	for i := range p.ups {
		u := p.ups[(start+i)%len(p.ups)]
		if tried[u] {
			continue
		}
		h, n := u.healthy.Load(), u.conns.Load()
		if best == nil || h && !bestHealthy || h == bestHealthy && n < bestConns {
			best, bestHealthy, bestConns = u, h, n
		}
	}
	return best
}

// healthy returns the addresses of the healthy upstreams.
func (p *pool) healthy() []string {
	var out []string
	for _, u := range p.ups {
		if u.healthy.Load() {
			out = append(out, u.addr)
		}
	}
	return out
}

// mark records the outcome of a check or a connection attempt, logging
// a change.
func (p *pool) mark(u *upstream, err error) {
	if err == nil {
		if !u.healthy.Swap(true) {
			p.log.Info("upstream up", "upstream", u.addr)
		}
		return
	}
	if u.healthy.Swap(false) {
		p.log.Warn("upstream down", "upstream", u.addr, "err", err)
	}
}

// checkLoop checks every upstream at once and then every HealthEvery
// until ctx ends.
func (p *pool) checkLoop(ctx context.Context, cfg Config) {
	t := time.NewTicker(cfg.HealthEvery)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, u := range p.ups {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := check(ctx, u.addr, cfg)
				if ctx.Err() == nil {
					p.mark(u, err)
				}
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check tries upstream addr: a TCP connect, or with cfg.HealthTLS a
// whole TLS handshake (an anom server asks no client certificate; its
// own is not verified here, the devices pin it).
func check(ctx context.Context, addr string, cfg Config) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if !cfg.HealthTLS {
		return nil
	}
	host, _, _ := net.SplitHostPort(addr)
	tc := tls.Client(c, &tls.Config{
		ServerName: host,
		// Liveness only: whether the server's TLS stack answers. Trust
		// is the devices' business (they pin the network's CA).
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS12,
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	return tc.Close()
}
