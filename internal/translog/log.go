package translog

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"
)

// Config configures a Log.
type Config struct {
	// Storage persists entries. Required.
	Storage Storage
	// Signer signs tree heads; its public key must be Ed25519 (the network
	// root key or a dedicated log key). Nil: SignedTreeHead returns
	// ErrNoSigner, everything else works.
	Signer crypto.Signer
	// Now is the clock used for tree head timestamps and for entries
	// appended with a zero Timestamp. Nil: time.Now.
	Now func() time.Time
	// Rand is passed to Signer.Sign (Ed25519 does not read it). Nil:
	// crypto/rand.Reader.
	Rand io.Reader
}

// Errors returned by Log.
var (
	// ErrOutOfRange: a requested index or tree size is beyond the log.
	ErrOutOfRange = errors.New("translog: index or size out of range")
	// ErrNoSigner: the log was configured without a Signer.
	ErrNoSigner = errors.New("translog: no tree head signer configured")
	// ErrCorruptStorage: stored entries are not a valid log.
	ErrCorruptStorage = errors.New("translog: corrupt storage")
)

// Log is an append-only Merkle log. It keeps the hash of every complete
// subtree (about two hashes per entry) so that roots at any size, inclusion
// and consistency proofs take O(log n) lookups and hashes. Entries
// themselves stay in Storage. A Log is safe for concurrent use; appends are
// serialised and do not block readers while Storage writes.
type Log struct {
	storage Storage
	signer  crypto.Signer
	now     func() time.Time
	rand    io.Reader

	appendMu sync.Mutex // serialises Append: storage write then tree update

	signerMu    sync.Mutex
	signerEntry []byte // encoded entry certifying signer's key, if set
	signerIndex uint64

	mu   sync.RWMutex
	tree *tree
}

// Open rebuilds a Log from the entries in cfg.Storage. Every stored entry
// is decoded strictly; a bad one makes Open fail with ErrCorruptStorage.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Storage == nil {
		return nil, errors.New("opening log: no storage configured")
	}
	if cfg.Signer != nil {
		if _, ok := cfg.Signer.Public().(ed25519.PublicKey); !ok {
			return nil, fmt.Errorf("opening log: %w", ErrNotEd25519)
		}
	}
	l := &Log{
		storage: cfg.Storage,
		signer:  cfg.Signer,
		now:     cfg.Now,
		rand:    cfg.Rand,
		tree:    newTree(),
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.rand == nil {
		l.rand = rand.Reader
	}
	var next uint64
	err := cfg.Storage.Load(ctx, 0, math.MaxUint64, func(index uint64, entry []byte) error {
		if index != next {
			return fmt.Errorf("%w: entry %d where %d expected", ErrCorruptStorage, index, next)
		}
		if _, err := DecodeEntry(entry); err != nil {
			return fmt.Errorf("%w: entry %d: %w", ErrCorruptStorage, index, err)
		}
		l.tree.addLeaf(HashLeaf(entry))
		next++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("opening log: %w", err)
	}
	return l, nil
}

// Append appends one entry and returns its index. A zero Timestamp is set
// from the log's clock.
func (l *Log) Append(ctx context.Context, e Entry) (uint64, error) {
	return l.AppendBatch(ctx, []Entry{e})
}

// AppendBatch appends entries in order as one storage write and returns the
// index of the first. Entries with a zero Timestamp get the log's clock.
// Either all entries are appended or none.
func (l *Log) AppendBatch(ctx context.Context, entries []Entry) (uint64, error) {
	if len(entries) == 0 {
		return 0, errors.New("appending to log: no entries")
	}
	now := uint64(l.now().UnixMilli())
	raw := make([][]byte, len(entries))
	leaves := make([]Hash, len(entries))
	for i, e := range entries {
		if e.Timestamp == 0 {
			e.Timestamp = now
		}
		b, err := e.Encode()
		if err != nil {
			return 0, fmt.Errorf("appending to log: entry %d: %w", i, err)
		}
		raw[i] = b
		leaves[i] = HashLeaf(b)
	}

	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	for attempt := 0; ; attempt++ {
		start := l.Size() // only appenders change the size, and we hold appendMu
		err := l.storage.Append(ctx, start, raw)
		if err == nil {
			l.mu.Lock()
			for _, h := range leaves {
				l.tree.addLeaf(h)
			}
			l.mu.Unlock()
			return start, nil
		}
		if !errors.Is(err, ErrStorageIndex) || attempt >= maxAppendRetries {
			return 0, fmt.Errorf("appending to log at %d: %w", start, err)
		}
		// Another writer of the same storage appended first: take its
		// entries into the tree and append after them.
		if _, serr := l.syncLocked(ctx); serr != nil {
			return 0, fmt.Errorf("appending to log at %d: %w (catching up: %w)", start, err, serr)
		}
	}
}

// maxAppendRetries bounds how often AppendBatch catches up with other
// writers and tries again before it gives up.
const maxAppendRetries = 64

// Sync reads the entries other writers of the same storage (other servers
// of a cluster) appended since this Log last read or wrote it, checks
// them and adds them to the tree. It returns the new size. Every Log over
// one storage thus serves prefixes of one and the same log, so all their
// tree heads are consistent with each other.
func (l *Log) Sync(ctx context.Context) (uint64, error) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	return l.syncLocked(ctx)
}

