package escrow

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/cloudflare/circl/group"
)

// TestAnswerAndOpen is the whole flow: two custodians answer a request, the
// archive verifies their answers and opens every record; one answer is not
// enough.
func TestAnswerAndOpen(t *testing.T) {
	f := newFixture(t, 2, 3)
	texts := []string{"first", "second", "third"}
	req := &Request{Warrant: f.warrant(t, nil)}
	for i, s := range texts {
		req.Records = append(req.Records, f.record(t, f.meta("dev-alice", "g", uint32(i), t0), s, t0))
	}
	// The request travels as bytes.
	rb, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if req, err = ParseRequest(rb); err != nil {
		t.Fatal(err)
	}
	var resps []*Response
	for _, i := range []int{2, 0} {
		resp, err := f.keyholder(i).Answer(req, t0, nil)
		if err != nil {
			t.Fatalf("custodian %d: %v", i, err)
		}
		b, _ := resp.MarshalBinary()
		if resp, err = ParseResponse(b); err != nil {
			t.Fatal(err)
		}
		if err := VerifyResponse(f.policy, req, resp); err != nil {
			t.Fatalf("VerifyResponse(%d): %v", i, err)
		}
		resps = append(resps, resp)
	}
	// The archive's one-call path gives the same plaintexts; one response
	// is not enough, nor are two from the same custodian.
	opened, err := Open(f.policy, req, resps)
	if err != nil || len(opened) != len(texts) {
		t.Fatalf("Open = %q, %v", opened, err)
	}
	for j := range texts {
		if string(opened[j]) != texts[j] {
			t.Fatalf("Open record %d = %q", j, opened[j])
		}
	}
	if _, err := Open(f.policy, req, resps[:1]); !errors.Is(err, ErrNotEnoughPartials) {
		t.Fatalf("Open with one response: %v", err)
	}
	if _, err := Open(f.policy, req, []*Response{resps[0], resps[0]}); !errors.Is(err, ErrDuplicatePartial) {
		t.Fatalf("Open with one custodian twice: %v", err)
	}

	// Answers are bound to their request and signed by their custodian.
	other := &Request{Warrant: req.Warrant, Records: req.Records[:1]}
	if err := VerifyResponse(f.policy, other, resps[0]); err == nil {
		t.Fatal("a response verified against another request")
	}
	forged := *resps[0]
	forged.Index = 2

	if err := VerifyResponse(f.policy, req, &forged); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("response relabelled to another custodian: %v", err)
	}
	tampered := *resps[1]
	tampered.D = append([]group.Element{}, resps[1].D...)
	tampered.D[1] = grp.NewElement().Add(tampered.D[1], grp.Generator())
	b, _ := tampered.signedBytes()
	tampered.Signature = ed25519.Sign(f.custKeys[0], append([]byte(ctxAnswerSig), b...))
	if err := VerifyResponse(f.policy, req, &tampered); !errors.Is(err, ErrBadProof) {
		t.Fatalf("signed response with a wrong partial: %v", err)
	}
	// Two records' partials swapped, re-signed: the batch proof fails.
	swapped := *resps[1]
	swapped.D = append([]group.Element{}, resps[1].D...)
	swapped.D[0], swapped.D[2] = swapped.D[2], swapped.D[0]
	b, _ = swapped.signedBytes()
	swapped.Signature = ed25519.Sign(f.custKeys[0], append([]byte(ctxAnswerSig), b...))
	if err := VerifyResponse(f.policy, req, &swapped); !errors.Is(err, ErrBadProof) {
		t.Fatalf("signed response with swapped partials: %v", err)
	}
	// Open skips the bad response and still opens with the two good ones.
	good, err := Open(f.policy, req, []*Response{&tampered, resps[0], resps[1]})
	if err != nil || string(good[2]) != texts[2] {
		t.Fatalf("Open with one bad response first = %q, %v", good, err)
	}
}

