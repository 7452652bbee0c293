package server

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/translog"
	anomv1 "anom/proto/anom/v1"
)

// Attacks on the failed-activation rate limiter (preauth.go) by an
// outsider who holds many addresses (issue 8, finding 4).

// v6Source is the source of an address in 2001:db8::/32 whose 3rd and
// 4th 16-bit groups are site and subnet.
func v6Source(p32 string, site, subnet int) netip.Addr {
	return sourceOf(fmt.Sprintf("[%s:%x:%x::1]:443", p32, site, subnet))
}

// spread makes one attempt from each source in turn, as the attacker
// does, over the minute starting at now (each attempt that is looked at
// fails), and returns how many were looked at.
func spread(l *activationLimiter, now time.Time, sources []netip.Addr) int {
	looked := 0
	step := time.Minute / time.Duration(len(sources))
	for i, src := range sources {
		t := now.Add(time.Duration(i) * step)
		if w, _ := l.check(src, t); w == 0 {
			looked++
			l.fail(src, t)
		}
	}
	return looked
}

// TestAttackActivationLimitIPv6Spread: failures were counted per IPv6
// /64, so the holder of one /48 (65,536 /64s) got a burst of 10 from each
// and then 6 a minute each, about 6,500 attempts a second. Every IPv6
// attempt now also passes a bucket for its /48 and one for its /32: one
// attempt from each of the 65,536 /64s of a /48 within a minute gets at
// most the /48's allowance looked at (30 + 12 a minute), one from each of
// 65,536 /48s of a /32 at most the /32's (100 + 60 a minute); other
// networks and IPv4 sources are not affected.
func TestAttackActivationLimitIPv6Spread(t *testing.T) {
	lim := Limits{}.withDefaults()
	now := time.Unix(1000, 0)

	l := newActivationLimiter(lim)
	var subnets []netip.Addr
	for i := range 1 << 16 {
		subnets = append(subnets, v6Source("2001:db8", 1, i))
	}
	looked := spread(l, now, subnets)
	most := lim.FailedActivationBurstPer48 + int(lim.FailedActivationsPerMinutePer48)
	t.Logf("one /48, one attempt from each of its 65,536 /64s in a minute: %d looked at (%.2f/s; was 65,536 in the first burst alone)", looked, float64(looked)/60)
	if looked > most || looked < lim.FailedActivationBurstPer48 {
		t.Fatalf("one /48 spread over 65,536 /64s had %d attempts looked at in a minute, want %d..%d (its /48 allowance)", looked, lim.FailedActivationBurstPer48, most)
	}
	later := now.Add(time.Minute)
	w, first, by := l.checkBy(v6Source("2001:db8", 1, 0xbeef), later)
	if w == 0 || by != netip.MustParsePrefix("2001:db8:1::/48") {
		t.Fatalf("a /64 of the limited /48 that never failed: wait %v, limited by %v; want refused by 2001:db8:1::/48", w, by)
	}
	if first {
		t.Fatal("a refusal of the /48 after it was refused reported as the first (logged again)")
	}
	for _, other := range []string{"[2001:db8:2::1]:443", "[2001:db9:1::1]:443", "192.0.2.1:443"} {
		if w, _ := l.check(sourceOf(other), later); w != 0 {
			t.Fatalf("%s, outside the limited /48, refused for %v", other, w)
		}
	}

	// Spread over the /48s of one /32: its bucket binds.
	l = newActivationLimiter(lim)
	var sites []netip.Addr
	for i := range 1 << 16 {
		sites = append(sites, v6Source("2001:db8", i, i))
	}
	looked = spread(l, now, sites)
	most = lim.FailedActivationBurstPer32 + int(lim.FailedActivationsPerMinutePer32)
	t.Logf("one /32, one attempt from each of 65,536 /48s in a minute: %d looked at (%.2f/s)", looked, float64(looked)/60)
	if looked > most || looked < lim.FailedActivationBurstPer32 {
		t.Fatalf("one /32 spread over 65,536 /48s had %d attempts looked at in a minute, want %d..%d (its /32 allowance)", looked, lim.FailedActivationBurstPer32, most)
	}
	if w, _ := l.check(sourceOf("[2001:db9::1]:443"), now.Add(time.Minute)); w != 0 {
		t.Fatalf("another /32 refused for %v", w)
	}
	if l.len() > lim.MaxFailedActivationSources {
		t.Fatalf("%d buckets, over the bound of %d", l.len(), lim.MaxFailedActivationSources)
	}
}

