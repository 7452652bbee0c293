package escrow

import (
	"fmt"
	"io"
	"math/big"
	"math/bits"
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
	idx := make([]uint16, len(parts))
	ds := make([]group.Element, len(parts))
	for i, part := range parts {
		idx[i], ds[i] = part.Index, part.D
	}
	return newCombiner(idx).combine(ds)
}

// maxSmallCoefficient bounds the integers a combiner multiplies by with
// double-and-add: up to it, that is at most 16 doublings and 16 additions
// per partial, against a 64 µs multiplication.
const maxSmallCoefficient = 1 << 16

// combiner interpolates r·P = Σ λ_i·D_i from the partials of a fixed set of
// custodians, record after record: the Lagrange coefficients at zero, which
// depend only on the custodians' indices, are computed once per set.
//
// Each λ_i = Π_{j≠i} x_j/(x_j − x_i) is a fraction; with L the least common
// multiple of their denominators, n_i = L·λ_i are integers, and
// r·P = L⁻¹·Σ n_i·D_i. For small indices the n_i are small (custodians 1
// and 2 of a 2-of-3 policy: λ = (2, −1), L = 1; custodians 1 and 3:
// n = (3, −1), L = 2), so the sum costs a few additions, and L⁻¹ one
// multiplication if L ≠ 1 (k multiplications before). The coefficients are
// public (they depend only on which custodians answered), and the additions
// and doublings run in the same order whatever the points, so the time
// taken says nothing about the partials or r·P. Sets whose n_i are large
// fall back to one multiplication by λ_i per partial.
type combiner struct {
	order  []int          // the partials' positions by increasing index
	small  []int64        // n_i, by increasing index; nil: use lambda
	invL   group.Scalar   // L⁻¹, or nil if L = 1
	lambda []group.Scalar // λ_i by increasing index, when small is nil
}

// newCombiner prepares the coefficients for custodians with the given
// distinct, non-zero indices, in the order their partials will be given.
func newCombiner(indices []uint16) *combiner {
	c := &combiner{order: make([]int, len(indices))}
	for i := range c.order {
		c.order[i] = i
	}
	sort.Slice(c.order, func(a, b int) bool { return indices[c.order[a]] < indices[c.order[b]] })
	xs := make([]int64, len(indices))
	for i, o := range c.order {
		xs[i] = int64(indices[o])
	}
	lambdas := make([]*big.Rat, len(xs))
	L := big.NewInt(1)
	for i, xi := range xs {
		num, den := big.NewInt(1), big.NewInt(1)
		for j, xj := range xs {
			if j != i {
				num.Mul(num, big.NewInt(xj))
				den.Mul(den, big.NewInt(xj-xi))
			}
		}
		lambdas[i] = new(big.Rat).SetFrac(num, den)
		d := lambdas[i].Denom()
		g := new(big.Int).GCD(nil, nil, L, d)
		L.Mul(L, new(big.Int).Quo(d, g))
	}
	limit := big.NewInt(maxSmallCoefficient)
	if L.Cmp(limit) <= 0 {
		small := make([]int64, len(xs))
		for i, l := range lambdas {
			n := new(big.Rat).Mul(l, new(big.Rat).SetInt(L))
			if !n.IsInt() || new(big.Int).Abs(n.Num()).Cmp(limit) > 0 {
				small = nil
				break
			}
			small[i] = n.Num().Int64()
		}
		c.small = small
	}
	if c.small != nil {
		if L.Int64() != 1 {
			c.invL = grp.NewScalar().Inv(grp.NewScalar().SetUint64(L.Uint64()))
		}
		return c
	}
	sx := make([]group.Scalar, len(xs))
	for i, x := range xs {
		sx[i] = grp.NewScalar().SetUint64(uint64(x))
	}
	for i := range sx {
		c.lambda = append(c.lambda, polynomial.LagrangeBase(uint(i), sx, grp.NewScalar()))
	}
	return c
}

// combine returns Σ λ_i·D_i for the partials ds, given in the order of the
// indices the combiner was made with.
func (c *combiner) combine(ds []group.Element) group.Element {
	acc := grp.Identity()
	if c.small == nil {
		for i, o := range c.order {
			acc.Add(acc, grp.NewElement().Mul(ds[o], c.lambda[i]))
		}
		return acc
	}
	// Σ n_i·D_i by double-and-add over the bits of |n_i|, adding −D_i
	// for a negative n_i.
	terms := make([]group.Element, len(ds))
	top := 0
	for i, o := range c.order {
		terms[i] = ds[o]
		if c.small[i] < 0 {
			terms[i] = grp.NewElement().Neg(ds[o])
		}
		top = max(top, bits.Len64(uint64(abs64(c.small[i]))))
	}
	for bit := top - 1; bit >= 0; bit-- {
		acc.Dbl(acc)
		for i, n := range c.small {
			if abs64(n)>>bit&1 == 1 {
				acc.Add(acc, terms[i])
			}
		}
	}
	if c.invL != nil {
		acc.Mul(acc, c.invL)
	}
	return acc
}

func abs64(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
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
