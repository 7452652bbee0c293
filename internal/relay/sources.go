package relay

import (
	"net"
	"net/netip"
	"sync"
)

// sourceOf is the address a connection is counted under: its IPv4
// address, or the /64 of its IPv6 address (one subscriber's usual
// allocation). A connection with no IP address counts under the zero
// Addr.
func sourceOf(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// sources counts the open connections per source address.
type sources struct {
	max int
	mu  sync.Mutex
	by  map[netip.Addr]int
}

func newSources(max int) *sources { return &sources{max: max, by: map[netip.Addr]int{}} }

// acquire counts one more connection from src, unless it has max.
func (s *sources) acquire(src netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.by[src] >= s.max {
		return false
	}
	s.by[src]++
	return true
}

// release counts one connection from src less.
func (s *sources) release(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.by[src] <= 1 {
		delete(s.by, src)
		return
	}
	s.by[src]--
}
