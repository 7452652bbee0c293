package escrow

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/cloudflare/circl/group"
)

// edgeScalars are scalars whose digits exercise the recoding: 0, 1, small
// values, values with every nibble 8 or 15, and the largest ones.
func edgeScalars(t testing.TB) []group.Scalar {
	t.Helper()
	one := grp.NewScalar().SetUint64(1)
	minusOne := grp.NewScalar().Neg(one)
	out := []group.Scalar{grp.NewScalar(), one, grp.NewScalar().SetUint64(8), grp.NewScalar().SetUint64(16),
		grp.NewScalar().SetUint64(0x88888888), grp.NewScalar().SetUint64(^uint64(0)), minusOne,
		grp.NewScalar().Sub(minusOne, grp.NewScalar().SetUint64(7))}
	for _, pat := range []byte{0x88, 0xff, 0x0f, 0xf0, 0x77} {
		var b [32]byte
		for i := range b {
			b[i] = pat
		}
		b[31] &= 0x0f // below the group order
		s := grp.NewScalar()
		if err := s.UnmarshalBinary(b[:]); err != nil {
			t.Fatalf("scalar %x: %v", b, err)
		}
		out = append(out, s)
	}
	return out
}

// TestFixedBaseMatchesMul: the escrow key's table gives the encodings of the
// same products as circl's Mul, for edge scalars and random ones, for two
// keys.
func TestFixedBaseMatchesMul(t *testing.T) {
	rnd := seededRand("fixed base")
	for k := range 2 {
		P, err := randomScalar(rnd)
		if err != nil {
			t.Fatal(err)
		}
		Q := grp.NewElement().MulGen(P)
		ek, err := lookupEscrowKey(Q)
		if err != nil {
			t.Fatal(err)
		}
		tab := ek.fixedBase()
		if again, _ := lookupEscrowKey(Q.Copy()); again != ek || again.fixedBase() != tab || !bytes.Equal(ek.enc, mustMarshal(Q)) {
			t.Fatal("key not kept")
		}
		scalars := edgeScalars(t)
		for range 200 {
			s, err := randomScalar(rnd)
			if err != nil {
				t.Fatal(err)
			}
			scalars = append(scalars, s)
		}
		for i, s := range scalars {
			if got, want := tab.mulEncoded(s), mustMarshal(grp.NewElement().Mul(Q, s)); !bytes.Equal(got[:], want) {
				t.Fatalf("key %d scalar %d (%v): table gives %x, Mul %x", k, i, s, got, want)
			}
		}
	}
}

// TestMSMMatchesNaive: the multi-scalar multiplication equals the sum of
// single multiplications, for sizes around the window changes, with zero
// scalars, repeated points and the identity among the points.
func TestMSMMatchesNaive(t *testing.T) {
	rnd := seededRand("msm")
	edges := edgeScalars(t)
	for _, n := range []int{0, 1, 2, 3, 7, 16, 33, 100, 301} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var ss []group.Scalar
			var ps []group.Element
			for i := range n {
				s, _ := randomScalar(rnd)
				if i%5 == 1 {
					s = edges[i%len(edges)]
				}
				p, _ := randomScalar(rnd)
				P := grp.NewElement().MulGen(p)
				switch {
				case i%7 == 3:
					P = grp.Identity()
				case i%11 == 4 && i > 0:
					P = ps[i-1].Copy()
				}
				ss = append(ss, s)
				ps = append(ps, P)
			}
			want := grp.Identity()
			for i := range ss {
				want.Add(want, grp.NewElement().Mul(ps[i], ss[i]))
			}
			if got := msmVarTime(ss, ps); !got.IsEqual(want) {
				t.Fatalf("msm of %d points differs from the naive sum", n)
			}
		})
	}
}

// TestSealConcurrentKeys seals under more escrow keys than the table cache
// holds, from several goroutines at once: every record is the one a fresh
// table gives (checked by opening it with the dealt shares).
func TestSealConcurrentKeys(t *testing.T) {
	var deals []*Dealing
	for i := range maxEscrowKeys + 2 {
		d, err := Deal(seededRand(fmt.Sprint("concurrent ", i)), 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		deals = append(deals, d)
	}
	f := newFixture(t, 2, 3)
	errs := make(chan error, 4*len(deals))
	for g := range 4 {
		go func() {
			for i, d := range deals {
				m := f.meta("dev-alice", "g", uint32(100*g+i), t0)
				rec, err := Seal(d.PublicKey, f.exporter, m, []byte("x"))
				if err == nil {
					err = VerifyRecordProof(d.PublicKey, rec)
				}
				if err == nil {
					rP := grp.NewElement().Mul(rec.R, d.Shares[0].Value)
					var pt []byte
					if pt, err = openRecord(rec, rP); err == nil && string(pt) != "x" {
						err = fmt.Errorf("opened to %q", pt)
					}
				}
				errs <- err
			}
		}()
	}
	for range 4 * len(deals) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestEscrowKeyChangedInPlace: an escrow key element changed in place after
// use is a new key to Seal and the proof checks, not the kept one.
func TestEscrowKeyChangedInPlace(t *testing.T) {
	f := newFixture(t, 2, 3)
	P := f.policy.EscrowKey.Copy()
	m := f.meta("dev-alice", "g", 1, t0)
	if _, err := Seal(P, f.exporter, m, []byte("x")); err != nil {
		t.Fatal(err)
	}
	P.Dbl(P)
	rec, err := Seal(P, f.exporter, m, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyRecordProof(P, rec); err != nil {
		t.Fatalf("under the changed key: %v", err)
	}
	if err := VerifyRecordProof(f.policy.EscrowKey, rec); !errors.Is(err, ErrRecordProof) {
		t.Fatalf("under the old key: %v", err)
	}
}