// TestAttackActivationTableFlood: the table of buckets held at most
// 65,536 sources and forgot one only once it was full again; an attacker
// failing a little from each of many addresses kept it full, and every
// source not in it then shared one bucket the attacker drained, so a new
// device activating from an address that never failed was refused. Now
// the least recently failed bucket is forgotten to make room, and a
// source without a bucket may always try. Shown on the limiter at its
// default size, and through the server with a small table.
func TestAttackActivationTableFlood(t *testing.T) {
	t.Run("limiter", func(t *testing.T) {
		lim := Limits{}.withDefaults()
		l := newActivationLimiter(lim)
		now := time.Unix(1000, 0)
		attacker := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
		n := lim.MaxFailedActivationSources + 1000
		for i := range n { // each address drains its bucket, and more
			for range lim.FailedActivationBurst + 1 {
				l.fail(attacker(i), now)
			}
		}
		l.sweep(now)
		if l.len() != lim.MaxFailedActivationSources {
			t.Fatalf("%d buckets after the flood, want the table full (%d)", l.len(), lim.MaxFailedActivationSources)
		}
		fresh := sourceOf("192.0.2.1:443")
		for i := range lim.FailedActivationBurst {
			if w, _ := l.check(fresh, now); w != 0 {
				t.Fatalf("attempt %d from an address that had not used its burst, after the table was flooded: refused for %v", i+1, w)
			}
			l.fail(fresh, now)
		}
		if w, _ := l.check(fresh, now); w == 0 {
			t.Fatal("the new source is not limited after its own burst")
		}
		if w, _ := l.check(sourceOf("[2001:db8::1]:443"), now); w != 0 {
			t.Fatalf("a new IPv6 source refused for %v after the flood", w)
		}
		// The attacker's recent addresses keep their debt.
		if w, _ := l.check(attacker(n-1), now); w == 0 {
			t.Fatal("the attacker's latest address forgot its debt")
		}
	})
	t.Run("server", func(t *testing.T) {
		const table = 16
		n := newNetwork(t, func(c *Config) {
			c.Limits.MaxFailedActivationSources = table
			c.Limits.FailedActivationBurst = 1
			c.Limits.FailedActivationsPerMinute = 1
		})
		codes := n.codes(1, 12)
		bad := "0000-0000-0000-0000"
		for i := range table + 8 { // fill the table, then fail from more
			src := fmt.Sprintf("127.0.0.%d", 2+i)
			c := n.dialFrom(src)
			if e := c.tryActivate(bad, "probe"); e.GetCode() != anomv1.ErrorCode_ERROR_CODE_BAD_CODE {
				t.Fatalf("first attempt from %s: %v, want BAD_CODE", src, e)
			}
			if e := c.tryActivate(bad, "probe"); e.GetCode() != anomv1.ErrorCode_ERROR_CODE_RATE_LIMITED {
				t.Fatalf("second attempt from %s: %v, want RATE_LIMITED", src, e)
			}
		}
		if got := n.srv.activations.len(); got != table {
			t.Fatalf("%d buckets after the flood, want the table full (%d)", got, table)
		}
		if e := n.dialFrom("127.0.1.1").tryActivate(codes[0].String(), "alice"); e != nil {
			t.Fatalf("a new device from an address that never failed, after the table was flooded: %v", e)
		}
	})
}

// TestTreeHeadBeforeActivation: a device that has not authenticated may
// fetch the signed tree head once (to check, before it spends its
// activation code, that the server's key chains to the root its invite
// pins), and nothing more: a consistency proof or any other request needs
// authentication.
func TestTreeHeadBeforeActivation(t *testing.T) {
	n := newNetwork(t, nil)
	c := n.dial()
	c.hello()
	r := c.call(&anomv1.Frame{Body: &anomv1.Frame_GetTreeHead{GetTreeHead: &anomv1.GetTreeHead{}}})
	th := r.GetTreeHead_()
	if th == nil {
		t.Fatalf("no tree head before authentication: %v", r.GetError())
	}
	var sth translog.SignedTreeHead
	if err := sth.UnmarshalBinary(th.GetTreeHead()); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.VerifyTreeHead(n.root.Public(), sth, translog.SignedTreeHead{}); err != nil {
		t.Fatalf("the head does not chain to the network's root: %v", err)
	}
	other, _ := identity.GenerateRootKey(rand.Reader)
	if _, err := identity.VerifyTreeHead(other.Public(), sth, translog.SignedTreeHead{}); err == nil {
		t.Fatal("the head verifies under another root")
	}
	if r := c.call(&anomv1.Frame{Body: &anomv1.Frame_GetTreeHead{GetTreeHead: &anomv1.GetTreeHead{}}}); code(r) != anomv1.ErrorCode_ERROR_CODE_UNAUTHENTICATED {
		t.Fatalf("a second tree head before authentication: %v", r)
	}
	if r := c.call(&anomv1.Frame{Body: &anomv1.Frame_GetTreeHead{GetTreeHead: &anomv1.GetTreeHead{FromSize: 1}}}); code(r) != anomv1.ErrorCode_ERROR_CODE_UNAUTHENTICATED {
		t.Fatalf("consistency proof before authentication: %v", r)
	}
	if r := c.call(&anomv1.Frame{Body: &anomv1.Frame_ListGroups{ListGroups: &anomv1.ListGroups{}}}); code(r) != anomv1.ErrorCode_ERROR_CODE_UNAUTHENTICATED {
		t.Fatalf("list groups before authentication: %v", r)
	}
}
