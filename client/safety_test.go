package client

import (
	"crypto/ed25519"
	"strings"
	"testing"
)

func TestSafetyNumber(t *testing.T) {
	a := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	seed := make([]byte, 32)
	seed[0] = 1
	b := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	seed[0] = 2
	c := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)

	ab, ba := ComputeSafetyNumber(a, b), ComputeSafetyNumber(b, a)
	if ab != ba {
		t.Fatal("safety number depends on the order of the keys")
	}
	if ab == ComputeSafetyNumber(a, c) || ab == ComputeSafetyNumber(b, c) {
		t.Fatal("different key pairs give the same number")
	}
	s := ab.String()
	lines := strings.Split(s, "\n")
	if len(lines) != 3 {
		t.Fatalf("%q: want 3 lines", s)
	}
	for _, l := range lines {
		groups := strings.Fields(l)
		if len(groups) != 4 {
			t.Fatalf("line %q: want 4 groups", l)
		}
		for _, g := range groups {
			if len(g) != 5 || strings.Trim(g, "0123456789") != "" {
				t.Fatalf("group %q is not 5 digits", g)
			}
		}
	}
	// Golden value: the number must never change, or users comparing
	// across client versions would see a false mismatch.
	const want = "11216 21629 85788 15718\n14888 55482 66755 85782\n80673 58283 38471 30952"
	if s != want {
		t.Fatalf("safety number changed:\n%s", s)
	}
}

func BenchmarkSafetyNumber(b *testing.B) {
	k1, k2 := make([]byte, 32), make([]byte, 32)
	k2[0] = 1
	for b.Loop() {
		ComputeSafetyNumber(k1, k2)
	}
}
