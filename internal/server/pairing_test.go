package server

import (
	"context"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/adminapi"
	anomv1 "anom/proto/anom/v1"
)

func publishFrame(req []byte) *anomv1.Frame {
	return &anomv1.Frame{Body: &anomv1.Frame_PublishPairing{PublishPairing: &anomv1.PublishPairing{Request: req}}}
}

func fetchFrame(code string) *anomv1.Frame {
	return &anomv1.Frame{Body: &anomv1.Frame_FetchPairing{FetchPairing: &anomv1.FetchPairing{Code: code}}}
}

// A pairing request published before authentication is kept under its
// short code, in the store (it survives a restart), for the user's own
// devices and the admin to fetch.
func TestPairingPublishAndFetch(t *testing.T) {
	// The test sweeps by hand: a background pass every 50 ms could
	// remove the expired request before the test fetches it.
	n := newNetwork(t, func(c *Config) { c.SweepInterval = time.Hour })
	codes := n.codes(2, 1)
	alice := n.activate("alice", codes[0])
	bob := n.activate("bob", codes[1])

	k := pairing(t, "alice")
	c := n.dial()
	c.hello()
	r := c.call(publishFrame(k.req.Encode()))
	pp := r.GetPairingPublished()
	if pp == nil || pp.GetCode() != k.req.ShortCode() {
		t.Fatalf("publishing: %v, want code %s", r, k.req.ShortCode())
	}
	if exp := time.UnixMilli(int64(pp.GetExpiresAtMs())); exp.Sub(n.clock.Now()) > pairingTTL || exp.Sub(n.clock.Now()) < pairingTTL-time.Minute {
		t.Fatalf("expires at %v", exp)
	}
	// One per connection.
	if r := c.call(publishFrame(pairing(t, "alice").req.Encode())); code(r) != anomv1.ErrorCode_ERROR_CODE_LIMIT_EXCEEDED {
		t.Fatalf("a second publication on a connection: %v", r)
	}
	// Malformed or oversized requests are refused.
	for _, bad := range []struct {
		req  []byte
		want anomv1.ErrorCode
	}{
		{[]byte{1, 2, 3}, anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{make([]byte, identity.MaxPairingRequestSize+1), anomv1.ErrorCode_ERROR_CODE_TOO_LARGE},
	} {
		c := n.dial()
		if r := c.call(publishFrame(bad.req)); code(r) != bad.want {
			t.Fatalf("publishing %d bytes: %v, want %v", len(bad.req), r, bad.want)
		}
	}
	// An activated device has nothing to publish.
	if r := alice.call(publishFrame(pairing(t, "alice").req.Encode())); code(r) != anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("publishing after authentication: %v", r)
	}
	// Fetching needs authentication.
	if r := n.dial().call(fetchFrame(pp.GetCode())); code(r) != anomv1.ErrorCode_ERROR_CODE_UNAUTHENTICATED {
		t.Fatalf("fetching before authentication: %v", r)
	}

	n.restart()
	alice, _ = n.connect(alice)
	bob, _ = n.connect(bob)
	got := alice.must(fetchFrame(pp.GetCode())).GetPairing()
	req, err := identity.DecodePairingRequest(got.GetRequest())
	if err != nil || req.Fingerprint() != k.req.Fingerprint() {
		t.Fatalf("fetched %v (%v), want alice's new device", req, err)
	}
	if r := bob.call(fetchFrame(pp.GetCode())); code(r) != anomv1.ErrorCode_ERROR_CODE_NOT_FOUND {
		t.Fatalf("bob fetching alice's pairing: %v", r)
	}

	// The admin fetches it by the short code, then approves the long one.
	ctx := context.Background()
	ans, err := n.adminClient(t).Do(ctx, adminapi.OpPairing, []byte(pp.GetCode()))
	if err != nil {
		t.Fatal(err)
	}
	if ans.Approval == nil || ans.Approval.Username != "alice" || ans.Approval.Fingerprint != k.req.Fingerprint() || ans.Approval.Request != k.req.Code() {
		t.Fatalf("admin pairing answer %+v", ans.Approval)
	}
	if _, err := n.adminClient(t).Do(ctx, adminapi.OpPairing, []byte("0000-0000-00")); remoteCode(err) != anomv1.ErrorCode_ERROR_CODE_NOT_FOUND {
		t.Fatalf("admin fetching an unknown code: %v", err)
	}
	if _, err := n.adminClient(t).Do(ctx, adminapi.OpApprove, []byte(ans.Approval.Request)); err != nil {
		t.Fatal(err)
	}
	if r, _ := n.tryActivate("alice", k, nil); r.GetError() != nil {
		t.Fatalf("activating after the admin's approval: %v", r.GetError())
	}

	// Past ten minutes: expired, then swept.
	n.clock.Advance(pairingTTL)
	if r := alice.call(fetchFrame(pp.GetCode())); code(r) != anomv1.ErrorCode_ERROR_CODE_EXPIRED {
		t.Fatalf("fetching an expired code: %v", r)
	}
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.srv.st.Get(ctx, bucketPairings, pp.GetCode()); err == nil {
		t.Fatal("an expired pairing request was not swept")
	}
	// Its code may be published again once expired.
	k2 := pairing(t, "alice")
	if _, err := n.srv.PublishPairing(ctx, k2.req.Encode()); err != nil {
		t.Fatal(err)
	}
	n.clock.Advance(pairingTTL)
	if _, err := n.srv.PublishPairing(ctx, k2.req.Encode()); err != nil {
		t.Fatalf("republishing an expired, unswept code: %v", err)
	}
	if _, err := n.srv.PublishPairing(ctx, k2.req.Encode()); remoteOrLocal(err) != anomv1.ErrorCode_ERROR_CODE_EXISTS {
		t.Fatalf("publishing under a code in use: %v", err)
	}
}

