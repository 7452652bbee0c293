package translog

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync"
)

// Errors returned by Monitor.
var (
	// ErrFork is matched by a *ForkError.
	ErrFork = errors.New("translog: log fork detected")
	// ErrStaleHead: a head older (smaller) than the monitor's current one.
	ErrStaleHead = errors.New("translog: tree head older than the verified one")
	// ErrScanRange: Scan was not given exactly the entries between the
	// scanned position and the verified head.
	ErrScanRange = errors.New("translog: entries do not cover the unscanned range")
	// ErrEntriesMismatch: the entries served do not hash to the signed root,
	// so the log showed this client something other than what it signed.
	ErrEntriesMismatch = errors.New("translog: entries do not match the signed tree head")
	// ErrBadMonitorState: a MonitorState is malformed or does not verify.
	ErrBadMonitorState = errors.New("translog: bad monitor state")
)

// ForkError reports that the log signed a head that is not an extension of
// a head it signed before: the log was forked or rewritten. Old and New are
// both validly signed; together with Err they are the evidence.
type ForkError struct {
	Old, New SignedTreeHead
	Err      error // why the heads are inconsistent; matches ErrInvalidProof
}

func (e *ForkError) Error() string {
	return fmt.Sprintf("translog: log fork detected between size %d (root %s) and size %d (root %s): %v",
		e.Old.Size, e.Old.Root, e.New.Size, e.New.Root, e.Err)
}

// Unwrap returns the verification error.
func (e *ForkError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrFork) match.
func (e *ForkError) Is(target error) bool { return target == ErrFork }

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	// PublicKey verifies tree head signatures. Required unless VerifyHead
	// is set.
	PublicKey ed25519.PublicKey
	// VerifyHead, if set, verifies a head instead of PublicKey: next is
	// the head offered, cur the monitor's verified head (zero before any).
	// It lets the signing key change (anom: a rotated directory key
	// certified by the root) while keeping rules across heads.
	VerifyHead func(next, cur SignedTreeHead) error
	// Subject returns the username an entry concerns, or "" if none, by
	// parsing the payload (device certificates, revocations, approvals).
	// An error aborts the Scan. Nil: Scan verifies entries but reports no
	// matches.
	Subject func(e Entry) (username string, err error)
}

// MonitorState is the part of a Monitor that a client persists.
type MonitorState struct {
	// Head is the last verified signed head. The zero value (no signature)
	// means nothing has been verified yet: the monitor starts from the
	// empty log.
	Head SignedTreeHead
	// Scanned is the number of entries already scanned; at most Head.Size.
	Scanned uint64
	// Frontier is the compact form of the tree at Scanned (see
	// Log.Frontier): one hash per set bit of Scanned.
	Frontier []Hash
}

// Match is an entry found by Scan for the watched username.
type Match struct {
	Index uint64
	Entry Entry
}

// Monitor is the client side of the log: it keeps the last verified tree
// head, accepts a newer head only with a valid consistency proof, verifies
// inclusion of peer entries against that head and scans new entries for a
// watched username. It is safe for concurrent use.
type Monitor struct {
	cfg MonitorConfig

	mu       sync.Mutex
	head     SignedTreeHead
	verified bool     // head carries a verified signature
	scan     frontier // tree over entries [0, scan.size)
}

// NewMonitor returns a Monitor resuming from st. A head that carries a
// signature must verify; the frontier must have the shape of Scanned and,
// when Scanned equals the head's size, fold to the head's root. To start
// from a server-provided head, pass that head with Scanned = its size and
// the log's Frontier at that size.
func NewMonitor(cfg MonitorConfig, st MonitorState) (*Monitor, error) {
	if cfg.VerifyHead == nil && len(cfg.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("creating monitor: %w", ErrNotEd25519)
	}
	m := &Monitor{cfg: cfg}
	if st.Head.Signature == nil {
		if st.Head.TreeHead != (TreeHead{}) {
			return nil, fmt.Errorf("creating monitor: %w: unsigned head of size %d", ErrBadMonitorState, st.Head.Size)
		}
	} else {
		if err := m.verifyHead(st.Head, SignedTreeHead{}); err != nil {
			return nil, fmt.Errorf("creating monitor: %w", err)
		}
		m.verified = true
	}
	m.head = cloneHead(st.Head)
	if st.Scanned > st.Head.Size {
		return nil, fmt.Errorf("creating monitor: %w: scanned %d beyond head size %d", ErrBadMonitorState, st.Scanned, st.Head.Size)
	}
	if len(st.Frontier) != bits.OnesCount64(st.Scanned) {
		return nil, fmt.Errorf("creating monitor: %w: %d frontier hashes for size %d", ErrBadMonitorState, len(st.Frontier), st.Scanned)
	}
	m.scan = frontier{size: st.Scanned, hashes: append([]Hash(nil), st.Frontier...)}
	if st.Scanned == st.Head.Size && !equalHash(m.scan.root(), m.root()) {
		return nil, fmt.Errorf("creating monitor: %w: frontier does not match head root", ErrBadMonitorState)
	}
	return m, nil
}

