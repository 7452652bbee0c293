package escrow

import (
	"bytes"
	"errors"
	"testing"
)

// TestEncodeRequest: a request assembled from its records' encodings is
// byte for byte Request.MarshalBinary, and RequestHash of those bytes is
// Request.Hash; the bounds hold as in MarshalBinary.
func TestEncodeRequest(t *testing.T) {
	f := newFixture(t, 2, 3)
	w := f.warrant(t, nil)
	req := &Request{Warrant: w}
	var raws [][]byte
	for i := range 5 {
		rec := f.record(t, f.meta("dev-alice", "g", uint32(i), t0), "message", t0)
		req.Records = append(req.Records, rec)
		rb, err := rec.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, rb)
	}
	want, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := EncodeRequest(w, raws)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("EncodeRequest differs from MarshalBinary (err %v)", err)
	}
	h, err := req.Hash()
	if err != nil || RequestHash(got) != h {
		t.Fatalf("RequestHash(bytes) != Request.Hash (err %v)", err)
	}
	if _, err := EncodeRequest(w, nil); err == nil {
		t.Fatal("EncodeRequest of no records succeeded")
	}
	if _, err := EncodeRequest(nil, raws); !errors.Is(err, ErrInvalidWarrant) {
		t.Fatalf("EncodeRequest without a warrant: %v", err)
	}
	if _, err := EncodeRequest(w, [][]byte{{}}); err == nil {
		t.Fatal("EncodeRequest of an empty record succeeded")
	}
}

// TestAttackAnswerForOtherBytes is the archive operator's seat: answers
// bound to the bytes of one request open that request only. Reusing them
// for another request (other records, the same records in another order,
// or a subset), or claiming another request's bytes for the same records,
// is refused.
func TestAttackAnswerForOtherBytes(t *testing.T) {
	f := newFixture(t, 2, 3)
	w := f.warrant(t, nil)
	var recs []*ServerRecord
	for i := range 4 {
		recs = append(recs, f.record(t, f.meta("dev-alice", "g", uint32(i), t0), "message", t0))
	}
	asked := &Request{Warrant: w, Records: recs[:3]}
	ab, err := asked.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	hash := RequestHash(ab)
	var resps []*Response
	for i := range 2 {
		r, err := f.keyholder(i).AnswerHashed(asked, hash, t0, nil)
		if err != nil {
			t.Fatal(err)
		}
		resps = append(resps, r)
	}
	if _, err := OpenHashed(f.policy, asked, hash, resps); err != nil {
		t.Fatalf("the answered request does not open: %v", err)
	}
	others := map[string]*Request{
		"another record":      {Warrant: w, Records: []*ServerRecord{recs[0], recs[1], recs[3]}},
		"reordered":           {Warrant: w, Records: []*ServerRecord{recs[1], recs[0], recs[2]}},
		"a subset":            {Warrant: w, Records: recs[:2]},
		"the asked plus more": {Warrant: w, Records: recs},
	}
	for name, other := range others {
		ob, err := other.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		// With its own bytes' hash: the answers are bound to other bytes.
		if pts, err := OpenHashed(f.policy, other, RequestHash(ob), resps); err == nil {
			t.Fatalf("%s: opened %d records with answers to another request", name, len(pts))
		}
		// Passed off under the asked bytes' hash: the partials do not fit
		// its records.
		if pts, err := OpenHashed(f.policy, other, hash, resps); err == nil {
			t.Fatalf("%s: opened %d records under the asked request's hash", name, len(pts))
		}
	}
	// The asked records under another hash: refused too.
	if _, err := OpenHashed(f.policy, asked, RequestHash(append(ab, 0)), resps); !errors.Is(err, ErrNotEnoughPartials) {
		t.Fatalf("asked records under another hash: %v", err)
	}
}
