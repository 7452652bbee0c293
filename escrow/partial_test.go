package escrow

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cloudflare/circl/group"
)

func TestCombine(t *testing.T) {
	f := newFixture(t, 2, 3)
	rec, _ := Seal(f.policy.EscrowKey, f.exporter, f.meta("dev-alice", "g", 1, t0), []byte("escrowed text"))
	other, _ := Seal(f.policy.EscrowKey, f.exporter, f.meta("dev-alice", "g", 2, t0), []byte("another"))
	part := func(i int, R *Record) *Partial {
		t.Helper()
		p, err := f.dealing.Shares[i].Decrypt(seededRand(fmt.Sprintf("part %d", i)), R.R)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p1, p2, p3 := part(0, rec), part(1, rec), part(2, rec)

	forgedD := *p2
	forgedD.D = grp.NewElement().Add(p2.D, grp.Generator())
	otherRecord := part(1, other) // valid for another record
	swapped := *p3
	swapped.Index = 2 // p3's D and proof claimed as custodian 2's
	// A custodian proving a D computed with a scalar that is not its share.
	rogue, _ := Deal(seededRand("rogue"), 1, 1)
	rogueShare := rogue.Shares[0]
	rogueShare.Index = 2
	roguePart, _ := rogueShare.Decrypt(seededRand("rogue part"), rec.R)
	unknown := *p1
	unknown.Index = 9
	badProof := *p1
	badProof.Proof = make([]byte, ProofSize)

	tests := []struct {
		name     string
		partials []*Partial
		wantErr  error
		rejected error // an error among the rejected partials
	}{
		{"custodians 1 and 2", []*Partial{p1, p2}, nil, nil},
		{"custodians 1 and 3", []*Partial{p1, p3}, nil, nil},
		{"custodians 3 and 2", []*Partial{p3, p2}, nil, nil},
		{"all three", []*Partial{p1, p2, p3}, nil, nil},
		{"one bad then two good", []*Partial{&forgedD, p1, p3}, nil, nil},
		{"k-1: only custodian 1", []*Partial{p1}, ErrNotEnoughPartials, nil},
		{"k-1: only custodian 3", []*Partial{p3}, ErrNotEnoughPartials, nil},
		{"none", nil, ErrNotEnoughPartials, nil},
		{"same custodian twice", []*Partial{p1, p1}, ErrNotEnoughPartials, ErrDuplicatePartial},
		{"forged D", []*Partial{p1, &forgedD}, ErrNotEnoughPartials, ErrBadProof},
		{"partial of another record", []*Partial{p1, otherRecord}, ErrNotEnoughPartials, ErrBadProof},
		{"index swapped", []*Partial{p1, &swapped}, ErrNotEnoughPartials, ErrBadProof},
		{"rogue scalar with valid-looking proof", []*Partial{p1, roguePart}, ErrNotEnoughPartials, ErrBadProof},
		{"unknown custodian", []*Partial{p1, &unknown}, ErrNotEnoughPartials, ErrUnknownCustodian},
		{"zero proof", []*Partial{&badProof, p2}, ErrNotEnoughPartials, ErrBadProof},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := Combine(f.policy, rec, tt.partials)
			if tt.wantErr == nil {
				if err != nil || string(pt) != "escrowed text" {
					t.Fatalf("Combine = %q, %v", pt, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Combine = %q, %v; want %v", pt, err, tt.wantErr)
			}
			var ne *NotEnoughPartialsError
			if !errors.As(err, &ne) || ne.Need != 2 {
				t.Fatalf("error %v is not a NotEnoughPartialsError", err)
			}
			if tt.rejected != nil && !errors.Is(err, tt.rejected) {
				t.Fatalf("error %v does not report %v", err, tt.rejected)
			}
		})
	}
}

func TestCombineThreeOfFive(t *testing.T) {
	f := newFixture(t, 3, 5)
	rec, _ := Seal(f.policy.EscrowKey, f.exporter, f.meta("dev-bob", "g", 9, t0), []byte("three of five"))
	var parts []*Partial
	for i := range 5 {
		p, _ := f.dealing.Shares[i].Decrypt(seededRand(fmt.Sprint(i)), rec.R)
		parts = append(parts, p)
	}
	for _, subset := range [][]int{{0, 1, 2}, {4, 2, 0}, {1, 3, 4}} {
		var ps []*Partial
		for _, i := range subset {
			ps = append(ps, parts[i])
		}
		if pt, err := Combine(f.policy, rec, ps); err != nil || string(pt) != "three of five" {
			t.Errorf("subset %v: Combine = %q, %v", subset, pt, err)
		}
		if _, err := Combine(f.policy, rec, ps[:2]); !errors.Is(err, ErrNotEnoughPartials) {
			t.Errorf("subset %v minus one: Combine = %v", subset, err)
		}
	}
}

func TestCombineRelabelledRecord(t *testing.T) {
	f := newFixture(t, 2, 3)
	rec, _ := Seal(f.policy.EscrowKey, f.exporter, f.meta("dev-alice", "g", 1, t0), []byte("x"))
	p1, _ := f.dealing.Shares[0].Decrypt(seededRand("a"), rec.R)
	p2, _ := f.dealing.Shares[1].Decrypt(seededRand("b"), rec.R)
	relabelled := *rec
	relabelled.Metadata.GroupID = []byte("another group")
	if _, err := Combine(f.policy, &relabelled, []*Partial{p1, p2}); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Combine of a relabelled record = %v, want ErrDecrypt", err)
	}
}