func (m *Monitor) verifyHead(next, cur SignedTreeHead) error {
	if m.cfg.VerifyHead != nil {
		return m.cfg.VerifyHead(next, cur)
	}
	return next.Verify(m.cfg.PublicKey)
}

func cloneHead(h SignedTreeHead) SignedTreeHead {
	if h.Signature != nil {
		h.Signature = append([]byte(nil), h.Signature...)
	}
	if h.Signer != nil {
		h.Signer = &HeadSigner{Entry: append([]byte(nil), h.Signer.Entry...),
			Proof: InclusionProof{Index: h.Signer.Proof.Index, TreeSize: h.Signer.Proof.TreeSize, Path: append([]Hash(nil), h.Signer.Proof.Path...)}}
	}
	return h
}

// root returns the verified root; EmptyRoot before any head.
func (m *Monitor) root() Hash {
	if !m.verified {
		return EmptyRoot
	}
	return m.head.Root
}

// Head returns the last verified head (the zero value before any).
func (m *Monitor) Head() SignedTreeHead {
	m.mu.Lock()
	defer m.mu.Unlock()
	return cloneHead(m.head)
}

// State returns the state to persist.
func (m *Monitor) State() MonitorState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return MonitorState{
		Head:     cloneHead(m.head),
		Scanned:  m.scan.size,
		Frontier: append([]Hash(nil), m.scan.hashes...),
	}
}

// Update accepts sth as the new verified head if it is signed by the log
// and proof shows that it extends the current head. A head of the same size
// must have the same root. It returns a *ForkError (errors.Is ErrFork) when
// the log signed a head inconsistent with the current one, ErrStaleHead for
// a smaller head, and ErrBadSignature for a bad signature. On error the
// monitor is unchanged.
func (m *Monitor) Update(sth SignedTreeHead, proof ConsistencyProof) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := SignedTreeHead{}
	if m.verified {
		cur = m.head
	}
	if err := m.verifyHead(sth, cur); err != nil {
		return fmt.Errorf("updating tree head: %w", err)
	}
	size := m.head.Size
	if sth.Size < size {
		return fmt.Errorf("updating tree head to size %d from %d: %w", sth.Size, size, ErrStaleHead)
	}
	if proof.Size1 != size || proof.Size2 != sth.Size {
		return fmt.Errorf("updating tree head from %d to %d: %w: proof is from %d to %d",
			size, sth.Size, ErrInvalidProof, proof.Size1, proof.Size2)
	}
	if err := VerifyConsistency(size, sth.Size, m.root(), sth.Root, proof.Path); err != nil {
		// Only a signed old head can be evidence; before any head the
		// empty tree is the reference, and any proof error there is a
		// malformed proof rather than a fork.
		if !m.verified {
			return fmt.Errorf("updating tree head from empty log: %w", err)
		}
		return &ForkError{Old: cloneHead(m.head), New: cloneHead(sth), Err: err}
	}
	if m.verified && sth.Size == size && sth.Timestamp < m.head.Timestamp {
		return nil // same tree, older signature: keep the newer one
	}
	m.head = cloneHead(sth)
	m.verified = true
	return nil
}

// VerifyInclusion checks that the encoded entry is in the log at
// proof.Index, against the verified head. proof.TreeSize must equal the
// head's size; Update first to verify against a newer head.
func (m *Monitor) VerifyInclusion(entry []byte, proof InclusionProof) error {
	m.mu.Lock()
	size, root := m.head.Size, m.root()
	m.mu.Unlock()
	if proof.TreeSize != size {
		return fmt.Errorf("verifying inclusion: %w: proof for size %d, verified head has %d", ErrInvalidProof, proof.TreeSize, size)
	}
	if err := VerifyInclusion(HashLeaf(entry), proof.Index, proof.TreeSize, proof.Path, root); err != nil {
		return fmt.Errorf("verifying inclusion of entry %d: %w", proof.Index, err)
	}
	return nil
}

