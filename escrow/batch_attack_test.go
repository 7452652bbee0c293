package escrow

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/group"
)

// Attacks on the batch checks: one bad item hidden among many good ones
// must be caught as surely as when it is alone, and named.

// batchOfAlice is a request under the fixture's warrant for n of alice's
// records, with their plaintexts.
func batchOfAlice(t *testing.T, f *fixture, n int) (*Request, []string) {
	t.Helper()
	req := &Request{Warrant: f.warrant(t, nil)}
	var pts []string
	for i := range n {
		pt := fmt.Sprintf("alice's message %d", i)
		req.Records = append(req.Records, f.record(t, f.meta("dev-alice", "g", uint32(i), t0), pt, t0))
		pts = append(pts, pt)
	}
	return req, pts
}

// resign signs resp again with custodian i's key, as that custodian would
// after changing it.
func resign(t *testing.T, f *fixture, i int, resp *Response) {
	t.Helper()
	b, err := resp.signedBytes()
	if err != nil {
		t.Fatal(err)
	}
	resp.Signature = ed25519.Sign(f.custKeys[i], append([]byte(ctxAnswerSig), b...))
}

// reprove replaces resp's proof with one made by custodian i's prover over
// resp's (possibly changed) partials, as a custodian trying its best would.
func reprove(t *testing.T, f *fixture, i int, req *Request, resp *Response) {
	t.Helper()
	var Rs []group.Element
	for _, rec := range req.Records {
		Rs = append(Rs, rec.Signed.Record.R)
	}
	var err error
	if resp.Proof, err = proveBatch(seededRand("reprove"), f.dealing.Shares[i], resp.RequestHash[:], Rs, encodeAll(Rs), encodeAll(resp.D)); err != nil {
		t.Fatal(err)
	}
}

// answers returns the honest responses of custodians 0, 1 and 2.
func answers(t *testing.T, f *fixture, req *Request) []*Response {
	t.Helper()
	var out []*Response
	for i := range 3 {
		r, err := f.keyholder(i).Answer(req, t0, nil)
		if err != nil {
			t.Fatalf("custodian %d: %v", i, err)
		}
		out = append(out, r)
	}
	return out
}

// copyResponse returns a copy of r whose D can be changed alone.
func copyResponse(r *Response) *Response {
	c := *r
	c.D = append([]group.Element(nil), r.D...)
	c.dEnc = nil
	return &c
}

// expectRefused checks that the archive refuses bad, custodian 1's (index
// 1) changed answer, naming that custodian; that it still opens every record
// with the two honest answers; and that with only one honest answer beside
// it, Open names custodian 1's partials as rejected.
func expectRefused(t *testing.T, f *fixture, req *Request, pts []string, bad *Response, honest []*Response) {
	t.Helper()
	err := VerifyResponse(f.policy, req, bad)
	if err == nil || !strings.Contains(err.Error(), f.policy.Custodians[0].Name) {
		t.Fatalf("changed answer accepted or custodian not named: %v", err)
	}
	got, err := Open(f.policy, req, []*Response{bad, honest[0], honest[1]})
	if err != nil {
		t.Fatalf("with two honest answers: %v", err)
	}
	for i, pt := range got {
		if string(pt) != pts[i] {
			t.Fatalf("record %d opened to %q", i, pt)
		}
	}
	_, err = Open(f.policy, req, []*Response{bad, honest[0]})
	var ne *NotEnoughPartialsError
	if !errors.As(err, &ne) || len(ne.Rejected) != 1 || ne.Rejected[0].Index != 1 {
		t.Fatalf("with one honest answer: %v", err)
	}
}

