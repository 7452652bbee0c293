package escrow

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"time"
	"unicode/utf8"
)

// Limits of the warrant encoding.
const (
	MaxWarrantID   = 64
	MaxUsername    = 64
	MaxScopeList   = 1024
	MaxReason      = 1024
	MaxCaseRef     = 128
	maxWarrantSize = 1 << 20
)

// Scope names what a warrant covers. A record is in scope if its sender
// device is in Devices, or its sender's username is in Usernames, or its group
// is in Groups. Devices and usernames match the sender of a message; a group
// covers every sender in it. At least one entry is required: there is no
// warrant for everything.
type Scope struct {
	Devices   [][]byte // device ids, 1..64 bytes each
	Usernames []string // 1..64 bytes each
	Groups    [][]byte // MLS group ids, 1..255 bytes each
}

// Warrant authorises custodians to open records in its scope and time range
// until it expires.
type Warrant struct {
	ID       string    // unique per issuer; what revocation lists name; 1..64 bytes
	Issuer   string    // an issuer name in the policy
	Issued   time.Time // not valid before this time
	Scope    Scope     //
	From, To time.Time // messages with times in [From, To)
	NotAfter time.Time // expiry: custodians refuse at or after this time
	Reason   string    // 1..1024 bytes of UTF-8
	CaseRef  string    // case reference; 0..128 bytes of UTF-8
}

func (w *Warrant) validate() error {
	if w == nil {
		return fmt.Errorf("%w: no warrant", ErrInvalidWarrant)
	}
	if err := checkName(w.ID); err != nil {
		return fmt.Errorf("%w: id: %w", ErrInvalidWarrant, err)
	}
	if err := checkName(w.Issuer); err != nil {
		return fmt.Errorf("%w: issuer: %w", ErrInvalidWarrant, err)
	}
	s := w.Scope
	if len(s.Devices)+len(s.Usernames)+len(s.Groups) == 0 {
		return fmt.Errorf("%w: empty scope", ErrInvalidWarrant)
	}
	if !w.From.Before(w.To) {
		return fmt.Errorf("%w: empty time range [%v, %v)", ErrInvalidWarrant, w.From, w.To)
	}
	if !w.Issued.Before(w.NotAfter) {
		return fmt.Errorf("%w: expires before it is issued", ErrInvalidWarrant)
	}
	if !utf8.ValidString(w.Reason) || !utf8.ValidString(w.CaseRef) || w.Reason == "" {
		return fmt.Errorf("%w: reason and case reference must be UTF-8; reason is required", ErrInvalidWarrant)
	}
	return nil
}

// MarshalBinary encodes the warrant.
func (w *Warrant) MarshalBinary() ([]byte, error) {
	if err := w.validate(); err != nil {
		return nil, fmt.Errorf("encoding warrant: %w", err)
	}
	e := newEncoder()
	e.u8(formatVersion)
	e.str("warrant id", 1, w.ID, 1, MaxWarrantID)
	e.str("issuer", 1, w.Issuer, 1, MaxNameLen)
	e.time("issued", w.Issued)
	e.count("scope devices", len(w.Scope.Devices), 0, MaxScopeList)
	for _, v := range w.Scope.Devices {
		e.vec("scope device", 1, v, 1, MaxDeviceID)
	}
	e.count("scope usernames", len(w.Scope.Usernames), 0, MaxScopeList)
	for _, v := range w.Scope.Usernames {
		e.str("scope username", 1, v, 1, MaxUsername)
	}
	e.count("scope groups", len(w.Scope.Groups), 0, MaxScopeList)
	for _, v := range w.Scope.Groups {
		e.vec("scope group", 1, v, 1, MaxGroupID)
	}
	e.time("from", w.From)
	e.time("to", w.To)
	e.time("not after", w.NotAfter)
	e.str("reason", 2, w.Reason, 1, MaxReason)
	e.str("case reference", 1, w.CaseRef, 0, MaxCaseRef)
	b, err := e.bytes()
	if err != nil {
		return nil, fmt.Errorf("encoding warrant: %w: %w", ErrInvalidWarrant, err)
	}
	return b, nil
}

// ParseWarrant decodes and validates a warrant (not its signature).
func ParseWarrant(b []byte) (*Warrant, error) {
	d := newDecoder(b)
	d.version("warrant")
	w := &Warrant{}
	w.ID = d.str("warrant id", 1, 1, MaxWarrantID)
	w.Issuer = d.str("issuer", 1, 1, MaxNameLen)
	w.Issued = d.time("issued")
	n := d.count("scope devices", 0, MaxScopeList)
	for i := 0; i < n && d.err == nil; i++ {
		w.Scope.Devices = append(w.Scope.Devices, d.vec("scope device", 1, 1, MaxDeviceID))
	}
	n = d.count("scope usernames", 0, MaxScopeList)
	for i := 0; i < n && d.err == nil; i++ {
		w.Scope.Usernames = append(w.Scope.Usernames, d.str("scope username", 1, 1, MaxUsername))
	}
	n = d.count("scope groups", 0, MaxScopeList)
	for i := 0; i < n && d.err == nil; i++ {
		w.Scope.Groups = append(w.Scope.Groups, d.vec("scope group", 1, 1, MaxGroupID))
	}
	w.From = d.time("from")
	w.To = d.time("to")
	w.NotAfter = d.time("not after")
	w.Reason = d.str("reason", 2, 1, MaxReason)
	w.CaseRef = d.str("case reference", 1, 0, MaxCaseRef)
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decoding warrant: %w", err)
	}
	if err := w.validate(); err != nil {
		return nil, fmt.Errorf("decoding warrant: %w", err)
	}
	return w, nil
}

