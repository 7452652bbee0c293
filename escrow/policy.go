package escrow

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cloudflare/circl/group"
)

// Limits of the policy encoding.
const (
	MaxNameLen = 64
	MaxIssuers = 64
)

// Custodian is one holder of an escrow key share, as named in the policy.
type Custodian struct {
	Name              string            // shown to users; 1..64 bytes of printable UTF-8 without ',' or ';'
	Key               ed25519.PublicKey // signs the custodian's answers
	Index             uint16            // share index i, 1..255
	VerificationShare group.Element     // P_i = s_i·G
}

// Issuer is a key allowed to sign warrants.
type Issuer struct {
	Name string // as for Custodian.Name
	Key  ed25519.PublicKey
}

// Policy is the network's escrow policy. It is signed by the network root key,
// appended to the transparency log, and shown in every client (Summary).
type Policy struct {
	Version    uint32        // increases with every new policy
	EscrowKey  group.Element // P
	Threshold  uint16        // k: partials needed to open a record; 1 <= k <= len(Custodians)
	Custodians []Custodian   // distinct names, keys and indices
	Issuers    []Issuer      // at least one; distinct names and keys
	Created    time.Time     // kept to the millisecond, UTC
}

// checkStructure validates everything but the consistency of the
// verification shares with P (which costs group operations).
func (p *Policy) checkStructure() error {
	if p == nil {
		return fmt.Errorf("%w: no policy", ErrInvalidPolicy)
	}
	if p.EscrowKey == nil || p.EscrowKey.IsIdentity() {
		return fmt.Errorf("%w: missing escrow key", ErrInvalidPolicy)
	}
	n := len(p.Custodians)
	if p.Threshold < 1 || int(p.Threshold) > n || n > MaxCustodians {
		return fmt.Errorf("%w: threshold %d of %d custodians", ErrInvalidPolicy, p.Threshold, n)
	}
	names := map[string]bool{}
	keys := map[string]bool{}
	indices := map[uint16]bool{}
	for _, c := range p.Custodians {
		if err := checkName(c.Name); err != nil {
			return fmt.Errorf("%w: custodian %q: %w", ErrInvalidPolicy, c.Name, err)
		}
		if len(c.Key) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: custodian %q: key is %d bytes", ErrInvalidPolicy, c.Name, len(c.Key))
		}
		if c.Index == 0 || c.Index > MaxCustodians {
			return fmt.Errorf("%w: custodian %q: index %d", ErrInvalidPolicy, c.Name, c.Index)
		}
		if c.VerificationShare == nil || c.VerificationShare.IsIdentity() {
			return fmt.Errorf("%w: custodian %q: missing verification share", ErrInvalidPolicy, c.Name)
		}
		if names[c.Name] || keys[string(c.Key)] || indices[c.Index] {
			return fmt.Errorf("%w: custodian %q: duplicate name, key or index", ErrInvalidPolicy, c.Name)
		}
		names[c.Name], keys[string(c.Key)], indices[c.Index] = true, true, true
	}
	if len(p.Issuers) < 1 || len(p.Issuers) > MaxIssuers {
		return fmt.Errorf("%w: %d warrant issuers", ErrInvalidPolicy, len(p.Issuers))
	}
	names = map[string]bool{}
	keys = map[string]bool{}
	for _, is := range p.Issuers {
		if err := checkName(is.Name); err != nil {
			return fmt.Errorf("%w: issuer %q: %w", ErrInvalidPolicy, is.Name, err)
		}
		if len(is.Key) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: issuer %q: key is %d bytes", ErrInvalidPolicy, is.Name, len(is.Key))
		}
		if names[is.Name] || keys[string(is.Key)] {
			return fmt.Errorf("%w: issuer %q: duplicate name or key", ErrInvalidPolicy, is.Name)
		}
		names[is.Name], keys[string(is.Key)] = true, true
	}
	return nil
}

