package escrow

import (
	"fmt"
	"io"
	"sort"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/math/polynomial"
)

// ProofSize is the size of an encoded DLEQ proof (two scalars).
const ProofSize = 2 * ScalarSize

// Partial is one custodian's partial decryption of one record: D_i = s_i·R,
// with a proof that log_G(P_i) = log_R(D_i).
type Partial struct {
	Index uint16        // the custodian's share index i
	D     group.Element // s_i·R
	Proof []byte        // DLEQ proof, ProofSize bytes
}

// Decrypt computes the partial decryption of R with share s_i and proves it
// correct.
func (s Share) Decrypt(rand io.Reader, R group.Element) (*Partial, error) {
	if R == nil || R.IsIdentity() {
		return nil, fmt.Errorf("partial decryption: %w: R is the identity", ErrMalformed)
	}
	if s.Index == 0 || s.Value == nil || s.Value.IsZero() {
		return nil, fmt.Errorf("partial decryption: %w", ErrInvalidShare)
	}
	D := grp.NewElement().Mul(R, s.Value)
	proof, err := proveBatch(rand, s, nil, []group.Element{R}, [][]byte{mustMarshal(R)}, [][]byte{mustMarshal(D)})
	if err != nil {
		return nil, fmt.Errorf("partial decryption: %w", err)
	}
	return &Partial{Index: s.Index, D: D, Proof: proof}, nil
}

// proveBatch proves log_G(P_i) = log_{R_j}(D_j) for every j with one DLEQ
// proof (dleq.go; for one pair it is an ordinary DLEQ proof), the points
// given as R_j and the encodings of R_j and D_j. The nonce is hedged: it
// hashes 32 bytes from rand with the share, the context and every R_j and
// D_j, so a broken random source cannot make two proofs over different inputs
// share a nonce.
func proveBatch(rand io.Reader, s Share, context []byte, Rs []group.Element, rEnc, dEnc [][]byte) ([]byte, error) {
	if s.Index == 0 || s.Value == nil || s.Value.IsZero() {
		return nil, ErrInvalidShare
	}
	if len(Rs) == 0 || len(Rs) != len(rEnc) || len(Rs) != len(dEnc) {
		return nil, fmt.Errorf("proving: %d points with %d and %d encodings", len(Rs), len(rEnc), len(dEnc))
	}
	var seed [32]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("reading randomness: %w", err)
	}
	msg := append(seed[:], mustMarshal(s.Value)...)
	msg = append(msg, byte(len(context)))
	msg = append(msg, context...)
	for j := range Rs {
		msg = append(msg, rEnc[j]...)
		msg = append(msg, dEnc[j]...)
	}
	nonce := grp.HashToScalar(msg, []byte(dstProofNonce))
	return dleqProve(s.Value, mustMarshal(s.Public()), Rs, rEnc, dEnc, nonce), nil
}

// verifyBatch checks a (possibly batched) DLEQ proof for pairs (R_j, D_j)
// against P_i. rEnc and dEnc are the points' encodings, or nil to encode
// them here.
func verifyBatch(Pi group.Element, Rs, Ds []group.Element, rEnc, dEnc [][]byte, proof []byte) error {
	if rEnc == nil {
		rEnc = encodeAll(Rs)
	}
	if dEnc == nil {
		dEnc = encodeAll(Ds)
	}
	if len(rEnc) != len(Rs) || len(dEnc) != len(Ds) {
		return fmt.Errorf("%w: %d and %d encodings for %d and %d points", ErrBadProof, len(rEnc), len(dEnc), len(Rs), len(Ds))
	}
	return dleqVerify(Pi, mustMarshal(Pi), Rs, Ds, rEnc, dEnc, proof)
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
	if err := verifyBatch(Pi, []group.Element{R}, []group.Element{part.D}, nil, nil, part.Proof); err != nil {
		return fmt.Errorf("verifying partial %d: %w", part.Index, err)
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
	valid, err := firstValid(partials, int(p.Threshold),
		func(part *Partial) uint16 { return part.Index },
		func(part *Partial) error { return VerifyPartial(p, rec.R, part) })
	if err != nil {
		return nil, fmt.Errorf("combining partials: %w", err)
	}
	return openRecord(rec, interpolate(valid))
}

// firstValid returns the first k items, from distinct custodians, that pass
// verify; nil items are skipped. With fewer than k it returns a
// *NotEnoughPartialsError listing the items rejected on the way: a custodian
// seen before (ErrDuplicatePartial) or a failed verify.
func firstValid[T comparable](items []T, k int, index func(T) uint16, verify func(T) error) ([]T, error) {
	var none T
	valid := make([]T, 0, k)
	seen := make(map[uint16]bool)
	var rejected []*PartialError
	for _, it := range items {
		if len(valid) == k {
			break
		}
		if it == none {
			continue
		}
		i := index(it)
		if seen[i] {
			rejected = append(rejected, &PartialError{Index: i, Err: ErrDuplicatePartial})
			continue
		}
		if err := verify(it); err != nil {
			rejected = append(rejected, &PartialError{Index: i, Err: err})
			continue
		}
		seen[i] = true
		valid = append(valid, it)
	}
	if len(valid) < k {
		return nil, &NotEnoughPartialsError{Need: k, Valid: len(valid), Rejected: rejected}
	}
	return valid, nil
}

// interpolate returns sum_i λ_i·D_i, with λ_i the Lagrange basis at zero over
// the partials' indices (which must be distinct and non-zero).
func interpolate(parts []*Partial) group.Element {
	sort.Slice(parts, func(a, b int) bool { return parts[a].Index < parts[b].Index })
	xs := make([]group.Scalar, len(parts))
	ds := make([]group.Element, len(parts))
	for i, part := range parts {
		xs[i] = scalarFromIndex(part.Index)
		ds[i] = part.D
	}
	return interpolateAt(xs, ds, grp.NewScalar())
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
