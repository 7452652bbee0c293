package escrow

import (
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestPolicySignVerifyRoundTrip(t *testing.T) {
	f := newFixture(t, 2, 3)
	b, err := f.signed.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseSignedPolicy(b)
	if err != nil {
		t.Fatal(err)
	}
	p, err := got.Verify(f.root.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	h1, _ := p.Hash()
	h2, _ := f.policy.Hash()
	if h1 != h2 {
		t.Fatal("policy hash changed across encoding")
	}
	want := "escrow: 2 of 3 custodians: A, B, C; warrant issuers: Court, Compliance; policy v3"
	if s := p.Summary(); s != want {
		t.Fatalf("Summary = %q, want %q", s, want)
	}
	if _, err := got.Verify(testKey("not root").Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify under another key = %v", err)
	}
	got.Policy.Threshold = 3
	if _, err := got.Verify(f.root.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify of an edited policy = %v", err)
	}
}

func TestPolicyValidation(t *testing.T) {
	f := newFixture(t, 2, 3)
	other, _ := Deal(seededRand("other policy"), 2, 3)
	tests := []struct {
		name string
		edit func(*Policy)
	}{
		{"threshold 0", func(p *Policy) { p.Threshold = 0 }},
		{"threshold above n", func(p *Policy) { p.Threshold = 4 }},
		{"no custodians", func(p *Policy) { p.Custodians = nil }},
		{"no issuers", func(p *Policy) { p.Issuers = nil }},
		{"missing key", func(p *Policy) { p.EscrowKey = nil }},
		{"duplicate custodian name", func(p *Policy) { p.Custodians[1].Name = "A" }},
		{"duplicate index", func(p *Policy) { p.Custodians[1].Index = 1 }},
		{"duplicate custodian key", func(p *Policy) { p.Custodians[1].Key = p.Custodians[0].Key }},
		{"duplicate issuer", func(p *Policy) { p.Issuers[1].Name = "Court" }},
		{"name with comma", func(p *Policy) { p.Custodians[0].Name = "A, B" }},
		{"name with newline", func(p *Policy) { p.Issuers[0].Name = "Court\nfake" }},
		{"empty name", func(p *Policy) { p.Custodians[0].Name = "" }},
		{"short key", func(p *Policy) { p.Issuers[0].Key = p.Issuers[0].Key[:31] }},
		{"escrow key from another dealing", func(p *Policy) { p.EscrowKey = other.PublicKey }},
		{"verification share from another dealing", func(p *Policy) {
			p.Custodians[2].VerificationShare = other.VerificationShares[2]
		}},
		{"shares swapped", func(p *Policy) {
			p.Custodians[0].VerificationShare, p.Custodians[1].VerificationShare =
				p.Custodians[1].VerificationShare, p.Custodians[0].VerificationShare
		}},
		{"threshold lowered to 1", func(p *Policy) { p.Threshold = 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := *f.policy
			p.Custodians = append([]Custodian(nil), f.policy.Custodians...)
			p.Issuers = append([]Issuer(nil), f.policy.Issuers...)
			tt.edit(&p)
			if err := p.Validate(); !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("Validate = %v, want ErrInvalidPolicy", err)
			}
			if _, err := SignPolicy(&p, f.root); !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("SignPolicy = %v, want ErrInvalidPolicy", err)
			}
		})
	}
	if err := f.policy.Validate(); err != nil {
		t.Fatalf("fixture policy: %v", err)
	}
}

func TestParsePolicyRejectsInconsistentShares(t *testing.T) {
	// An encoding that is well formed but whose verification shares do not
	// match P must not decode.
	f := newFixture(t, 2, 3)
	other, _ := Deal(seededRand("inconsistent"), 2, 3)
	p := *f.policy
	p.EscrowKey = other.PublicKey
	b, err := p.MarshalBinary() // encoding checks structure only
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePolicy(b); !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("ParsePolicy = %v, want ErrInvalidPolicy", err)
	}
	good, _ := f.policy.MarshalBinary()
	for name, in := range map[string][]byte{
		"trailing": append(append([]byte{}, good...), 0),
		"short":    good[:len(good)-1],
		"version":  append([]byte{2}, good[1:]...),
	} {
		if _, err := ParsePolicy(in); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("%s: ParsePolicy = %v", name, err)
		}
	}
}
