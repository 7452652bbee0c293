package custodian_test

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"anom/escrow"
	"anom/internal/audit"
	"anom/internal/custodian"
)

// TestAnswerBoundToBytesSent: an envelope carrying its request as bytes
// (RequestBytes, as the archive sends its stored records) is answered
// bound to exactly those bytes, the custodian's audit log names their
// hash, and a parsed envelope's RequestHash is that of the bytes received.
func TestAnswerBoundToBytesSent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	recs := []*escrow.ServerRecord{
		f.net.Message(t, f.alice, grpA, t0.Add(time.Minute), []byte("one")),
		f.net.Message(t, f.alice, grpA, t0.Add(2*time.Minute), []byte("two")),
	}
	env := f.env(aliceWarrant(t, f), recs...)
	var raws [][]byte
	for _, r := range recs {
		rb, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, rb)
	}
	rb, err := escrow.EncodeRequest(env.Request.Warrant, raws)
	if err != nil {
		t.Fatal(err)
	}
	env.RequestBytes = rb
	want := escrow.RequestHash(rb)
	if h, err := env.RequestHash(); err != nil || h != want {
		t.Fatalf("RequestHash of an envelope with RequestBytes = %x, %v", h, err)
	}
	eb, err := env.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := custodian.ParseEnvelope(eb)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := parsed.RequestHash(); err != nil || h != want {
		t.Fatalf("RequestHash of the parsed envelope = %x, %v", h, err)
	}
	var resps []*escrow.Response
	for _, c := range f.cust[:2] {
		r, err := c.client.Ask(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		if r.RequestHash != want {
			t.Fatalf("answer bound to %x, want %x", r.RequestHash, want)
		}
		resps = append(resps, r)
		es, err := audit.Entries(ctx, c.store, custodian.AuditBucket, 0, 0)
		if err != nil || !strings.Contains(string(es[len(es)-2].Body), hex.EncodeToString(want[:])) {
			t.Fatalf("the custodian's log does not name the hash of the bytes sent: %v, %v", es, err)
		}
	}
	pts, err := escrow.OpenHashed(f.net.Policy.Policy, env.Request, want, resps)
	if err != nil || string(pts[0]) != "one" || string(pts[1]) != "two" {
		t.Fatalf("OpenHashed = %q, %v", pts, err)
	}
}

// TestAttackRequestBytesDifferFromRequest is the archive operator's seat:
// the bytes sent name one record, the envelope's Request another (bob's,
// outside the warrant). The custodians check and answer the bytes they
// received, which are in scope; the answers cannot open bob's record,
// under either hash.
func TestAttackRequestBytesDifferFromRequest(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	mine := f.net.Message(t, f.alice, grpA, t0.Add(time.Minute), []byte("alice's"))
	bobs := f.net.Message(t, f.bob, grpA, t0.Add(time.Minute), []byte("bob's secret"))
	env := f.env(aliceWarrant(t, f), bobs)
	rb, err := mine.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if env.RequestBytes, err = escrow.EncodeRequest(env.Request.Warrant, [][]byte{rb}); err != nil {
		t.Fatal(err)
	}
	var resps []*escrow.Response
	for _, c := range f.cust[:2] {
		r, err := c.client.Ask(ctx, env)
		if err != nil {
			t.Fatalf("the custodian refused the in-scope bytes it received: %v", err)
		}
		resps = append(resps, r)
	}
	sent := escrow.RequestHash(env.RequestBytes)
	if pts, err := escrow.OpenHashed(f.net.Policy.Policy, env.Request, sent, resps); err == nil {
		t.Fatalf("opened bob's record with answers to alice's: %q", pts)
	}
	if pts, err := escrow.Open(f.net.Policy.Policy, env.Request, resps); !errors.Is(err, escrow.ErrNotEnoughPartials) {
		t.Fatalf("opened bob's record with answers to alice's: %q, %v", pts, err)
	}
	// The answers open what was sent, and only that.
	pts, err := escrow.OpenHashed(f.net.Policy.Policy, &escrow.Request{Warrant: env.Request.Warrant, Records: []*escrow.ServerRecord{mine}}, sent, resps)
	if err != nil || string(pts[0]) != "alice's" {
		t.Fatalf("the bytes sent do not open: %q, %v", pts, err)
	}
}
