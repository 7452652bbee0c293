package escrow

import (
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"runtime"

	"github.com/cloudflare/circl/group"
)

// The batched DLEQ proof of a custodian's answer, made and checked here with
// multi-scalar multiplications instead of circl's zk/dleq, which multiplies
// every pair on its own: proving n pairs cost n multiplications (about
// 50 µs each) and checking them 2n. The transcript is circl's, byte for byte
// (TestDLEQMatchesCircl): a proof made here verifies with circl and the
// other way round, so answers already given and logged stay valid.
//
// For P = s·G and pairs D_j = s·R_j the proof is, with circl's framing of
// every hash input (a 16-bit length before each part):
//
//	seed = SHA-512(P || "Seed-"+DST)
//	d_j  = HashToScalar(seed || j || R_j || D_j || "Composite")
//	M    = Σ d_j·R_j,  Z = Σ d_j·D_j (= s·M for the prover)
//	t2   = k·G,  t3 = k·M                  (k the nonce)
//	c    = HashToScalar(G || P || M || Z || t2 || t3 || "Challenge")
//	s'   = k − c·s;  the proof is c || s'
//
// and it holds if c = HashToScalar(G || P || M || Z || s'·G + c·P ||
// s'·M + c·Z || "Challenge"). The weights d_j make the batch as sound as n
// single proofs: with all d_j = 1, a custodian could return D_a + E and
// D_b − E, whose errors cancel in Z (TestAttackBadPartialHiddenInBatch).
// Here every d_j is a hash of P and every pair, so the custodian fixes its
// partials before it learns any weight, and changing any partial changes
// all of them; errors e_j = D_j − s·R_j go unseen only if Σ d_j·e_j = 0,
// which for hash outputs it cannot steer holds with probability about
// 2^-252 per hash it tries (the proof itself is then sound as one DLEQ).

const (
	dleqSeedLabel      = "Seed-"
	dleqH2SLabel       = "HashToScalar-"
	dleqCompositeLabel = "Composite"
	dleqChallengeLabel = "Challenge"
)

// dleqHashDST is the domain-separation tag of the proofs' HashToScalar.
var dleqHashDST = []byte(dleqH2SLabel + dstDLEQ)

// dleqWeights returns the composite weights d_j of pairs (R_j, D_j), given
// as encodings, for the verification share encoded as pEnc.
func dleqWeights(pEnc []byte, rEnc, dEnc [][]byte) []group.Scalar {
	h := sha512.New()
	var l [2]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint16(l[:], uint16(len(b)))
		h.Write(l[:])
		h.Write(b)
	}
	put(pEnc)
	put([]byte(dleqSeedLabel + dstDLEQ))
	seed := h.Sum(nil)
	ds := make([]group.Scalar, len(rEnc))
	var msg []byte
	for j := range rEnc {
		msg = binary.BigEndian.AppendUint16(msg[:0], uint16(len(seed)))
		msg = append(msg, seed...)
		msg = binary.BigEndian.AppendUint16(msg, uint16(j))
		msg = binary.BigEndian.AppendUint16(msg, uint16(len(rEnc[j])))
		msg = append(msg, rEnc[j]...)
		msg = binary.BigEndian.AppendUint16(msg, uint16(len(dEnc[j])))
		msg = append(msg, dEnc[j]...)
		msg = append(msg, dleqCompositeLabel...)
		ds[j] = grp.HashToScalar(msg, dleqHashDST)
	}
	return ds
}

// dleqChallenge returns c over the encodings of G, P, M, Z, t2 and t3.
func dleqChallenge(parts ...[]byte) group.Scalar {
	var msg []byte
	for _, p := range parts {
		msg = binary.BigEndian.AppendUint16(msg, uint16(len(p)))
		msg = append(msg, p...)
	}
	msg = append(msg, dleqChallengeLabel...)
	return grp.HashToScalar(msg, dleqHashDST)
}

// generatorEnc is the encoding of G, the first part of every challenge.
var generatorEnc = mustMarshal(grp.Generator())

// dleqProve makes the proof for share s (P = s·G, encoded as pEnc) over
// pairs D_j = s·R_j given with their encodings, with nonce k. M is a
// variable-time multi-scalar multiplication over public values (the R_j and
// the weights); the secret s and k are used only in constant-time
// multiplications and scalar arithmetic.
func dleqProve(s group.Scalar, pEnc []byte, Rs []group.Element, rEnc, dEnc [][]byte, k group.Scalar) []byte {
	M := msmVarTime(dleqWeights(pEnc, rEnc, dEnc), Rs)
	Z := grp.NewElement().Mul(M, s)
	t2 := grp.NewElement().MulGen(k)
	t3 := grp.NewElement().Mul(M, k)
	c := dleqChallenge(generatorEnc, pEnc, mustMarshal(M), mustMarshal(Z), mustMarshal(t2), mustMarshal(t3))
	sp := grp.NewScalar().Mul(c, s)
	sp.Sub(k, sp)
	return append(mustMarshal(c), mustMarshal(sp)...)
}

// dleqVerify checks a proof that log_G(P) = log_{R_j}(D_j) for every j, the
// points given with their encodings. Every value here is public, so all of
// it is variable-time.
func dleqVerify(P group.Element, pEnc []byte, Rs, Ds []group.Element, rEnc, dEnc [][]byte, proof []byte) error {
	if len(Rs) == 0 || len(Rs) != len(Ds) {
		return fmt.Errorf("%w: %d points for %d partials", ErrBadProof, len(Rs), len(Ds))
	}
	for j := range Rs {
		if Rs[j] == nil || Rs[j].IsIdentity() || Ds[j] == nil || Ds[j].IsIdentity() {
			return fmt.Errorf("%w: identity element", ErrBadProof)
		}
	}
	if len(proof) != ProofSize {
		return fmt.Errorf("%w: proof is %d bytes, want %d", ErrBadProof, len(proof), ProofSize)
	}
	c, s := grp.NewScalar(), grp.NewScalar()
	if c.UnmarshalBinary(proof[:ScalarSize]) != nil || s.UnmarshalBinary(proof[ScalarSize:]) != nil {
		return fmt.Errorf("%w: proof scalar not canonical", ErrBadProof)
	}
	ds := dleqWeights(pEnc, rEnc, dEnc)
	var M, Z group.Element
	if len(ds) >= minParallel && runtime.GOMAXPROCS(0) > 1 {
		done := make(chan struct{})
		go func() { Z = msmVarTime(ds, Ds); close(done) }()
		M = msmVarTime(ds, Rs)
		<-done
	} else {
		M, Z = msmVarTime(ds, Rs), msmVarTime(ds, Ds)
	}
	t2 := msmVarTime([]group.Scalar{s, c}, []group.Element{grp.Generator(), P})
	t3 := msmVarTime([]group.Scalar{s, c}, []group.Element{M, Z})
	if !dleqChallenge(generatorEnc, pEnc, mustMarshal(M), mustMarshal(Z), mustMarshal(t2), mustMarshal(t3)).IsEqual(c) {
		return ErrBadProof
	}
	return nil
}

// encodeAll returns the encodings of es.
func encodeAll(es []group.Element) [][]byte {
	out := make([][]byte, len(es))
	for i, e := range es {
		out[i] = mustMarshal(e)
	}
	return out
}
