package escrow

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"testing"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/zk/dleq"
)

// circlDLEQ is circl's DLEQ with the parameters of dleq.go: the reference
// the proofs made and checked here must match.
var circlDLEQ = dleq.Params{G: grp, H: crypto.SHA512, DST: []byte(dstDLEQ)}

// TestDLEQMatchesCircl: for batches of 1 to 100 pairs, a proof made here is
// byte for byte the proof circl makes with the same nonce; each side accepts
// the other's proofs; and for each tampering (a partial, a point, the
// order, the proof, the verification share) both refuse.
func TestDLEQMatchesCircl(t *testing.T) {
	rnd := seededRand("dleq circl")
	for _, n := range []int{1, 2, 3, 8, 33, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s, err := randomScalar(rnd)
			if err != nil {
				t.Fatal(err)
			}
			P := grp.NewElement().MulGen(s)
			var Rs, Ds []group.Element
			for range n {
				r, err := randomScalar(rnd)
				if err != nil {
					t.Fatal(err)
				}
				R := grp.NewElement().MulGen(r)
				Rs, Ds = append(Rs, R), append(Ds, grp.NewElement().Mul(R, s))
			}
			k, err := randomScalar(rnd)
			if err != nil {
				t.Fatal(err)
			}
			ours := dleqProve(s, mustMarshal(P), Rs, encodeAll(Rs), encodeAll(Ds), k)
			cp, err := dleq.Prover{Params: circlDLEQ}.ProveBatchWithRandomness(s, grp.Generator(), P, Rs, Ds, k)
			if err != nil {
				t.Fatal(err)
			}
			theirs, err := cp.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ours, theirs) {
				t.Fatalf("proofs differ:\nours   %x\ncircl  %x", ours, theirs)
			}
			// check runs both verifiers and fails if they disagree.
			check := func(P group.Element, Rs, Ds []group.Element, proof []byte) bool {
				t.Helper()
				err := verifyBatch(P, Rs, Ds, nil, nil, proof)
				if err != nil && !errors.Is(err, ErrBadProof) {
					t.Fatalf("error %v does not match ErrBadProof", err)
				}
				var cp dleq.Proof
				circl := cp.UnmarshalBinary(grp, proof) == nil &&
					dleq.Verifier{Params: circlDLEQ}.VerifyBatch(grp.Generator(), P, Rs, Ds, &cp)
				if (err == nil) != circl {
					t.Fatalf("verifiers disagree: ours %v, circl %v", err, circl)
				}
				return circl
			}
			if !check(P, Rs, Ds, ours) {
				t.Fatal("an honest proof is refused")
			}
			bad := func(what string, P group.Element, Rs, Ds []group.Element, proof []byte) {
				t.Helper()
				if check(P, Rs, Ds, proof) {
					t.Errorf("%s: accepted", what)
				}
			}
			j := n / 2
			other := slicesWith(Ds, j, grp.NewElement().Add(Ds[j], grp.Generator()))
			bad("one partial off by G", P, Rs, other, ours)
			bad("one R changed", P, slicesWith(Rs, j, grp.NewElement().Dbl(Rs[j])), Ds, ours)
			bad("other verification share", grp.NewElement().Dbl(P), Rs, Ds, ours)
			if n > 1 {
				swapped := slicesWith(Ds, 0, Ds[n-1])
				swapped[n-1] = Ds[0]
				bad("two partials swapped", P, Rs, swapped, ours)
				bad("a pair dropped", P, Rs[1:], Ds[1:], ours)
			}
			for _, i := range []int{0, ScalarSize - 1, ScalarSize, ProofSize - 1} {
				p := bytes.Clone(ours)
				p[i] ^= 1
				bad(fmt.Sprintf("proof byte %d flipped", i), P, Rs, Ds, p)
			}
			bad("proof truncated", P, Rs, Ds, ours[:ProofSize-1])
			noncanon := bytes.Clone(ours)
			for i := ScalarSize; i < ProofSize; i++ {
				noncanon[i] = 0xff
			}
			bad("s not canonical", P, Rs, Ds, noncanon)
		})
	}
}

// slicesWith returns a copy of es with es[j] replaced by e.
func slicesWith(es []group.Element, j int, e group.Element) []group.Element {
	out := append([]group.Element(nil), es...)
	out[j] = e
	return out
}
