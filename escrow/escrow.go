// Package escrow implements anom's disclosed escrow: every application
// message is also sealed to the network's escrow public key P, and opening a
// sealed record needs k of n custodians, each of whom checks a signed warrant
// before returning a partial decryption with a proof that it is correct.
//
// The group is ristretto255 from cloudflare/circl; secret sharing (Feldman
// commitments) and Lagrange interpolation come from circl as well. The DLEQ
// proofs of partial decryptions follow circl's zk/dleq transcript byte for
// byte but are made and checked here with multi-scalar multiplications
// (dleq.go), which batches of a thousand partials need.
// The escrow secret s is never rebuilt: custodians return D_i = s_i·R and the
// partials are combined by Lagrange interpolation in the exponent into r·P.
// Each record carries a proof π of knowledge of its r, bound to its metadata,
// R and ciphertext, which custodians check before answering, so the R of one
// record cannot be opened under another record's metadata (proof.go).
//
// The package is pure computation: no I/O, no logging. The clock (as a
// time.Time argument) and randomness (as an io.Reader) are injected.
//
// Files by concern:
//
//	deal.go      key dealing, shares, Feldman verification, simple DKG
//	record.go    metadata, sealing, the recipient's re-derivation check
//	proof.go     the record proof π (TDH2-style labelled, non-malleable
//	             records) and its single and batch verification
//	fixedbase.go multiplication by the escrow key through a table per key
//	             (go-ristretto's constant-time ScalarMultTable; Seal)
//	msm.go       variable-time multi-scalar multiplication (batch checks)
//	signed.go    device signature and server countersignature on records
//	dleq.go      batched DLEQ proofs (circl's transcript, multi-scalar)
//	partial.go   custodians' partial decryptions and combining
//	policy.go    the root-signed escrow policy
//	warrant.go   signed warrants, their checks and scope
//	custodian.go the custodian's request/answer messages and Answer
//	codec.go     the strict binary encoding shared by all of the above
package escrow

import (
	"fmt"
	"io"

	"github.com/cloudflare/circl/group"
)

// grp is the prime-order group all escrow arithmetic happens in.
var grp = group.Ristretto255

// Sizes of encoded group values.
const (
	ElementSize = 32 // an encoded ristretto255 element
	ScalarSize  = 32 // an encoded ristretto255 scalar
)

// Domain-separation tags. Each hash or signature in this package has its own.
const (
	dstRecordScalar = "anom/escrow/v1 record r"
	dstRandomScalar = "anom/escrow/v1 random scalar"
	dstProofNonce   = "anom/escrow/v1 dleq nonce"
	dstDLEQ         = "anom/escrow/v1 partial"
	infoRecordKey   = "anom/escrow/v1 record key"

	dstRecordNonce     = "anom/escrow/v2 record proof nonce"
	dstRecordChallenge = "anom/escrow/v2 record proof challenge"
	ctxRecordProof     = "anom/escrow/v2 record proof\x00"

	ctxDeviceSig = "anom/escrow/v1 device record signature\x00"
	ctxServerSig = "anom/escrow/v1 server countersignature\x00"
	// A batch countersignature (ServerRecord encoding version 2): the
	// leaves of the batch's tree, and the signature over its root.
	ctxServerLeaf     = "anom/escrow/v2 countersigned record\x00"
	ctxServerBatchSig = "anom/escrow/v2 server batch countersignature\x00"
	ctxPolicySig      = "anom/escrow/v1 policy signature\x00"
	ctxWarrantSig     = "anom/escrow/v1 warrant signature\x00"
	ctxAnswerSig      = "anom/escrow/v1 custodian answer signature\x00"
	ctxRequest        = "anom/escrow/v1 custodian request\x00"
	ctxSlot           = "anom/escrow/v1 slot\x00"
)

// randomScalar draws a uniformly random non-zero scalar from rand.
//
// circl's Ristretto255.RandomScalar ignores its reader and always uses the
// operating system's generator, which would defeat injected randomness (and
// reproducible test vectors), so 64 bytes are read from rand and reduced with
// the group's HashToScalar, which maps them to a uniform scalar.
func randomScalar(rand io.Reader) (group.Scalar, error) {
	var buf [64]byte
	for {
		if _, err := io.ReadFull(rand, buf[:]); err != nil {
			return nil, fmt.Errorf("reading randomness: %w", err)
		}
		s := grp.HashToScalar(buf[:], []byte(dstRandomScalar))
		if !s.IsZero() {
			return s, nil
		}
	}
}

// scalarFromIndex returns the share identifier x = index as a scalar.
func scalarFromIndex(index uint16) group.Scalar {
	return grp.NewScalar().SetUint64(uint64(index))
}

// mustMarshal encodes an element or scalar. ristretto255 encodings never
// fail; a failure would be a programming error inside circl.
func mustMarshal(v interface{ MarshalBinary() ([]byte, error) }) []byte {
	b, err := v.MarshalBinary()
	if err != nil {
		panic("escrow: marshaling a ristretto255 value: " + err.Error())
	}
	return b
}

// encCache remembers the encoding of a group element that is encoded again
// and again (a record's R and its proof's A: for the device signature, the
// countersignature, the proof's challenge, the request hash). Encoding a
// ristretto255 element costs an inverse square root, about 3.5 µs; the
// cache's check costs a comparison. It keeps its own copy of the element,
// and answers only for an element equal to it, so an element replaced or
// changed in place is encoded afresh. The zero value is an empty cache.
type encCache struct {
	elem group.Element
	enc  []byte
}

// set remembers that e encodes to enc.
func (c *encCache) set(e group.Element, enc []byte) {
	c.elem, c.enc = e.Copy(), enc
}

// get returns the encoding of e (not nil).
func (c *encCache) get(e group.Element) []byte {
	if c.elem != nil && c.elem.IsEqual(e) {
		return c.enc
	}
	return mustMarshal(e)
}

// parseElement decodes a canonical, non-identity ristretto255 element.
func parseElement(b []byte) (group.Element, error) {
	if len(b) != ElementSize {
		return nil, fmt.Errorf("%w: element is %d bytes, want %d", ErrMalformed, len(b), ElementSize)
	}
	e := grp.NewElement()
	if err := e.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("%w: decoding element: %v", ErrMalformed, err)
	}
	if e.IsIdentity() {
		return nil, fmt.Errorf("%w: element is the identity", ErrMalformed)
	}
	return e, nil
}

// parseScalar decodes a canonical scalar.
func parseScalar(b []byte) (group.Scalar, error) {
	if len(b) != ScalarSize {
		return nil, fmt.Errorf("%w: scalar is %d bytes, want %d", ErrMalformed, len(b), ScalarSize)
	}
	s := grp.NewScalar()
	if err := s.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("%w: decoding scalar: %v", ErrMalformed, err)
	}
	return s, nil
}
