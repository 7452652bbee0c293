package server

import (
	"crypto/tls"
	"runtime"
	"testing"
	"time"

	"anom/identity"
	anomv1 "anom/proto/anom/v1"
)

func TestRateLimitersKeptWhileHeldOrNotFull(t *testing.T) {
	r := newRateLimiters(Limits{RequestsPerSecond: 1, RequestBurst: 2, ClaimsPerMinute: 60}.withDefaults())
	now := time.Unix(1000, 0)
	id := identity.DeviceID{1}
	a := r.acquire(id)
	b := r.acquire(id)
	if a != b {
		t.Fatal("two sessions of a device got different limits")
	}
	if ok, _ := allow(a.requests, now); !ok {
		t.Fatal("first request refused")
	}
	r.release(id, a, now)
	r.sweep(now.Add(time.Hour))
	if r.len() != 1 {
		t.Fatal("limits forgotten while a session holds them")
	}
	r.release(id, b, now)
	if r.len() != 1 {
		t.Fatal("limits with a spent token forgotten: reconnecting would reset them")
	}
	if c := r.acquire(id); c != a {
		t.Fatal("a new session did not get the device's spent limits")
	} else {
		r.release(id, c, now)
	}
	r.sweep(now.Add(500 * time.Millisecond))
	if r.len() != 1 {
		t.Fatal("limits forgotten before their buckets are full")
	}
	r.sweep(now.Add(2 * time.Second))
	if r.len() != 0 {
		t.Fatal("full limits that no session holds are kept")
	}
	// Released full: forgotten at once.
	d := r.acquire(id)
	r.release(id, d, now)
	if r.len() != 0 {
		t.Fatal("unused limits kept after release")
	}
}

// TestIdleSessionHoldsNoRateLimits: a session waiting for its next
// message holds no rate limits and no TLS read buffers, yet its device's
// limits still apply across idle spells, and are forgotten once full.
func TestIdleSessionHoldsNoRateLimits(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sessions go idle in the poller on Linux only")
	}
	n := newNetwork(t, func(c *Config) {
		c.Limits.RequestsPerSecond = 0.001
		c.Limits.RequestBurst = 3
	})
	dev := n.activate("dora", n.codes(1, 1)[0])
	sessions := n.srv.hub.of(dev.cert.DeviceID)
	if len(sessions) != 1 {
		t.Fatalf("%d sessions", len(sessions))
	}
	s := sessions[0]
	waitIdle := func() {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for {
			s.inMu.Lock()
			held := s.limiter != nil
			s.inMu.Unlock()
			if !held {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("idle session still holds its rate limits")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	list := func() *anomv1.Frame {
		return &anomv1.Frame{Body: &anomv1.Frame_ListGroups{ListGroups: &anomv1.ListGroups{}}}
	}
	tc, ok := s.conn.(*tls.Conn)
	if !ok {
		t.Fatalf("session connection is a %T", s.conn)
	}
	for i := range 3 {
		dev.must(list())
		waitIdle()
		if raw, hand := tlsBufferCaps(tc); tlsBuffers.ok && (raw != 0 || hand != 0) {
			t.Fatalf("idle session's TLS connection keeps buffers of %d and %d bytes", raw, hand)
		}
		if i == 0 && n.srv.rates.len() != 1 {
			t.Fatalf("%d devices with limits; want the one with a spent token", n.srv.rates.len())
		}
	}
	if r := dev.call(list()); code(r) != anomv1.ErrorCode_ERROR_CODE_RATE_LIMITED {
		t.Fatalf("fourth request within the burst of 3: %v", r)
	}
	waitIdle()
	// Refilled (an hour later at 0.001/s is 3.6 tokens): forgotten by the
	// sweep, and a request passes.
	n.clock.Advance(time.Hour)
	deadline := time.Now().Add(3 * time.Second)
	for n.srv.rates.len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("full limits of an idle device not forgotten")
		}
		time.Sleep(10 * time.Millisecond)
	}
	dev.must(list())
}

// TestSessionsShareSignerCertificate: authenticated sessions point to one
// copy of the directory key certificate their device certificates carry
// (about 240 bytes each otherwise).
func TestSessionsShareSignerCertificate(t *testing.T) {
	n := newNetwork(t, nil)
	codes := n.codes(2, 1)
	a := n.activate("fay", codes[0])
	b := n.activate("gus", codes[1])
	// Sessions that authenticate with the certificates the devices
	// present (each decoded from the wire).
	for _, dev := range []*client{a, b} {
		if _, r := n.connect(dev); r.GetAuthenticated() == nil {
			t.Fatalf("authentication: %v", r)
		}
	}
	sa, sb := n.srv.hub.of(a.cert.DeviceID), n.srv.hub.of(b.cert.DeviceID)
	if len(sa) != 2 || len(sb) != 2 {
		t.Fatalf("%d and %d sessions", len(sa), len(sb))
	}
	if sa[1].cert.Signer == nil || sa[1].cert.Signer != sb[1].cert.Signer || sa[1].cert.Signer != sa[0].cert.Signer {
		t.Fatal("two sessions keep copies of their directory key certificate of their own")
	}
}

func TestSignerSet(t *testing.T) {
	var s signerSet
	if s.intern(nil) != nil {
		t.Fatal("nil interned as a certificate")
	}
	mk := func(serial uint64) *identity.OnlineKeyCertificate {
		return &identity.OnlineKeyCertificate{Role: identity.RoleDirectory, Name: "server", Key: make([]byte, 32),
			NotBefore: time.Unix(0, 0), NotAfter: time.Unix(100, 0), Serial: serial, Signature: make([]byte, 64)}
	}
	first := mk(1)
	if s.intern(first) != first || s.intern(mk(1)) != first {
		t.Fatal("an equal certificate did not get the first copy")
	}
	if other := mk(2); s.intern(other) != other {
		t.Fatal("another certificate got the first one's copy")
	}
	for i := range 2 * maxSigners {
		s.intern(mk(uint64(10 + i)))
	}
	if len(s.certs) != maxSigners {
		t.Fatalf("the set holds %d certificates; at most %d", len(s.certs), maxSigners)
	}
	if late := mk(1000); s.intern(late) != late || s.intern(mk(1)) != first {
		t.Fatal("a full set changed what it hands out")
	}
}
