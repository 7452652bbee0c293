package escrow

import (
	"fmt"
	"sync"

	r255 "github.com/bwesterb/go-ristretto"
	"github.com/cloudflare/circl/group"
)

// Seal multiplies the secret r by the escrow key P for every message. P
// stays the same for a whole policy, so instead of group.Element.Mul (a
// variable-base multiplication that builds its table for every call) Seal
// uses a table of multiples of P computed once per key, with the
// constant-time table multiplication of github.com/bwesterb/go-ristretto,
// the ristretto255 implementation circl's group.Ristretto255 is built on.
// No group or field arithmetic is written here: the values cross between
// the two libraries as their canonical 32-byte encodings.

// fixedBase is the table of one point.
type fixedBase struct {
	t r255.ScalarMultTable
}

func newFixedBase(q group.Element) *fixedBase {
	var enc [32]byte
	copy(enc[:], mustMarshal(q))
	var p r255.Point
	if !p.SetBytes(&enc) {
		// q is a valid circl element, so its encoding is canonical.
		panic("escrow: go-ristretto refused a canonical ristretto255 encoding")
	}
	t := new(fixedBase)
	t.t.Compute(&p)
	return t
}

// mulEncoded returns the canonical encoding of s·Q for the table's point
// Q, in constant time in s. Seal needs only the encoding, so the product
// is not decoded into a circl element (and encoded again): each costs an
// inverse square root.
func (t *fixedBase) mulEncoded(s group.Scalar) [ElementSize]byte {
	var sb, out [32]byte
	copy(sb[:], mustMarshal(s)) // 32 bytes, little-endian, reduced
	var sc r255.Scalar
	sc.SetBytes(&sb)
	var p r255.Point
	p.ScalarMultTable(&t.t, &sc)
	p.BytesInto(&out)
	return out
}

// escrowKey is what the package keeps of an escrow key it has used: its
// encoding (bound by every record proof) and, once Seal needs it, its table.
type escrowKey struct {
	key   group.Element // a copy of its own
	enc   []byte
	once  sync.Once
	table *fixedBase
}

// fixedBase returns the key's table, built on first use.
func (k *escrowKey) fixedBase() *fixedBase {
	k.once.Do(func() { k.table = newFixedBase(k.key) })
	return k.table
}

// escrowKeys holds the keys used recently, newest last. A network has one
// key, two while a policy changes; the oldest is dropped beyond
// maxEscrowKeys. A key is found by group equality with the copy kept, so a
// key element changed in place is looked up afresh.
var escrowKeys struct {
	sync.Mutex
	recent []*escrowKey
}

const maxEscrowKeys = 8

// lookupEscrowKey returns what is kept of the escrow key P, refusing a
// missing key or the identity (ErrInvalidPolicy).
func lookupEscrowKey(P group.Element) (*escrowKey, error) {
	if P == nil || P.IsIdentity() {
		return nil, fmt.Errorf("%w: missing escrow key", ErrInvalidPolicy)
	}
	escrowKeys.Lock()
	for _, k := range escrowKeys.recent {
		if k.key.IsEqual(P) {
			escrowKeys.Unlock()
			return k, nil
		}
	}
	escrowKeys.Unlock()
	k := &escrowKey{key: P.Copy(), enc: mustMarshal(P)}
	escrowKeys.Lock()
	if len(escrowKeys.recent) >= maxEscrowKeys {
		escrowKeys.recent = append([]*escrowKey(nil), escrowKeys.recent[1:]...)
	}
	escrowKeys.recent = append(escrowKeys.recent, k)
	escrowKeys.Unlock()
	return k, nil
}