// validate checks the structure and that the verification shares lie on one
// polynomial of degree k-1 whose value at zero is P, so any k custodians can
// open a record.
func (p *Policy) validate() error {
	if err := p.checkStructure(); err != nil {
		return err
	}
	cs := append([]Custodian(nil), p.Custodians...)
	sort.Slice(cs, func(a, b int) bool { return cs[a].Index < cs[b].Index })
	k := int(p.Threshold)
	xs := make([]group.Scalar, k)
	es := make([]group.Element, k)
	for i := range k {
		xs[i] = scalarFromIndex(cs[i].Index)
		es[i] = cs[i].VerificationShare
	}
	if !interpolateAt(xs, es, grp.NewScalar()).IsEqual(p.EscrowKey) {
		return fmt.Errorf("%w: verification shares do not interpolate to the escrow key", ErrInvalidPolicy)
	}
	for _, c := range cs[k:] {
		if !interpolateAt(xs, es, scalarFromIndex(c.Index)).IsEqual(c.VerificationShare) {
			return fmt.Errorf("%w: custodian %q: verification share inconsistent with threshold %d",
				ErrInvalidPolicy, c.Name, k)
		}
	}
	return nil
}

// Validate checks the policy: field limits, distinct custodians and issuers,
// and that any k verification shares interpolate to the escrow key.
func (p *Policy) Validate() error { return p.validate() }

func checkName(s string) error {
	if len(s) < 1 || len(s) > MaxNameLen || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return fmt.Errorf("name must be 1..%d bytes of UTF-8 without surrounding space", MaxNameLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == ',' || r == ';' || !unicode.IsPrint(r) {
			return fmt.Errorf("name contains %q", r)
		}
	}
	return nil
}

// custodian returns the policy's custodian with share index i, or nil.
func (p *Policy) custodian(index uint16) *Custodian {
	for i := range p.Custodians {
		if p.Custodians[i].Index == index {
			return &p.Custodians[i]
		}
	}
	return nil
}

// issuer returns the issuer with the given name, or nil.
func (p *Policy) issuer(name string) *Issuer {
	for i := range p.Issuers {
		if p.Issuers[i].Name == name {
			return &p.Issuers[i]
		}
	}
	return nil
}

// MarshalBinary encodes the policy. It validates the policy first.
func (p *Policy) MarshalBinary() ([]byte, error) {
	if err := p.checkStructure(); err != nil {
		return nil, fmt.Errorf("encoding policy: %w", err)
	}
	e := newEncoder()
	e.u8(formatVersion)
	e.u32(p.Version)
	e.element("escrow key", p.EscrowKey)
	e.u16(p.Threshold)
	e.count("custodians", len(p.Custodians), 1, MaxCustodians)
	for _, c := range p.Custodians {
		e.str("custodian name", 1, c.Name, 1, MaxNameLen)
		e.fixed("custodian key", c.Key, ed25519.PublicKeySize)
		e.u16(c.Index)
		e.element("verification share", c.VerificationShare)
	}
	e.count("issuers", len(p.Issuers), 1, MaxIssuers)
	for _, is := range p.Issuers {
		e.str("issuer name", 1, is.Name, 1, MaxNameLen)
		e.fixed("issuer key", is.Key, ed25519.PublicKeySize)
	}
	e.time("created", p.Created)
	return e.bytes()
}