// TestAttackBadPartialHiddenInBatch, from the seat of a custodian: among the
// 64 partials of its answer it changes one (or two, so that the errors
// cancel in an unweighted sum), at the start, middle or end, keeps or remakes
// the proof with its own share and signs the answer. The batched proof
// fails, the archive names the custodian and opens every record with the
// others' partials.
func TestAttackBadPartialHiddenInBatch(t *testing.T) {
	f := newFixture(t, 2, 3)
	const n = 64
	req, pts := batchOfAlice(t, f, n)
	honest := answers(t, f, req)
	if err := VerifyResponse(f.policy, req, honest[0]); err != nil {
		t.Fatalf("control: the honest answer is refused: %v", err)
	}
	E := grp.NewElement().MulGen(grp.NewScalar().SetUint64(12345))
	changes := map[string]func(D []group.Element, j int){
		"off by a point": func(D []group.Element, j int) { D[j] = grp.NewElement().Add(D[j], E) },
		"errors that cancel": func(D []group.Element, j int) {
			k := (j + 1) % n
			D[j] = grp.NewElement().Add(D[j], E)
			D[k] = grp.NewElement().Add(D[k], grp.NewElement().Neg(E))
		},
		"two records' partials swapped": func(D []group.Element, j int) {
			k := (j + 1) % n
			D[j], D[k] = D[k], D[j]
		},
		"another record's partial":    func(D []group.Element, j int) { D[j] = D[(j+n/3)%n] },
		"another custodian's partial": func(D []group.Element, j int) { D[j] = honest[1].D[j] },
	}
	for name, change := range changes {
		for _, j := range []int{0, n / 2, n - 1} {
			for _, remade := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s at %d, proof remade %v", name, j, remade), func(t *testing.T) {
					bad := copyResponse(honest[0])
					change(bad.D, j)
					if remade {
						reprove(t, f, 0, req, bad)
					}
					resign(t, f, 0, bad)
					expectRefused(t, f, req, pts, bad, honest[1:])
				})
			}
		}
	}
}