func TestAnswerRefuses(t *testing.T) {
	f := newFixture(t, 2, 3)
	alice := f.meta("dev-alice", "g", 1, t0)
	good := func() *ServerRecord { return f.record(t, alice, "secret", t0) }

	relabelled := good()
	relabelled.Signed.Record.Metadata.SenderDevice = []byte("dev-bob")
	altered := good()
	altered.Signed.Record.Ciphertext = append([]byte{}, altered.Signed.Record.Ciphertext...)
	altered.Signed.Record.Ciphertext[0] ^= 1
	badServerSig := good()
	badServerSig.Signature = append([]byte{}, badServerSig.Signature...)
	badServerSig.Signature[5] ^= 1
	resequenced := good()
	resequenced.Sequence += 100
	unknownServer := good()
	unknownServer.ServerID = []byte("srv-9")
	// A record the server countersigned but whose device key is not alice's.
	forgedDevice, _ := Countersign(func() *SignedRecord {
		rec, _ := Seal(f.policy.EscrowKey, f.exporter, alice, []byte("forged"))
		s, _ := SignRecord(rec, testKey("not alice"))
		return s
	}(), []byte("srv-1"), t0, 77, f.server)
	unknownDevice := f.record(t, f.meta("dev-mallory", "g", 1, t0), "x", t0)

	tests := []struct {
		name    string
		records []*ServerRecord
		warrant *SignedWarrant
		now     time.Time
		revoked map[string]bool
		holder  func(*Keyholder)
		want    error
	}{
		{name: "in scope", records: []*ServerRecord{good()}},
		{name: "bob's record under alice's warrant", records: []*ServerRecord{good(), f.record(t, f.meta("dev-bob", "g", 1, t0), "b", t0)}, want: ErrOutOfScope},
		{name: "claimed time before range", records: []*ServerRecord{f.record(t, f.meta("dev-alice", "g", 2, t0.Add(-2*time.Hour)), "x", t0)}, want: ErrOutOfTimeRange},
		{name: "server time after range", records: []*ServerRecord{f.record(t, alice, "x", t0.Add(90*time.Minute))}, want: ErrOutOfTimeRange},
		{name: "claimed time at range end", records: []*ServerRecord{f.record(t, f.meta("dev-alice", "g", 3, t0.Add(time.Hour)), "x", t0)}, want: ErrOutOfTimeRange},
		{name: "expired warrant", records: []*ServerRecord{good()}, now: t0.Add(24 * time.Hour), want: ErrWarrantExpired},
		{name: "revoked warrant", records: []*ServerRecord{good()}, revoked: map[string]bool{"W-2026-001": true}, want: ErrWarrantRevoked},
		{name: "unknown issuer", records: []*ServerRecord{good()}, warrant: f.warrant(t, func(w *Warrant) { w.Issuer = "Sheriff" }), want: ErrUnknownIssuer},
		{name: "forged warrant signature", records: []*ServerRecord{good()}, warrant: f.warrant(t, func(w *Warrant) { w.Issuer = "Compliance" }), want: ErrBadSignature},
		{name: "relabelled record", records: []*ServerRecord{relabelled}, want: ErrBadSignature},
		{name: "altered ciphertext", records: []*ServerRecord{altered}, want: ErrBadSignature},
		{name: "bad server signature", records: []*ServerRecord{badServerSig}, want: ErrBadSignature},
		{name: "changed sequence", records: []*ServerRecord{resequenced}, want: ErrBadSignature},
		{name: "unknown server", records: []*ServerRecord{unknownServer}, want: ErrUnknownKey},
		{name: "record not signed by the device", records: []*ServerRecord{forgedDevice}, want: ErrBadSignature},
		{name: "unknown device", records: []*ServerRecord{unknownDevice}, want: ErrUnknownKey},
		{name: "no records", records: nil, want: ErrMalformed},
		{name: "share of another custodian", records: []*ServerRecord{good()}, holder: func(h *Keyholder) { h.Share = f.dealing.Shares[1] }, want: ErrShareMismatch},
		{name: "share not in policy", records: []*ServerRecord{good()}, holder: func(h *Keyholder) { h.Share.Index = 7 }, want: ErrUnknownCustodian},
		{name: "signing key of another custodian", records: []*ServerRecord{good()}, holder: func(h *Keyholder) { h.Key = f.custKeys[1] }, want: ErrShareMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sw := tt.warrant
			if sw == nil {
				sw = f.warrant(t, nil)
			}
			now := tt.now
			if now.IsZero() {
				now = t0
			}
			h := f.keyholder(0)
			if tt.holder != nil {
				tt.holder(h)
			}
			resp, err := h.Answer(&Request{Warrant: sw, Records: tt.records}, now, tt.revoked)
			if tt.want == nil {
				if err != nil || len(resp.D) != len(tt.records) {
					t.Fatalf("Answer = %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || resp != nil {
				t.Fatalf("Answer = %v, %v; want %v", resp, err, tt.want)
			}
		})
	}
}