func TestPartialEncoding(t *testing.T) {
	f := newFixture(t, 2, 3)
	rec, _ := Seal(f.policy.EscrowKey, f.exporter, f.meta("dev-alice", "g", 1, t0), []byte("x"))
	p, _ := f.dealing.Shares[2].Decrypt(seededRand("enc"), rec.R)
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePartial(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyPartial(f.policy, rec.R, got); err != nil {
		t.Fatalf("decoded partial: %v", err)
	}
	for name, in := range map[string][]byte{
		"trailing": append(append([]byte{}, b...), 0),
		"short":    b[:len(b)-1],
		"index 0":  append([]byte{1, 0, 0}, b[3:]...),
		"version":  append([]byte{0}, b[1:]...),
	} {
		if _, err := ParsePartial(in); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("%s: ParsePartial = %v", name, err)
		}
	}
}

// TestCombinerMatchesInterpolation: the combiner gives the same point as
// circl's Lagrange interpolation for every set of up to 4 of the indices
// 1..6 in any given order (small coefficients, with and without L⁻¹), and
// for sets with large indices (the multiplication fallback).
func TestCombinerMatchesInterpolation(t *testing.T) {
	rnd := seededRand("combiner")
	pts := map[uint16]group.Element{}
	point := func(i uint16) group.Element {
		if pts[i] == nil {
			s, err := randomScalar(rnd)
			if err != nil {
				t.Fatal(err)
			}
			pts[i] = grp.NewElement().MulGen(s)
		}
		return pts[i]
	}
	check := func(idx []uint16) *combiner {
		t.Helper()
		xs := make([]group.Scalar, len(idx))
		ds := make([]group.Element, len(idx))
		for i, x := range idx {
			xs[i], ds[i] = scalarFromIndex(x), point(x)
		}
		c := newCombiner(idx)
		if !c.combine(ds).IsEqual(interpolateAt(xs, ds, grp.NewScalar())) {
			t.Fatalf("indices %v: combiner and interpolation differ", idx)
		}
		return c
	}
	var sets [][]uint16
	for mask := 1; mask < 1<<6; mask++ {
		var set []uint16
		for b := range 6 {
			if mask>>b&1 == 1 {
				set = append(set, uint16(b+1))
			}
		}
		if len(set) <= 4 {
			back := slices.Clone(set)
			slices.Reverse(back)
			sets = append(sets, set, back)
		}
	}
	for _, set := range sets {
		check(set)
	}
	if c := check([]uint16{1, 2}); c.small == nil || c.invL != nil {
		t.Errorf("custodians 1, 2: %+v, want small coefficients and L = 1", c)
	}
	if c := check([]uint16{3, 1}); c.small == nil || c.invL == nil {
		t.Errorf("custodians 3, 1: %+v, want small coefficients and L = 2", c)
	}
	for _, set := range [][]uint16{{250, 251, 252, 253, 254, 255}, {255, 1, 128, 77}} {
		if c := check(set); c.small != nil {
			t.Errorf("indices %v: small coefficients %v, want the fallback", set, c.small)
		}
	}
}