// TestAttackProofTransplantedInBatch, from the seat of a custodian (or of
// anyone replaying its answers): an honest batched proof moved to another
// batch. The answer to a request with one record replaced, with the other
// custodian's proof, or with its partials for a shorter request, is
// refused, even with the request hash rewritten and the answer signed
// again by the custodian.
func TestAttackProofTransplantedInBatch(t *testing.T) {
	f := newFixture(t, 2, 3)
	const n = 32
	req, pts := batchOfAlice(t, f, n)
	honest := answers(t, f, req)

	// A request with record 7 replaced by another of alice's records.
	other := &Request{Warrant: req.Warrant, Records: append([]*ServerRecord(nil), req.Records...)}
	other.Records[7] = f.record(t, f.meta("dev-alice", "g", 1000, t0), "another", t0)
	otherPts := append([]string(nil), pts...)
	otherPts[7] = "another"
	otherHonest := answers(t, f, other)
	if err := VerifyResponse(f.policy, other, honest[0]); err == nil {
		t.Fatal("an answer to another request is accepted")
	}
	// The custodian rebinds it to the other request and gives the right
	// partial for the new record, keeping the old proof.
	moved := copyResponse(honest[0])
	moved.RequestHash = otherHonest[0].RequestHash
	moved.D[7] = otherHonest[0].D[7]
	resign(t, f, 0, moved)
	expectRefused(t, f, other, otherPts, moved, otherHonest[1:])

	// Custodian 2's proof on custodian 1's partials.
	swapped := copyResponse(honest[0])
	swapped.Proof = honest[1].Proof
	resign(t, f, 0, swapped)
	expectRefused(t, f, req, pts, swapped, honest[1:])

	// The proof of a request of the first n-1 records, on the full one.
	short := &Request{Warrant: req.Warrant, Records: req.Records[:n-1]}
	shortAns, err := f.keyholder(0).Answer(short, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	longer := copyResponse(honest[0])
	longer.Proof = shortAns.Proof
	resign(t, f, 0, longer)
	expectRefused(t, f, req, pts, longer, honest[1:])
}

// TestAttackOtherScopeMixedInBatch, from the seat of the archive's operator:
// one record outside the warrant's scope (bob's, under a warrant for
// alice), or alice's record relabelled as bob's, slipped among 63 of
// alice's at the start, middle or end of a request. Every custodian
// refuses the whole request and names the record.
func TestAttackOtherScopeMixedInBatch(t *testing.T) {
	f := newFixture(t, 2, 3)
	const n = 64
	req, _ := batchOfAlice(t, f, n)
	bobs := f.record(t, f.meta("dev-bob", "g", 1, t0), "bob's message", t0)
	relabelled := f.record(t, f.meta("dev-alice", "g", 999, t0), "x", t0)
	relabelled.Signed.Record.Metadata.SenderDevice = []byte("dev-bob")
	for name, tc := range map[string]struct {
		rec  *ServerRecord
		want error
	}{
		"bob's record":           {bobs, ErrOutOfScope},
		"relabelled as bob's":    {relabelled, ErrBadSignature},
		"bob's R under alice's":  {f.transplant(t, bobs, f.meta("dev-alice", "g", 998, t0), bobs.Signed.Record.Proof), ErrRecordProof},
		"alice's, outside range": {f.record(t, f.meta("dev-alice", "g", 997, t0), "late", t0.Add(2*time.Hour)), ErrOutOfTimeRange},
	} {
		for _, j := range []int{0, n / 2, n - 1} {
			t.Run(fmt.Sprintf("%s at %d", name, j), func(t *testing.T) {
				mixed := &Request{Warrant: req.Warrant, Records: append([]*ServerRecord(nil), req.Records...)}
				mixed.Records[j] = tc.rec
				for c := range 3 {
					resp, err := f.keyholder(c).Answer(mixed, t0, nil)
					var re *RecordError
					if resp != nil || !errors.Is(err, tc.want) || !errors.As(err, &re) || re.Index != j {
						t.Fatalf("custodian %d: %v, %v; want %v naming record %d", c, resp, err, tc.want, j)
					}
				}
			})
		}
	}
}

// TestAttackBadRecordProofHiddenInBatch, from the seat of a user whose
// client makes a false record proof π (and a server that countersigns it
// unchecked): one such record, or two whose errors cancel in an unweighted
// sum (z+1 and z−1 with the same R), among 64 of alice's. The random
// weights of the batch check catch them; the custodians refuse the
// request naming the first, and VerifyRecordProofs names both.
func TestAttackBadRecordProofHiddenInBatch(t *testing.T) {
	f := newFixture(t, 2, 3)
	const n = 64
	req, _ := batchOfAlice(t, f, n)
	one := grp.NewScalar().SetUint64(1)
	// falseProof re-seals record j of alice's with z shifted by delta,
	// signs and countersigns it.
	falseProof := func(j int, delta group.Scalar) *ServerRecord {
		rec, err := Seal(f.policy.EscrowKey, f.exporter, f.meta("dev-alice", "g", uint32(j), t0), []byte("mine"))
		if err != nil {
			t.Fatal(err)
		}
		rec.Proof = &RecordProof{A: rec.Proof.A, Z: grp.NewScalar().Add(rec.Proof.Z, delta)}
		s, err := SignRecord(rec, f.alice)
		if err != nil {
			t.Fatal(err)
		}
		sr, err := Countersign(s, []byte("srv-1"), t0, uint64(5000+j), f.server)
		if err != nil {
			t.Fatal(err)
		}
		return sr
	}
	for _, bad := range [][]int{{0}, {n / 2}, {n - 1}, {3, 40}, {0, n - 1}} {
		t.Run(fmt.Sprint(bad), func(t *testing.T) {
			mixed := &Request{Warrant: req.Warrant, Records: append([]*ServerRecord(nil), req.Records...)}
			for i, j := range bad {
				delta := one
				if i%2 == 1 {
					delta = grp.NewScalar().Neg(one)
				}
				mixed.Records[j] = falseProof(j, delta)
			}
			for c := range 3 {
				resp, err := f.keyholder(c).Answer(mixed, t0, nil)
				var re *RecordError
				if resp != nil || !errors.Is(err, ErrRecordProof) || !errors.As(err, &re) || re.Index != bad[0] {
					t.Fatalf("custodian %d: %v, %v; want ErrRecordProof naming record %d", c, resp, err, bad[0])
				}
			}
			var recs []*Record
			for _, sr := range mixed.Records {
				recs = append(recs, sr.Signed.Record)
			}
			var pe *RecordProofsError
			if err := VerifyRecordProofs(seededRand("weights"), f.policy.EscrowKey, recs); !errors.As(err, &pe) || len(pe.Failed) != len(bad) {
				t.Fatalf("VerifyRecordProofs: %v; want records %v named", err, bad)
			}
			for i, re := range pe.Failed {
				if re.Index != bad[i] {
					t.Fatalf("VerifyRecordProofs named %d, want %v", re.Index, bad)
				}
			}
		})
	}
}