// ParsePolicy decodes and fully validates a policy (not its signature).
func ParsePolicy(b []byte) (*Policy, error) {
	d := newDecoder(b)
	d.version("policy")
	p := &Policy{}
	p.Version = d.u32("policy version")
	p.EscrowKey = d.element("escrow key")
	p.Threshold = d.u16("threshold")
	n := d.count("custodians", 1, MaxCustodians)
	for i := 0; i < n && d.err == nil; i++ {
		var c Custodian
		c.Name = d.str("custodian name", 1, 1, MaxNameLen)
		c.Key = d.fixed("custodian key", ed25519.PublicKeySize)
		c.Index = d.u16("custodian index")
		c.VerificationShare = d.element("verification share")
		p.Custodians = append(p.Custodians, c)
	}
	n = d.count("issuers", 1, MaxIssuers)
	for i := 0; i < n && d.err == nil; i++ {
		var is Issuer
		is.Name = d.str("issuer name", 1, 1, MaxNameLen)
		is.Key = d.fixed("issuer key", ed25519.PublicKeySize)
		p.Issuers = append(p.Issuers, is)
	}
	p.Created = d.time("created")
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decoding policy: %w", err)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("decoding policy: %w", err)
	}
	return p, nil
}

// Hash is SHA-256 of the policy's encoding: the value the transparency log
// records and clients compare.
func (p *Policy) Hash() ([32]byte, error) {
	b, err := p.MarshalBinary()
	if err != nil {
		return [32]byte{}, fmt.Errorf("hashing policy: %w", err)
	}
	return sha256.Sum256(b), nil
}

// Summary is the short text clients show, e.g.
// "escrow: 2 of 3 custodians: A, B, C; warrant issuers: Court; policy v3".
func (p *Policy) Summary() string {
	cs := make([]string, len(p.Custodians))
	for i, c := range p.Custodians {
		cs[i] = c.Name
	}
	is := make([]string, len(p.Issuers))
	for i, x := range p.Issuers {
		is[i] = x.Name
	}
	return fmt.Sprintf("escrow: %d of %d custodians: %s; warrant issuers: %s; policy v%d",
		p.Threshold, len(p.Custodians), strings.Join(cs, ", "), strings.Join(is, ", "), p.Version)
}

// SignedPolicy is a policy with the network root key's signature.
type SignedPolicy struct {
	Policy    *Policy
	Signature []byte // Ed25519 over ctxPolicySig || policy encoding
}

// SignPolicy validates the policy and signs it with the network root key.
func SignPolicy(p *Policy, rootKey ed25519.PrivateKey) (*SignedPolicy, error) {
	if len(rootKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing policy: root key is %d bytes", len(rootKey))
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("signing policy: %w", err)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("signing policy: %w", err)
	}
	return &SignedPolicy{Policy: p, Signature: ed25519.Sign(rootKey, append([]byte(ctxPolicySig), b...))}, nil
}

// Verify checks the root signature and returns the policy.
func (s *SignedPolicy) Verify(rootKey ed25519.PublicKey) (*Policy, error) {
	b, err := s.Policy.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("verifying policy: %w", err)
	}
	if !verifyEd25519(rootKey, append([]byte(ctxPolicySig), b...), s.Signature) {
		return nil, fmt.Errorf("verifying policy: %w", ErrBadSignature)
	}
	return s.Policy, nil
}

// MarshalBinary encodes the signed policy: version, policy, signature.
func (s *SignedPolicy) MarshalBinary() ([]byte, error) {
	b, err := s.Policy.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding signed policy: %w", err)
	}
	e := newEncoder()
	e.u8(formatVersion)
	e.vec("policy", 3, b, 1, 1<<20)
	e.fixed("policy signature", s.Signature, ed25519.SignatureSize)
	return e.bytes()
}

// ParseSignedPolicy decodes a signed policy; call Verify to check it.
func ParseSignedPolicy(b []byte) (*SignedPolicy, error) {
	d := newDecoder(b)
	d.version("signed policy")
	pb := d.vec("policy", 3, 1, 1<<20)
	sig := d.fixed("policy signature", ed25519.SignatureSize)
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decoding signed policy: %w", err)
	}
	p, err := ParsePolicy(pb)
	if err != nil {
		return nil, fmt.Errorf("decoding signed policy: %w", err)
	}
	return &SignedPolicy{Policy: p, Signature: sig}, nil
}

// keyEqual compares two public keys.
func keyEqual(a, b ed25519.PublicKey) bool { return bytes.Equal(a, b) }