func remoteOrLocal(err error) anomv1.ErrorCode {
	if e, ok := err.(*Error); ok {
		return e.Code
	}
	return anomv1.ErrorCode_ERROR_CODE_UNSPECIFIED
}

// TestAttackPairingPublishFlood: an outsider publishing pairing requests
// (each holds a record for ten minutes) is limited per source address,
// with the failed activations: past the allowance its publications, and
// its activations, are refused; other sources are not held up.
func TestAttackPairingPublishFlood(t *testing.T) {
	n := newNetwork(t, func(c *Config) {
		c.Limits.FailedActivationBurst = 3
		c.Limits.FailedActivationsPerMinute = 1
	})
	codes := n.codes(1, 12)
	for i := range 3 {
		if r := n.dialFrom("127.0.0.2").call(publishFrame(pairing(t, "alice").req.Encode())); r.GetPairingPublished() == nil {
			t.Fatalf("publication %d: %v", i, r)
		}
	}
	if r := n.dialFrom("127.0.0.2").call(publishFrame(pairing(t, "alice").req.Encode())); code(r) != anomv1.ErrorCode_ERROR_CODE_RATE_LIMITED || r.GetError().GetRetryAfterMs() == 0 {
		t.Fatalf("publication past the allowance: %v", r)
	}
	if e := n.dialFrom("127.0.0.2").tryActivate(codes[0].String(), "carol"); e.GetCode() != anomv1.ErrorCode_ERROR_CODE_RATE_LIMITED {
		t.Fatalf("activation from the flooding source: %v", e)
	}
	if r := n.dialFrom("127.0.0.3").call(publishFrame(pairing(t, "alice").req.Encode())); r.GetPairingPublished() == nil {
		t.Fatalf("publication from another source: %v", r)
	}
	n.clock.Advance(time.Minute + time.Second)
	if r := n.dialFrom("127.0.0.2").call(publishFrame(pairing(t, "alice").req.Encode())); r.GetPairingPublished() == nil {
		t.Fatalf("publication after the wait: %v", r)
	}
}
