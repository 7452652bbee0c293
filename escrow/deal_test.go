package escrow

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cloudflare/circl/group"
)

func TestDealParameters(t *testing.T) {
	tests := []struct {
		k, n int
		ok   bool
	}{
		{1, 1, true}, {2, 3, true}, {3, 5, true}, {5, 5, true},
		{0, 3, false}, {4, 3, false}, {-1, 3, false}, {2, MaxCustodians + 1, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d_of_%d", tt.k, tt.n), func(t *testing.T) {
			d, err := Deal(seededRand("params"), tt.k, tt.n)
			if !tt.ok {
				if !errors.Is(err, ErrInvalidThreshold) {
					t.Fatalf("Deal = %v, want ErrInvalidThreshold", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Deal: %v", err)
			}
			if len(d.Shares) != tt.n || len(d.Commitments) != tt.k || !d.Commitments[0].IsEqual(d.PublicKey) {
				t.Fatalf("dealing has %d shares, %d commitments", len(d.Shares), len(d.Commitments))
			}
			for i, sh := range d.Shares {
				if sh.Index != uint16(i+1) {
					t.Errorf("share %d has index %d", i, sh.Index)
				}
				if err := VerifyShare(sh, d.Commitments); err != nil {
					t.Errorf("VerifyShare(%d): %v", sh.Index, err)
				}
				if !d.Commitments.VerificationShare(sh.Index).IsEqual(d.VerificationShares[i]) {
					t.Errorf("verification share %d differs from the commitments' value", sh.Index)
				}
			}
		})
	}
}

func TestDealDeterministicAndFresh(t *testing.T) {
	a, _ := Deal(seededRand("same"), 2, 3)
	b, _ := Deal(seededRand("same"), 2, 3)
	c, _ := Deal(seededRand("other"), 2, 3)
	if !a.PublicKey.IsEqual(b.PublicKey) || !a.Shares[0].Equal(b.Shares[0]) {
		t.Error("same seed gave different dealings")
	}
	if a.PublicKey.IsEqual(c.PublicKey) || a.Shares[0].Equal(c.Shares[0]) {
		t.Error("different seeds gave the same dealing")
	}
}

// TestSharesInterpolateToKey checks, in the exponent only, that every k-subset
// of verification shares interpolates to P and that k-1 do not.
func TestSharesInterpolateToKey(t *testing.T) {
	d, _ := Deal(seededRand("interp"), 3, 5)
	zero := grp.NewScalar()
	for _, subset := range [][]int{{0, 1, 2}, {0, 2, 4}, {1, 3, 4}, {4, 3, 0}} {
		var xs []group.Scalar
		var es []group.Element
		for _, i := range subset {
			xs = append(xs, scalarFromIndex(d.Shares[i].Index))
			es = append(es, d.VerificationShares[i])
		}
		if !interpolateAt(xs, es, zero).IsEqual(d.PublicKey) {
			t.Errorf("subset %v does not interpolate to P", subset)
		}
		if interpolateAt(xs[:2], es[:2], zero).IsEqual(d.PublicKey) {
			t.Errorf("k-1 shares of subset %v interpolate to P", subset)
		}
	}
}

func TestVerifyShareRejects(t *testing.T) {
	d, _ := Deal(seededRand("verify"), 2, 3)
	other, _ := Deal(seededRand("verify other"), 2, 3)
	one := grp.NewScalar().SetUint64(1)
	good := d.Shares[1]
	tests := []struct {
		name string
		sh   Share
		c    Commitments
	}{
		{"value plus one", Share{Index: good.Index, Value: grp.NewScalar().Add(good.Value, one)}, d.Commitments},
		{"wrong index", Share{Index: 3, Value: good.Value}, d.Commitments},
		{"zero index", Share{Index: 0, Value: good.Value}, d.Commitments},
		{"other dealing's commitments", good, other.Commitments},
		{"truncated commitments", good, d.Commitments[:1]},
		{"no commitments", good, nil},
		{"nil value", Share{Index: 1}, d.Commitments},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyShare(tt.sh, tt.c)
			if !errors.Is(err, ErrInvalidShare) && !errors.Is(err, ErrInvalidThreshold) {
				t.Fatalf("VerifyShare = %v, want rejection", err)
			}
		})
	}
}

