package audit

import (
	"bufio"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// Signed statements about a log. A service (the archive, each custodian)
// signs its head with its own Ed25519 key and hands it to the other
// services, which append it to their own logs (see AppendAnchor): each log
// then holds the others' heads, and a truncation or a rewrite of a log after
// one of its heads was anchored elsewhere is found by Check. Anyone holding
// a signed head can check a log against it the same way.

// Limits of a statement.
const (
	// MaxService bounds a service name ("archive", "custodian/A").
	MaxService = 128
	// MaxKinds bounds the entry kinds a count statement lists.
	MaxKinds = 64
	// MaxAnchors bounds the heads of other services a count statement
	// carries.
	MaxAnchors = 32
	// MaxWarrants bounds the warrants a count statement lists counts of.
	MaxWarrants = 8192
	// maxStatement bounds an encoded count statement.
	maxStatement = 4 << 20
)

// ErrBadSignature: a statement's signature does not verify under the key
// it was checked with.
var ErrBadSignature = errors.New("audit: bad signature on a signed statement")

const (
	statementVersion = 1
	headContext      = "anom/audit/v1 signed head\x00"
	// countsContext is v2: a count statement also counts per warrant.
	countsContext = "anom/audit/v2 signed counts\x00"
)

// SignedHead is a service's signed statement {service, seq, hash, time}:
// "my log's entry Seq has hash Hash".
type SignedHead struct {
	Service string
	Head    Head
	Time    time.Time // when it was signed, to the millisecond
	Sig     []byte    // Ed25519 over headContext and the encoding before it
}

func checkService(s string) error {
	if len(s) < 1 || len(s) > MaxService {
		return fmt.Errorf("%w: service name is %d bytes", ErrMalformed, len(s))
	}
	return nil
}

func timeMS(t time.Time) (uint64, error) {
	ms := t.UnixMilli()
	if ms < 0 || ms > 1<<62 {
		return 0, fmt.Errorf("%w: time %v out of range", ErrMalformed, t)
	}
	return uint64(ms), nil
}

func addHeadBody(b *cryptobyte.Builder, service string, h Head, ms uint64) {
	b.AddUint8(statementVersion)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(service)) })
	b.AddUint64(h.Seq)
	b.AddBytes(h.Hash[:])
	b.AddUint64(ms)
}

func (s *SignedHead) tbs() ([]byte, error) {
	if err := checkService(s.Service); err != nil {
		return nil, err
	}
	ms, err := timeMS(s.Time)
	if err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder([]byte(headContext))
	addHeadBody(b, s.Service, s.Head, ms)
	return b.Bytes()
}

// SignHead signs head h of service's log at time at.
func SignHead(key ed25519.PrivateKey, service string, h Head, at time.Time) (*SignedHead, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing audit head: key is %d bytes", len(key))
	}
	s := &SignedHead{Service: service, Head: h, Time: at.UTC().Truncate(time.Millisecond)}
	m, err := s.tbs()
	if err != nil {
		return nil, fmt.Errorf("signing audit head: %w", err)
	}
	s.Sig = ed25519.Sign(key, m)
	return s, nil
}

// Verify checks the signature under pub.
func (s *SignedHead) Verify(pub ed25519.PublicKey) error {
	m, err := s.tbs()
	if err != nil {
		return fmt.Errorf("verifying head of %q: %w", s.Service, err)
	}
	if len(pub) != ed25519.PublicKeySize || len(s.Sig) != ed25519.SignatureSize || !ed25519.Verify(pub, m, s.Sig) {
		return fmt.Errorf("verifying head %s of %q: %w", s.Head, s.Service, ErrBadSignature)
	}
	return nil
}

// MarshalBinary encodes the statement: version, service (8-bit length),
// seq, hash, time (ms), signature (64 bytes).
func (s *SignedHead) MarshalBinary() ([]byte, error) {
	m, err := s.tbs()
	if err != nil {
		return nil, fmt.Errorf("encoding signed head: %w", err)
	}
	if len(s.Sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("encoding signed head: %w: signature is %d bytes", ErrMalformed, len(s.Sig))
	}
	return append(m[len(headContext):], s.Sig...), nil
}