// Scan processes the encoded entries [Scanned, head size): it checks that
// together with the already scanned ones they hash to the verified root
// (ErrEntriesMismatch otherwise), decodes them strictly, and returns those
// whose Subject is username. Only when everything succeeds does the scanned
// position advance to the head size.
func (m *Monitor) Scan(entries [][]byte, username string) ([]Match, error) {
	if username == "" {
		return nil, errors.New("scanning log: empty username")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	start, size := m.scan.size, m.head.Size
	if uint64(len(entries)) != size-start {
		return nil, fmt.Errorf("scanning log: %w: got %d entries for [%d, %d)", ErrScanRange, len(entries), start, size)
	}
	f := m.scan.clone()
	for _, e := range entries {
		f.push(HashLeaf(e))
	}
	if !equalHash(f.root(), m.root()) {
		return nil, fmt.Errorf("scanning log [%d, %d): %w", start, size, ErrEntriesMismatch)
	}
	var matches []Match
	for i, raw := range entries {
		idx := start + uint64(i)
		e, err := DecodeEntry(raw)
		if err != nil {
			return nil, fmt.Errorf("scanning log entry %d: %w", idx, err)
		}
		if m.cfg.Subject == nil {
			continue
		}
		name, err := m.cfg.Subject(e)
		if err != nil {
			return nil, fmt.Errorf("scanning log entry %d (%s): %w", idx, e.Kind, err)
		}
		if name == username {
			matches = append(matches, Match{Index: idx, Entry: e})
		}
	}
	m.scan = f
	return matches, nil
}

// MonitorState encoding, big-endian:
//
//	version  uint8 = 2
//	has head uint8 (0 or 1)
//	head     uint16 length || SignedTreeHead encoding, only if has head
//	         (version 1, still read: exactly SignedTreeHeadSize bytes, no length)
//	scanned  uint64
//	count    uint8 = popcount(scanned)
//	frontier [count][32]byte
const monitorStateVersion = 2

// MarshalBinary encodes the state for the client to persist.
func (st MonitorState) MarshalBinary() ([]byte, error) {
	if len(st.Frontier) != bits.OnesCount64(st.Scanned) {
		return nil, fmt.Errorf("encoding monitor state: %w: %d frontier hashes for size %d", ErrBadMonitorState, len(st.Frontier), st.Scanned)
	}
	b := []byte{monitorStateVersion, 0}
	if st.Head.Signature != nil {
		b[1] = 1
		h, err := st.Head.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encoding monitor state: %w", err)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(h)))
		b = append(b, h...)
	}
	b = binary.BigEndian.AppendUint64(b, st.Scanned)
	b = append(b, byte(len(st.Frontier)))
	for _, h := range st.Frontier {
		b = append(b, h[:]...)
	}
	return b, nil
}

// UnmarshalBinary strictly decodes a state. It checks the structure;
// NewMonitor checks the signature and the frontier.
func (st *MonitorState) UnmarshalBinary(b []byte) error {
	if len(b) < 2 {
		return fmt.Errorf("decoding monitor state: %w: %d bytes", ErrBadMonitorState, len(b))
	}
	version := b[0]
	if version != 1 && version != monitorStateVersion {
		return fmt.Errorf("decoding monitor state: %w: version %d", ErrBadMonitorState, b[0])
	}
	var out MonitorState
	switch b[1] {
	case 0:
		b = b[2:]
	case 1:
		b = b[2:]
		n := SignedTreeHeadSize
		if version != 1 {
			if len(b) < 2 {
				return fmt.Errorf("decoding monitor state: %w: truncated head", ErrBadMonitorState)
			}
			n, b = int(binary.BigEndian.Uint16(b)), b[2:]
		}
		if len(b) < n {
			return fmt.Errorf("decoding monitor state: %w: truncated head", ErrBadMonitorState)
		}
		if err := out.Head.UnmarshalBinary(b[:n]); err != nil {
			return fmt.Errorf("decoding monitor state: %w: %w", ErrBadMonitorState, err)
		}
		b = b[n:]
	default:
		return fmt.Errorf("decoding monitor state: %w: head flag %d", ErrBadMonitorState, b[1])
	}
	if len(b) < 9 {
		return fmt.Errorf("decoding monitor state: %w: truncated", ErrBadMonitorState)
	}
	out.Scanned = binary.BigEndian.Uint64(b)
	n := int(b[8])
	if n != bits.OnesCount64(out.Scanned) {
		return fmt.Errorf("decoding monitor state: %w: %d frontier hashes for size %d", ErrBadMonitorState, n, out.Scanned)
	}
	b = b[9:]
	if len(b) != n*HashSize {
		return fmt.Errorf("decoding monitor state: %w: %d bytes for %d hashes", ErrBadMonitorState, len(b), n)
	}
	if n > 0 {
		out.Frontier = make([]Hash, n)
		for i := range out.Frontier {
			copy(out.Frontier[i][:], b[i*HashSize:])
		}
	}
	if out.Scanned > out.Head.Size {
		return fmt.Errorf("decoding monitor state: %w: scanned %d beyond head size %d", ErrBadMonitorState, out.Scanned, out.Head.Size)
	}
	*st = out
	return nil
}
