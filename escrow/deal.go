package escrow

import (
	"crypto/subtle"
	"fmt"
	"io"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/math/polynomial"
	"github.com/cloudflare/circl/secretsharing"
)

// MaxCustodians bounds n, the number of custodians (and share indices).
const MaxCustodians = 255

// Share is one custodian's secret share s_i of the escrow key, with its index
// i (1..n). It is secret: only its custodian may hold it.
type Share struct {
	Index uint16
	Value group.Scalar
}

// Public returns the share's verification share P_i = s_i·G.
func (s Share) Public() group.Element { return grp.NewElement().MulGen(s.Value) }

// Commitments are the Feldman commitments C_j = a_j·G to the coefficients of
// the sharing polynomial; C_0 is the escrow public key P. There are k of them.
type Commitments []group.Element

// Dealing is the result of Deal: the public key, the commitments, and one
// share per custodian with its verification share.
type Dealing struct {
	PublicKey          group.Element   // P = s·G
	Threshold          int             // k
	Commitments        Commitments     // k Feldman commitments; Commitments[0] == PublicKey
	Shares             []Share         // Shares[i] has Index i+1; hand each to its custodian only
	VerificationShares []group.Element // VerificationShares[i] = Shares[i].Value·G
}

// Deal creates a fresh escrow key s, shares it k-of-n with Feldman-verifiable
// Shamir sharing, and returns the public parts with the n shares. The secret
// exists only transiently inside Deal; nothing returned contains it. Shares
// have indices 1..n.
//
// The sharing polynomial is built with circl's polynomial package from
// coefficients drawn from rand (circl's secretsharing.New would draw them from
// the operating system instead, ignoring an injected reader); shares are
// checked with circl's secretsharing.Verify.
func Deal(rand io.Reader, k, n int) (*Dealing, error) {
	if k < 1 || n < k || n > MaxCustodians {
		return nil, fmt.Errorf("dealing %d of %d: %w", k, n, ErrInvalidThreshold)
	}
	coeffs := make([]group.Scalar, k)
	for i := range coeffs {
		c, err := randomScalar(rand)
		if err != nil {
			return nil, fmt.Errorf("dealing: %w", err)
		}
		coeffs[i] = c
	}
	poly := polynomial.New(coeffs)
	d := &Dealing{Threshold: k, Commitments: make(Commitments, k)}
	for i := range coeffs {
		d.Commitments[i] = grp.NewElement().MulGen(coeffs[i])
	}
	d.PublicKey = d.Commitments[0].Copy()
	zero := grp.NewScalar()
	for _, c := range coeffs {
		c.Set(zero)
	}
	for i := 1; i <= n; i++ {
		sh := Share{Index: uint16(i), Value: poly.Evaluate(scalarFromIndex(uint16(i)))}
		d.Shares = append(d.Shares, sh)
		d.VerificationShares = append(d.VerificationShares, sh.Public())
	}
	return d, nil
}

// VerifyShare checks a share against the dealer's Feldman commitments (whose
// number is the threshold k). It returns ErrInvalidShare if the share is not
// the evaluation of the committed polynomial at its index.
func VerifyShare(sh Share, c Commitments) error {
	if len(c) < 1 || len(c) > MaxCustodians {
		return fmt.Errorf("verifying share: %d commitments: %w", len(c), ErrInvalidThreshold)
	}
	if sh.Index == 0 || sh.Value == nil {
		return fmt.Errorf("verifying share %d: %w", sh.Index, ErrInvalidShare)
	}
	for _, e := range c {
		if e == nil {
			return fmt.Errorf("verifying share %d: nil commitment: %w", sh.Index, ErrInvalidShare)
		}
	}
	s := secretsharing.Share{ID: scalarFromIndex(sh.Index), Value: sh.Value}
	if !secretsharing.Verify(uint(len(c)-1), s, c) {
		return fmt.Errorf("verifying share %d: %w", sh.Index, ErrInvalidShare)
	}
	return nil
}

// VerificationShare returns P_i, the public image of share i, computed from
// the commitments alone: P_i = sum_j C_j·i^j.
func (c Commitments) VerificationShare(index uint16) group.Element {
	x := scalarFromIndex(index)
	acc := grp.Identity()
	for j := len(c) - 1; j >= 0; j-- {
		acc.Mul(acc, x)
		acc.Add(acc, c[j])
	}
	return acc
}

// DKG: a simple distributed key generation in which no one ever holds s.
// Each of the n custodians runs Deal(rand, k, n) itself (a "contribution"),
// publishes the contribution's Commitments and sends share j of it privately
// to custodian j. Custodian j checks every share it received against the
// matching commitments and adds them up with CombineContributions; anyone
// computes the joint commitments (hence P and every P_i) with
// SumCommitments. The joint key is s = sum of every custodian's secret, which
// nobody knows unless all n collude.
//
// This is the plain Pedersen/Feldman-sum protocol without complaint rounds: a
// custodian who receives a bad share gets ErrInvalidShare naming the dealer
// and the ceremony must be restarted without that dealer.