func readHeadBody(s *cryptobyte.String) (service string, h Head, at time.Time, ok bool) {
	var (
		v    uint8
		name cryptobyte.String
		hash []byte
		ms   uint64
	)
	if !s.ReadUint8(&v) || v != statementVersion || !s.ReadUint8LengthPrefixed(&name) ||
		!s.ReadUint64(&h.Seq) || !s.ReadBytes(&hash, 32) || !s.ReadUint64(&ms) {
		return "", Head{}, time.Time{}, false
	}
	if len(name) < 1 || ms > 1<<62 {
		return "", Head{}, time.Time{}, false
	}
	copy(h.Hash[:], hash)
	return string(name), h, time.UnixMilli(int64(ms)).UTC(), true
}

// ParseSignedHead decodes a statement encoded by MarshalBinary. It does not
// check the signature.
func ParseSignedHead(data []byte) (*SignedHead, error) {
	s := cryptobyte.String(data)
	service, h, at, ok := readHeadBody(&s)
	var sig []byte
	if !ok || !s.ReadBytes(&sig, ed25519.SignatureSize) {
		return nil, fmt.Errorf("decoding signed head: %w: truncated or bad version", ErrMalformed)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("decoding signed head: %w: %d trailing bytes", ErrMalformed, len(s))
	}
	return &SignedHead{Service: service, Head: h, Time: at, Sig: append([]byte{}, sig...)}, nil
}

// String is the statement as one line of text: the base64url of its
// encoding (what `verify-audit --head` and anchor files take).
func (s *SignedHead) String() string {
	b, err := s.MarshalBinary()
	if err != nil {
		return "invalid: " + err.Error()
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Describe is a one-line human description, for comments beside String.
func (s *SignedHead) Describe() string {
	return fmt.Sprintf("%s head %s signed %s", s.Service, s.Head, s.Time.UTC().Format(time.RFC3339Nano))
}

// ParseSignedHeadText decodes String's form.
func ParseSignedHeadText(text string) (*SignedHead, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("decoding signed head: %w: %w", ErrMalformed, err)
	}
	return ParseSignedHead(b)
}

// maxHeadsFile bounds what ReadSignedHeads reads.
const maxHeadsFile = 64 << 20

// ReadSignedHeads reads signed heads one per line in String's form; blank
// lines and lines starting with '#' are skipped.
func ReadSignedHeads(r io.Reader) ([]*SignedHead, error) {
	var out []*SignedHead
	sc := bufio.NewScanner(io.LimitReader(r, maxHeadsFile))
	sc.Buffer(make([]byte, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		h, err := ParseSignedHeadText(line)
		if err != nil {
			return nil, fmt.Errorf("reading signed heads: line %d: %w", n, err)
		}
		out = append(out, h)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading signed heads: %w: %w", ErrMalformed, err)
	}
	return out, nil
}

// WriteSignedHeads writes heads in ReadSignedHeads's form, each after a
// comment that describes it.
func WriteSignedHeads(w io.Writer, heads []*SignedHead) error {
	bw := bufio.NewWriter(w)
	for _, h := range heads {
		fmt.Fprintf(bw, "# %s\n%s\n", h.Describe(), h)
	}
	return bw.Flush()
}

// Counts is a service's signed statement of what its log holds: its head,
// the number of entries of each kind up to it, the number of each kind per
// warrant (see Summary.Warrants), and the latest head of each other service
// anchored in it. The requester's Nonce makes it fresh.
type Counts struct {
	Service string
	Head    Head
	Time    time.Time
	Nonce   [32]byte
	Kinds   map[string]uint64
	// Anchors is the latest head of each other service anchored in the
	// log, in service order.
	Anchors []*SignedHead
	// Warrants counts, per warrant hash, the entries of each kind that
	// name it; at most MaxWarrants warrants, each with at most MaxKinds
	// kinds.
	Warrants map[[32]byte]map[string]uint64
	Sig      []byte
}

func (c *Counts) body() ([]byte, error) {
	if err := checkService(c.Service); err != nil {
		return nil, err
	}
	ms, err := timeMS(c.Time)
	if err != nil {
		return nil, err
	}
	if len(c.Kinds) > MaxKinds || len(c.Anchors) > MaxAnchors {
		return nil, fmt.Errorf("%w: %d kinds, %d anchors", ErrMalformed, len(c.Kinds), len(c.Anchors))
	}
	kinds := make([]string, 0, len(c.Kinds))
	for k := range c.Kinds {
		if len(k) < 1 || len(k) > MaxKind {
			return nil, fmt.Errorf("%w: kind is %d bytes", ErrMalformed, len(k))
		}
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	b := cryptobyte.NewBuilder([]byte(countsContext))
	addHeadBody(b, c.Service, c.Head, ms)
	b.AddBytes(c.Nonce[:])
	b.AddUint8(uint8(len(kinds)))
	for _, k := range kinds {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(k)) })
		b.AddUint64(c.Kinds[k])
	}
	b.AddUint8(uint8(len(c.Anchors)))
	for _, a := range c.Anchors {
		ab, err := a.MarshalBinary()
		if err != nil {
			return nil, err
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(ab) })
	}
	if len(c.Warrants) > MaxWarrants {
		return nil, fmt.Errorf("%w: %d warrants", ErrMalformed, len(c.Warrants))
	}
	ws := make([][32]byte, 0, len(c.Warrants))
	for w := range c.Warrants {
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool { return string(ws[i][:]) < string(ws[j][:]) })
	b.AddUint16(uint16(len(ws)))
	for _, w := range ws {
		wk, err := sortedKinds(c.Warrants[w])
		if err != nil {
			return nil, err
		}
		b.AddBytes(w[:])
		b.AddUint8(uint8(len(wk)))
		for _, k := range wk {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(k)) })
			b.AddUint64(c.Warrants[w][k])
		}
	}
	return b.Bytes()
}