// SignedWarrant is a warrant with its issuer's signature.
type SignedWarrant struct {
	Warrant   *Warrant
	Signature []byte // Ed25519 over ctxWarrantSig || warrant encoding
}

// SignWarrant signs a warrant with an issuer key.
func SignWarrant(w *Warrant, issuerKey ed25519.PrivateKey) (*SignedWarrant, error) {
	if len(issuerKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing warrant: issuer key is %d bytes", len(issuerKey))
	}
	b, err := w.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("signing warrant: %w", err)
	}
	return &SignedWarrant{Warrant: w, Signature: ed25519.Sign(issuerKey, append([]byte(ctxWarrantSig), b...))}, nil
}

// MarshalBinary encodes the signed warrant: version, warrant, signature.
func (s *SignedWarrant) MarshalBinary() ([]byte, error) {
	b, err := s.Warrant.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding signed warrant: %w", err)
	}
	e := newEncoder()
	e.u8(formatVersion)
	e.vec("warrant", 3, b, 1, maxWarrantSize)
	e.fixed("warrant signature", s.Signature, ed25519.SignatureSize)
	return e.bytes()
}

// ParseSignedWarrant decodes a signed warrant; Check verifies it.
func ParseSignedWarrant(b []byte) (*SignedWarrant, error) {
	d := newDecoder(b)
	sw, err := decodeSignedWarrant(d)
	if err == nil {
		err = d.finish()
	}
	if err != nil {
		return nil, fmt.Errorf("decoding signed warrant: %w", err)
	}
	return sw, nil
}

func decodeSignedWarrant(d *decoder) (*SignedWarrant, error) {
	d.version("signed warrant")
	wb := d.vec("warrant", 3, 1, maxWarrantSize)
	sig := d.fixed("warrant signature", ed25519.SignatureSize)
	if d.err != nil {
		return nil, d.err
	}
	w, err := ParseWarrant(wb)
	if err != nil {
		return nil, err
	}
	return &SignedWarrant{Warrant: w, Signature: sig}, nil
}

// Hash is SHA-256 of the signed warrant's encoding, for audit logs.
func (s *SignedWarrant) Hash() ([32]byte, error) {
	b, err := s.MarshalBinary()
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// Check verifies a signed warrant at time now: it must be well formed, signed
// by an issuer named in the policy, not revoked (revoked holds revoked warrant
// ids; nil means none), issued at or before now and not expired.
func Check(p *Policy, sw *SignedWarrant, now time.Time, revoked map[string]bool) error {
	if err := p.checkStructure(); err != nil {
		return fmt.Errorf("checking warrant: %w", err)
	}
	if sw == nil {
		return fmt.Errorf("checking warrant: %w: none", ErrInvalidWarrant)
	}
	w := sw.Warrant
	b, err := w.MarshalBinary()
	if err != nil {
		return fmt.Errorf("checking warrant: %w", err)
	}
	is := p.issuer(w.Issuer)
	if is == nil {
		return fmt.Errorf("checking warrant %q: issuer %q: %w", w.ID, w.Issuer, ErrUnknownIssuer)
	}
	if !verifyEd25519(is.Key, append([]byte(ctxWarrantSig), b...), sw.Signature) {
		return fmt.Errorf("checking warrant %q: %w", w.ID, ErrBadSignature)
	}
	if revoked[w.ID] {
		return fmt.Errorf("checking warrant %q: %w", w.ID, ErrWarrantRevoked)
	}
	if now.Before(w.Issued) {
		return fmt.Errorf("checking warrant %q: issued %v, now %v: %w", w.ID, w.Issued, now, ErrWarrantNotYetValid)
	}
	if !now.Before(w.NotAfter) {
		return fmt.Errorf("checking warrant %q: expired %v, now %v: %w", w.ID, w.NotAfter, now, ErrWarrantExpired)
	}
	return nil
}

// InScope reports whether a record with metadata m, sent by the device of the
// given username, is covered by the warrant: in its scope and with a claimed
// sending time in [From, To).
func InScope(w *Warrant, m *Metadata, username string) bool {
	return w.checkRecord(m, username, m.SentAt) == nil
}

// Covers reports whether a custodian would find a countersigned record, sent
// by the device of the given username, covered by the warrant: in its scope,
// with both the claimed sending time and the server time in [From, To). It
// checks no signature.
func Covers(w *Warrant, rec *ServerRecord, username string) bool {
	return w.checkRecord(&rec.Signed.Record.Metadata, username, rec.ServerTime) == nil
}

// checkRecord checks scope and that both the sender's claimed time and the
// server's time are in [From, To). Requiring both is the conservative choice:
// a custodian opens a record only if neither clock places it outside the range.
func (w *Warrant) checkRecord(m *Metadata, username string, serverTime time.Time) error {
	if !w.Scope.covers(m, username) {
		return ErrOutOfScope
	}
	for _, t := range []time.Time{m.SentAt, serverTime} {
		if t.Before(w.From) || !t.Before(w.To) {
			return fmt.Errorf("time %v outside [%v, %v): %w", t, w.From, w.To, ErrOutOfTimeRange)
		}
	}
	return nil
}

func (s *Scope) covers(m *Metadata, username string) bool {
	for _, d := range s.Devices {
		if bytes.Equal(d, m.SenderDevice) {
			return true
		}
	}
	for _, u := range s.Usernames {
		if username != "" && u == username {
			return true
		}
	}
	for _, g := range s.Groups {
		if bytes.Equal(g, m.GroupID) {
			return true
		}
	}
	return false
}