func TestShareEncoding(t *testing.T) {
	d, _ := Deal(seededRand("enc"), 2, 3)
	for _, sh := range d.Shares {
		b, err := sh.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseShare(b)
		if err != nil || !got.Equal(sh) {
			t.Fatalf("ParseShare = %v, %v", got, err)
		}
	}
	cb, _ := d.Commitments.MarshalBinary()
	c, err := ParseCommitments(cb)
	if err != nil || len(c) != 2 || !c[1].IsEqual(d.Commitments[1]) {
		t.Fatalf("ParseCommitments = %v, %v", c, err)
	}
	sb, _ := d.Shares[0].MarshalBinary()
	bad := map[string][]byte{
		"empty":           nil,
		"version 2":       append([]byte{2}, sb[1:]...),
		"trailing":        append(append([]byte{}, sb...), 0),
		"truncated":       sb[:len(sb)-1],
		"index 0":         append([]byte{1, 0, 0}, sb[3:]...),
		"non-canonical":   append(append([]byte{}, sb[:3]...), bytesOf(0xff, 32)...),
		"zero value":      append(append([]byte{}, sb[:3]...), make([]byte, 32)...),
		"identity commit": append([]byte{1, 0, 1}, make([]byte, 32)...),
	}
	for name, b := range bad {
		if name == "identity commit" {
			if _, err := ParseCommitments(b); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: ParseCommitments = %v", name, err)
			}
			continue
		}
		_, err := ParseShare(b)
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("%s: ParseShare = %v", name, err)
		}
	}
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// TestDKG runs the distributed key generation among three custodians and
// opens a record sealed to the joint key with two of the joint shares.
func TestDKG(t *testing.T) {
	const k, n = 2, 3
	var contributions []*Dealing
	var commitments []Commitments
	for d := range n {
		c, err := Deal(seededRand(fmt.Sprintf("dkg dealer %d", d)), k, n)
		if err != nil {
			t.Fatal(err)
		}
		contributions = append(contributions, c)
		commitments = append(commitments, c.Commitments)
	}
	joint, err := SumCommitments(commitments)
	if err != nil {
		t.Fatal(err)
	}
	var shares []Share
	for i := 1; i <= n; i++ {
		var received []Share
		for _, c := range contributions {
			received = append(received, c.Shares[i-1])
		}
		sh, err := CombineContributions(uint16(i), received, commitments)
		if err != nil {
			t.Fatalf("custodian %d: %v", i, err)
		}
		if err := VerifyShare(sh, joint); err != nil {
			t.Fatalf("joint share %d: %v", i, err)
		}
		shares = append(shares, sh)
	}
	f := newFixture(t, k, n)
	for i := range f.policy.Custodians {
		f.policy.Custodians[i].VerificationShare = joint.VerificationShare(uint16(i + 1))
	}
	f.policy.EscrowKey = joint[0]
	if err := f.policy.Validate(); err != nil {
		t.Fatalf("policy from DKG: %v", err)
	}
	rec, _ := Seal(joint[0], f.exporter, f.meta("dev-alice", "g", 1, t0), []byte("jointly escrowed"))
	p1, _ := shares[0].Decrypt(seededRand("p1"), rec.R)
	p3, _ := shares[2].Decrypt(seededRand("p3"), rec.R)
	pt, err := Combine(f.policy, rec, []*Partial{p1, p3})
	if err != nil || string(pt) != "jointly escrowed" {
		t.Fatalf("Combine = %q, %v", pt, err)
	}

	// A dealer that sends a bad share is named.
	received := []Share{contributions[0].Shares[0], contributions[1].Shares[1], contributions[2].Shares[0]}
	if _, err := CombineContributions(1, received, commitments); !errors.Is(err, ErrInvalidShare) {
		t.Fatalf("CombineContributions with a wrong share = %v", err)
	}
	bad := contributions[1].Shares[0]
	bad.Value = grp.NewScalar().Add(bad.Value, grp.NewScalar().SetUint64(1))
	received = []Share{contributions[0].Shares[0], bad, contributions[2].Shares[0]}
	if _, err := CombineContributions(1, received, commitments); !errors.Is(err, ErrInvalidShare) {
		t.Fatalf("CombineContributions with a corrupted share = %v", err)
	}
}