// syncLocked is Sync with appendMu held.
func (l *Log) syncLocked(ctx context.Context) (uint64, error) {
	next := l.Size()
	var leaves []Hash
	err := l.storage.Load(ctx, next, math.MaxUint64, func(index uint64, entry []byte) error {
		if want := next + uint64(len(leaves)); index != want {
			return fmt.Errorf("%w: entry %d where %d expected", ErrCorruptStorage, index, want)
		}
		if _, err := DecodeEntry(entry); err != nil {
			return fmt.Errorf("%w: entry %d: %w", ErrCorruptStorage, index, err)
		}
		leaves = append(leaves, HashLeaf(entry))
		return nil
	})
	if err != nil {
		return next, fmt.Errorf("syncing log from %d: %w", next, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range leaves {
		l.tree.addLeaf(h)
	}
	return l.tree.size(), nil
}

// Size returns the number of entries in the log.
func (l *Log) Size() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.tree.size()
}

// Head returns the current size and root, unsigned.
func (l *Log) Head() TreeHead {
	l.mu.RLock()
	defer l.mu.RUnlock()
	n := l.tree.size()
	return TreeHead{Size: n, Root: l.tree.subtreeHash(0, n)}
}

// RootAt returns the root hash of the tree of the first size entries.
func (l *Log) RootAt(size uint64) (Hash, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if size > l.tree.size() {
		return Hash{}, fmt.Errorf("root at size %d of %d: %w", size, l.tree.size(), ErrOutOfRange)
	}
	return l.tree.subtreeHash(0, size), nil
}

// LeafHash returns the leaf hash of the entry at index.
func (l *Log) LeafHash(index uint64) (Hash, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if index >= l.tree.size() {
		return Hash{}, fmt.Errorf("leaf hash %d of %d: %w", index, l.tree.size(), ErrOutOfRange)
	}
	return l.tree.levels[0][index], nil
}

// SignedTreeHead signs the current head with the configured signer, stamped
// with the log's clock. After SetSigner, the head carries the signer's
// entry and its inclusion proof.
func (l *Log) SignedTreeHead() (SignedTreeHead, error) {
	l.signerMu.Lock()
	signer, entry, index := l.signer, l.signerEntry, l.signerIndex
	l.signerMu.Unlock()
	if signer == nil {
		return SignedTreeHead{}, ErrNoSigner
	}
	l.mu.RLock()
	h := TreeHead{Size: l.tree.size(), Root: l.tree.subtreeHash(0, l.tree.size())}
	var hs *HeadSigner
	if entry != nil {
		hs = &HeadSigner{Entry: entry, Proof: InclusionProof{Index: index, TreeSize: h.Size, Path: l.tree.inclusionPath(index, h.Size)}}
	}
	l.mu.RUnlock()
	h.Timestamp = uint64(l.now().UnixMilli())
	sth, err := SignTreeHead(signer, l.rand, h)
	if err != nil {
		return SignedTreeHead{}, err
	}
	sth.Signer = hs
	return sth, nil
}

// SetSigner makes signer sign the tree heads from now on, each carrying
// the log entry at index (which certifies signer's key) and its inclusion
// proof. The caller checks that the entry certifies the key.
func (l *Log) SetSigner(ctx context.Context, signer crypto.Signer, index uint64) error {
	if _, ok := signer.Public().(ed25519.PublicKey); !ok {
		return fmt.Errorf("setting tree head signer: %w", ErrNotEd25519)
	}
	raw, err := l.Entries(ctx, index, index+1)
	if err != nil {
		return fmt.Errorf("setting tree head signer: %w", err)
	}
	if len(raw[0]) > MaxSignerEntrySize {
		return fmt.Errorf("setting tree head signer: entry %d is %d bytes, limit %d", index, len(raw[0]), MaxSignerEntrySize)
	}
	l.signerMu.Lock()
	l.signer, l.signerEntry, l.signerIndex = signer, raw[0], index
	l.signerMu.Unlock()
	return nil
}

// Entries returns the encoded entries [start, end) from storage.
func (l *Log) Entries(ctx context.Context, start, end uint64) ([][]byte, error) {
	if start > end || end > l.Size() {
		return nil, fmt.Errorf("reading entries [%d, %d): %w", start, end, ErrOutOfRange)
	}
	out := make([][]byte, 0, end-start)
	err := l.storage.Load(ctx, start, end, func(index uint64, entry []byte) error {
		if index != start+uint64(len(out)) {
			return fmt.Errorf("%w: entry %d where %d expected", ErrCorruptStorage, index, start+uint64(len(out)))
		}
		out = append(out, slices.Clone(entry))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading entries [%d, %d): %w", start, end, err)
	}
	if uint64(len(out)) != end-start {
		return nil, fmt.Errorf("reading entries [%d, %d): %w: storage returned %d", start, end, ErrCorruptStorage, len(out))
	}
	return out, nil
}

// InclusionProof returns PATH(index, D[0:size]) (RFC 9162 section 2.1.3.1)
// for the tree of the first size entries.
func (l *Log) InclusionProof(index, size uint64) (InclusionProof, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if size > l.tree.size() || index >= size {
		return InclusionProof{}, fmt.Errorf("inclusion proof for %d in size %d of %d: %w", index, size, l.tree.size(), ErrOutOfRange)
	}
	return InclusionProof{Index: index, TreeSize: size, Path: l.tree.inclusionPath(index, size)}, nil
}

// ConsistencyProof returns PROOF(size1, D[0:size2]) (RFC 9162 section
// 2.1.4.1). It is empty when size1 is 0 or equals size2.
func (l *Log) ConsistencyProof(size1, size2 uint64) (ConsistencyProof, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if size1 > size2 || size2 > l.tree.size() {
		return ConsistencyProof{}, fmt.Errorf("consistency proof from %d to %d of %d: %w", size1, size2, l.tree.size(), ErrOutOfRange)
	}
	return ConsistencyProof{Size1: size1, Size2: size2, Path: l.tree.consistencyPath(size1, size2)}, nil
}

// Frontier returns the compact form of the tree of the first size entries:
// the roots of the complete subtrees of the binary decomposition of size,
// largest first. A Monitor starts from a verified head and this frontier.
func (l *Log) Frontier(size uint64) ([]Hash, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if size > l.tree.size() {
		return nil, fmt.Errorf("frontier at size %d of %d: %w", size, l.tree.size(), ErrOutOfRange)
	}
	return l.tree.completeSubtrees(0, size, nil), nil
}
