package escrow

import (
	"fmt"
	"sync"

	"github.com/cloudflare/circl/group"
)

// Seal multiplies the secret r by the escrow key P for every message. P
// stays the same for a whole policy, so instead of group.Element.Mul (a
// variable-base multiplication that builds its table for every call) Seal
// uses a table of multiples of P built once per key: a comb of 64 rows of
// 8 points, rows[i][j] = (j+1)·16^i·P. The product of a scalar with P is
// then 64 additions of table entries chosen by the scalar's signed radix-16
// digits, about a third of the cost of Mul.
//
// This is group algebra on circl's ristretto255 elements only (Add, Dbl,
// Neg and the constant-time CMov); no field arithmetic. The scalar is
// secret, so the multiplication takes the same steps for every scalar:
// every entry of each row is read through CMov, the sign is applied with
// CMov, and the digits are computed without branches (the recoding is the
// one of ref10's ge_scalarmult_base).

// fixedBase is the table of one point.
type fixedBase struct {
	rows [64][8]group.Element
}

func newFixedBase(q group.Element) *fixedBase {
	t := new(fixedBase)
	base := q.Copy()
	for i := range t.rows {
		acc := base.Copy()
		t.rows[i][0] = acc.Copy()
		for j := 1; j < len(t.rows[i]); j++ {
			acc.Add(acc, base)
			t.rows[i][j] = acc.Copy()
		}
		for range 4 {
			base.Dbl(base)
		}
	}
	return t
}

// ctEq is 1 if a == b and 0 otherwise, for 0 <= a, b < 2^31, without a
// branch.
func ctEq(a, b int32) int { return int((uint32(a^b) - 1) >> 31) }

// mul returns s·Q for the table's point Q, in constant time.
func (t *fixedBase) mul(s group.Scalar) group.Element {
	b := mustMarshal(s) // 32 bytes, little-endian, below the group order < 2^253
	var d [64]int8
	for i := range 32 {
		d[2*i] = int8(b[i] & 15)
		d[2*i+1] = int8(b[i] >> 4)
	}
	// Recode to digits in [-8, 8): every digit but the last; the last is at
	// most 2 since s < 2^253.
	var carry int8
	for i := range 63 {
		d[i] += carry
		carry = (d[i] + 8) >> 4
		d[i] -= carry << 4
	}
	d[63] += carry

	id := grp.Identity()
	acc := grp.Identity()
	sel, neg := grp.NewElement(), grp.NewElement()
	for i := range t.rows {
		v := int32(d[i])
		mask := v >> 31 // -1 if negative, else 0
		abs := (v ^ mask) - mask
		sel.Set(id)
		for j := range t.rows[i] {
			sel.CMov(ctEq(abs, int32(j+1)), t.rows[i][j])
		}
		neg.Neg(sel)
		sel.CMov(int(mask&1), neg)
		acc.Add(acc, sel)
	}
	return acc
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