// CombineContributions adds the shares that custodian index received from
// every dealer, after checking each against that dealer's commitments.
// received[d] and commitments[d] come from dealer d.
func CombineContributions(index uint16, received []Share, commitments []Commitments) (Share, error) {
	if len(received) == 0 || len(received) != len(commitments) {
		return Share{}, fmt.Errorf("combining contributions: %d shares for %d dealers: %w",
			len(received), len(commitments), ErrInvalidShare)
	}
	k := len(commitments[0])
	sum := grp.NewScalar()
	for d, sh := range received {
		if sh.Index != index {
			return Share{}, fmt.Errorf("combining contributions: dealer %d sent share %d, want %d: %w",
				d, sh.Index, index, ErrInvalidShare)
		}
		if len(commitments[d]) != k {
			return Share{}, fmt.Errorf("combining contributions: dealer %d used threshold %d, want %d: %w",
				d, len(commitments[d]), k, ErrInvalidThreshold)
		}
		if err := VerifyShare(sh, commitments[d]); err != nil {
			return Share{}, fmt.Errorf("combining contributions: dealer %d: %w", d, err)
		}
		sum.Add(sum, sh.Value)
	}
	return Share{Index: index, Value: sum}, nil
}

// SumCommitments adds the dealers' commitments coefficient by coefficient.
// The result commits to the joint polynomial: its first entry is the joint
// escrow key P and VerificationShare gives every P_i.
func SumCommitments(commitments []Commitments) (Commitments, error) {
	if len(commitments) == 0 {
		return nil, fmt.Errorf("summing commitments: none: %w", ErrInvalidThreshold)
	}
	k := len(commitments[0])
	out := make(Commitments, k)
	for j := range out {
		out[j] = grp.Identity()
	}
	for d, c := range commitments {
		if len(c) != k {
			return nil, fmt.Errorf("summing commitments: dealer %d used threshold %d, want %d: %w",
				d, len(c), k, ErrInvalidThreshold)
		}
		for j := range c {
			out[j].Add(out[j], c[j])
		}
	}
	for j := range out {
		if out[j].IsIdentity() {
			return nil, fmt.Errorf("summing commitments: coefficient %d is the identity: %w", j, ErrInvalidShare)
		}
	}
	return out, nil
}

// MarshalBinary encodes a share (secret!): version, index, scalar.
func (s Share) MarshalBinary() ([]byte, error) {
	if s.Index == 0 || s.Index > MaxCustodians || s.Value == nil {
		return nil, fmt.Errorf("encoding share: index %d: %w", s.Index, ErrInvalidShare)
	}
	e := newEncoder()
	e.u8(formatVersion)
	e.u16(s.Index)
	e.fixed("share value", mustMarshal(s.Value), ScalarSize)
	return e.bytes()
}

// ParseShare decodes a share encoded by Share.MarshalBinary.
func ParseShare(b []byte) (Share, error) {
	d := newDecoder(b)
	d.version("share")
	idx := d.u16("share index")
	v := d.fixed("share value", ScalarSize)
	if err := d.finish(); err != nil {
		return Share{}, fmt.Errorf("decoding share: %w", err)
	}
	if idx == 0 || idx > MaxCustodians {
		return Share{}, fmt.Errorf("decoding share: %w: index %d", ErrMalformed, idx)
	}
	s, err := parseScalar(v)
	if err != nil {
		return Share{}, fmt.Errorf("decoding share: %w", err)
	}
	if s.IsZero() {
		return Share{}, fmt.Errorf("decoding share: %w: zero value", ErrMalformed)
	}
	return Share{Index: idx, Value: s}, nil
}

// Equal reports, in constant time in the values, whether two shares are the
// same.
func (s Share) Equal(o Share) bool {
	if s.Value == nil || o.Value == nil {
		return false
	}
	same := subtle.ConstantTimeCompare(mustMarshal(s.Value), mustMarshal(o.Value))
	return same == 1 && s.Index == o.Index
}

// MarshalBinary encodes the commitments: version, count, elements.
func (c Commitments) MarshalBinary() ([]byte, error) {
	e := newEncoder()
	e.u8(formatVersion)
	e.count("commitments", len(c), 1, MaxCustodians)
	for _, x := range c {
		e.element("commitment", x)
	}
	return e.bytes()
}

// ParseCommitments decodes commitments encoded by Commitments.MarshalBinary.
func ParseCommitments(b []byte) (Commitments, error) {
	d := newDecoder(b)
	d.version("commitments")
	n := d.count("commitments", 1, MaxCustodians)
	c := make(Commitments, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		c = append(c, d.element("commitment"))
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decoding commitments: %w", err)
	}
	return c, nil
}