// sortedKinds returns the kinds of m in order, checking their number and
// lengths.
func sortedKinds(m map[string]uint64) ([]string, error) {
	if len(m) < 1 || len(m) > MaxKinds {
		return nil, fmt.Errorf("%w: a warrant with %d kinds", ErrMalformed, len(m))
	}
	out := make([]string, 0, len(m))
	for k := range m {
		if len(k) < 1 || len(k) > MaxKind {
			return nil, fmt.Errorf("%w: kind is %d bytes", ErrMalformed, len(k))
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

// Sign sets the signature.
func (c *Counts) Sign(key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("signing audit counts: key is %d bytes", len(key))
	}
	c.Time = c.Time.UTC().Truncate(time.Millisecond)
	m, err := c.body()
	if err != nil {
		return fmt.Errorf("signing audit counts: %w", err)
	}
	c.Sig = ed25519.Sign(key, m)
	return nil
}

// Verify checks the signature under pub. It does not check the anchored
// heads' signatures (they are other services').
func (c *Counts) Verify(pub ed25519.PublicKey) error {
	m, err := c.body()
	if err != nil {
		return fmt.Errorf("verifying counts of %q: %w", c.Service, err)
	}
	if len(pub) != ed25519.PublicKeySize || len(c.Sig) != ed25519.SignatureSize || !ed25519.Verify(pub, m, c.Sig) {
		return fmt.Errorf("verifying counts of %q: %w", c.Service, ErrBadSignature)
	}
	return nil
}

// MarshalBinary encodes the statement: the head's fields as in a
// SignedHead, nonce, kinds (8-bit count; each 8-bit-length name and 64-bit
// count, in name order), anchors (8-bit count; each a 16-bit-length
// SignedHead), warrants (16-bit count; each a 32-byte warrant hash, in
// order, then its kinds as above), signature.
func (c *Counts) MarshalBinary() ([]byte, error) {
	m, err := c.body()
	if err != nil {
		return nil, fmt.Errorf("encoding audit counts: %w", err)
	}
	if len(c.Sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("encoding audit counts: %w: signature is %d bytes", ErrMalformed, len(c.Sig))
	}
	return append(m[len(countsContext):], c.Sig...), nil
}

// ParseCounts decodes a statement encoded by MarshalBinary. It checks no
// signature.
func ParseCounts(data []byte) (*Counts, error) {
	if len(data) > maxStatement {
		return nil, fmt.Errorf("decoding audit counts: %w: %d bytes", ErrMalformed, len(data))
	}
	s := cryptobyte.String(data)
	service, h, at, ok := readHeadBody(&s)
	if !ok {
		return nil, fmt.Errorf("decoding audit counts: %w: truncated or bad version", ErrMalformed)
	}
	c := &Counts{Service: service, Head: h, Time: at, Kinds: map[string]uint64{}}
	var nonce []byte
	var nk, na uint8
	if !s.ReadBytes(&nonce, 32) || !s.ReadUint8(&nk) || int(nk) > MaxKinds {
		return nil, fmt.Errorf("decoding audit counts: %w: truncated", ErrMalformed)
	}
	copy(c.Nonce[:], nonce)
	prev := ""
	for i := 0; i < int(nk); i++ {
		var kind cryptobyte.String
		var n uint64
		if !s.ReadUint8LengthPrefixed(&kind) || !s.ReadUint64(&n) {
			return nil, fmt.Errorf("decoding audit counts: %w: kind %d truncated", ErrMalformed, i)
		}
		k := string(kind)
		if len(k) < 1 || (i > 0 && k <= prev) {
			return nil, fmt.Errorf("decoding audit counts: %w: kinds not in strict order", ErrMalformed)
		}
		prev = k
		c.Kinds[k] = n
	}
	if !s.ReadUint8(&na) || int(na) > MaxAnchors {
		return nil, fmt.Errorf("decoding audit counts: %w: anchors", ErrMalformed)
	}
	for i := 0; i < int(na); i++ {
		var ab cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&ab) {
			return nil, fmt.Errorf("decoding audit counts: %w: anchor %d truncated", ErrMalformed, i)
		}
		a, err := ParseSignedHead(ab)
		if err != nil {
			return nil, fmt.Errorf("decoding audit counts: anchor %d: %w", i, err)
		}
		c.Anchors = append(c.Anchors, a)
	}
	var nw uint16
	if !s.ReadUint16(&nw) || int(nw) > MaxWarrants {
		return nil, fmt.Errorf("decoding audit counts: %w: warrants", ErrMalformed)
	}
	if nw > 0 {
		c.Warrants = make(map[[32]byte]map[string]uint64, nw)
	}
	var prevW []byte
	for i := 0; i < int(nw); i++ {
		var wh []byte
		var nk uint8
		if !s.ReadBytes(&wh, 32) || !s.ReadUint8(&nk) || nk < 1 || int(nk) > MaxKinds {
			return nil, fmt.Errorf("decoding audit counts: %w: warrant %d truncated", ErrMalformed, i)
		}
		if i > 0 && string(wh) <= string(prevW) {
			return nil, fmt.Errorf("decoding audit counts: %w: warrants not in strict order", ErrMalformed)
		}
		prevW = wh
		kinds := make(map[string]uint64, nk)
		prev := ""
		for j := 0; j < int(nk); j++ {
			var kind cryptobyte.String
			var n uint64
			if !s.ReadUint8LengthPrefixed(&kind) || !s.ReadUint64(&n) {
				return nil, fmt.Errorf("decoding audit counts: %w: warrant %d kind %d truncated", ErrMalformed, i, j)
			}
			k := string(kind)
			if len(k) < 1 || (j > 0 && k <= prev) {
				return nil, fmt.Errorf("decoding audit counts: %w: warrant %d kinds not in strict order", ErrMalformed, i)
			}
			prev = k
			kinds[k] = n
		}
		c.Warrants[[32]byte(wh)] = kinds
	}
	var sig []byte
	if !s.ReadBytes(&sig, ed25519.SignatureSize) || !s.Empty() {
		return nil, fmt.Errorf("decoding audit counts: %w: bad signature length or trailing bytes", ErrMalformed)
	}
	c.Sig = append([]byte{}, sig...)
	return c, nil
}
