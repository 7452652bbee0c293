package escrow

import (
	"crypto"
	_ "crypto/sha512" // the DLEQ transcript hash
	"fmt"
	"io"
	"sort"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/math/polynomial"
	"github.com/cloudflare/circl/zk/dleq"
)

// ProofSize is the size of an encoded DLEQ proof (two scalars).
const ProofSize = 2 * ScalarSize

// dleqParams are the DLEQ proof parameters: ristretto255, SHA-512, and the
// partial-decryption tag.
var dleqParams = dleq.Params{G: grp, H: crypto.SHA512, DST: []byte(dstDLEQ)}

// Partial is one custodian's partial decryption of one record: D_i = s_i·R,
// with a proof that log_G(P_i) = log_R(D_i).
type Partial struct {
	Index uint16        // the custodian's share index i
	D     group.Element // s_i·R
	Proof []byte        // DLEQ proof, ProofSize bytes
}

// Decrypt computes the partial decryption of R with share s_i and proves it
// correct. The proof nonce is hedged: it hashes 32 bytes from rand with the
// share, R and D_i, so a broken random source cannot make two proofs for
// different R share a nonce.
func (s Share) Decrypt(rand io.Reader, R group.Element) (*Partial, error) {
	if s.Index == 0 || s.Value == nil || s.Value.IsZero() {
		return nil, fmt.Errorf("partial decryption: %w", ErrInvalidShare)
	}
	if R == nil || R.IsIdentity() {
		return nil, fmt.Errorf("partial decryption: %w: R is the identity", ErrMalformed)
	}
	Pi := s.Public()
	D := grp.NewElement().Mul(R, s.Value)
	var seed [32]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("partial decryption: reading randomness: %w", err)
	}
	msg := append(seed[:], mustMarshal(s.Value)...)
	msg = append(msg, mustMarshal(R)...)
	msg = append(msg, mustMarshal(D)...)
	nonce := grp.HashToScalar(msg, []byte(dstProofNonce))
	proof, err := dleq.Prover{Params: dleqParams}.ProveWithRandomness(s.Value, grp.Generator(), Pi, R, D, nonce)
	if err != nil {
		return nil, fmt.Errorf("partial decryption: proving: %w", err)
	}
	pb, err := proof.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("partial decryption: encoding proof: %w", err)
	}
	return &Partial{Index: s.Index, D: D, Proof: pb}, nil
}

// VerifyPartial checks a partial decryption of R against the custodian's
// verification share P_i from the policy. It returns ErrUnknownCustodian if
// the index is not in the policy and ErrBadProof if the proof fails.
func VerifyPartial(p *Policy, R group.Element, part *Partial) error {
	c := p.custodian(part.Index)
	if c == nil {
		return fmt.Errorf("verifying partial %d: %w", part.Index, ErrUnknownCustodian)
	}
	return verifyPartial(c.VerificationShare, R, part)
}

func verifyPartial(Pi, R group.Element, part *Partial) error {
	if part.D == nil || part.D.IsIdentity() || R == nil || R.IsIdentity() {
		return fmt.Errorf("verifying partial %d: %w: identity element", part.Index, ErrBadProof)
	}
	var proof dleq.Proof
	if err := proof.UnmarshalBinary(grp, part.Proof); err != nil {
		return fmt.Errorf("verifying partial %d: %w: %v", part.Index, ErrBadProof, err)
	}
	if !(dleq.Verifier{Params: dleqParams}).Verify(grp.Generator(), Pi, R, part.D, &proof) {
		return fmt.Errorf("verifying partial %d: %w", part.Index, ErrBadProof)
	}
	return nil
}

// Combine checks the partial decryptions of one record against the policy,
// and with k valid ones from distinct custodians interpolates r·P in the
// exponent (sum of λ_i·D_i; s is never rebuilt), derives the record key and
// opens the record. Invalid partials are skipped; with fewer than k valid ones
// it returns a *NotEnoughPartialsError (errors.Is ErrNotEnoughPartials).
func Combine(p *Policy, rec *Record, partials []*Partial) ([]byte, error) {
	if err := p.checkStructure(); err != nil {
		return nil, fmt.Errorf("combining partials: %w", err)
	}
	if rec == nil || rec.R == nil || rec.R.IsIdentity() {
		return nil, fmt.Errorf("combining partials: %w: record has no R", ErrMalformed)
	}
	k := int(p.Threshold)
	valid := make([]*Partial, 0, k)
	seen := make(map[uint16]bool)
	var rejected []*PartialError
	for _, part := range partials {
		if part == nil {
			continue
		}
		if len(valid) == k {
			break
		}
		if seen[part.Index] {
			rejected = append(rejected, &PartialError{Index: part.Index, Err: ErrDuplicatePartial})
			continue
		}
		if err := VerifyPartial(p, rec.R, part); err != nil {
			rejected = append(rejected, &PartialError{Index: part.Index, Err: err})
			continue
		}
		seen[part.Index] = true
		valid = append(valid, part)
	}
	if len(valid) < k {
		return nil, fmt.Errorf("combining partials: %w",
			&NotEnoughPartialsError{Need: k, Valid: len(valid), Rejected: rejected})
	}
	rP := interpolate(valid)
	return openRecord(rec, rP)
}

// interpolate returns sum_i λ_i·D_i, with λ_i the Lagrange basis at zero over
// the partials' indices (which must be distinct and non-zero).
func interpolate(parts []*Partial) group.Element {
	sort.Slice(parts, func(a, b int) bool { return parts[a].Index < parts[b].Index })
	xs := make([]group.Scalar, len(parts))
	for i, part := range parts {
		xs[i] = scalarFromIndex(part.Index)
	}
	zero := grp.NewScalar()
	acc := grp.Identity()
	for i, part := range parts {
		l := polynomial.LagrangeBase(uint(i), xs, zero)
		acc.Add(acc, grp.NewElement().Mul(part.D, l))
	}
	return acc
}

// interpolateAt returns sum_i L_i(x)·E_i over points (xs[i], E_i): the value
// at x of the degree len-1 polynomial in the exponent through those points.
func interpolateAt(xs []group.Scalar, es []group.Element, x group.Scalar) group.Element {
	acc := grp.Identity()
	for i := range xs {
		l := polynomial.LagrangeBase(uint(i), xs, x)
		acc.Add(acc, grp.NewElement().Mul(es[i], l))
	}
	return acc
}

// MarshalBinary encodes a partial: version, index, D, proof.
func (p *Partial) MarshalBinary() ([]byte, error) {
	e := newEncoder()
	e.u8(formatVersion)
	p.encode(e)
	return e.bytes()
}

func (p *Partial) encode(e *encoder) {
	if p.Index == 0 || p.Index > MaxCustodians {
		e.fail("partial index", "%d out of range", p.Index)
	}
	e.u16(p.Index)
	e.element("partial D", p.D)
	e.fixed("partial proof", p.Proof, ProofSize)
}

func (p *Partial) decode(d *decoder) {
	p.Index = d.u16("partial index")
	if d.err == nil && (p.Index == 0 || p.Index > MaxCustodians) {
		d.fail("partial index", "%d out of range", p.Index)
	}
	p.D = d.element("partial D")
	p.Proof = d.fixed("partial proof", ProofSize)
}

// ParsePartial decodes a partial encoded by Partial.MarshalBinary. It does
// not check the proof.
func ParsePartial(b []byte) (*Partial, error) {
	d := newDecoder(b)
	d.version("partial")
	p := new(Partial)
	p.decode(d)
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decoding partial: %w", err)
	}
	return p, nil
}
