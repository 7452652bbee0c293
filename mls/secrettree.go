package mls

import (
	"errors"
	"math"
	"sync"
)

// This file holds the secret tree of RFC 9420 section 9: per-leaf
// handshake and application hash ratchets derived from the epoch's
// encryption_secret, and the sender-data key and nonce of section 6.3.2.

// Errors of the secret tree. They are wrapped with context; match them with
// errors.Is.
var (
	// ErrGenerationReused is returned when a generation's key was already
	// used (each key decrypts one message only).
	ErrGenerationReused = errors.New("mls: generation already used")
	// ErrGenerationTooFar is returned when a generation is further ahead
	// of the ratchet than the configured forward window allows.
	ErrGenerationTooFar = errors.New("mls: generation too far ahead")
	// ErrGenerationExpired is returned when a past generation's key was
	// dropped because too many out-of-order keys were retained.
	ErrGenerationExpired = errors.New("mls: generation key no longer retained")
	// ErrRatchetExhausted is returned when a ratchet reached the last
	// generation a uint32 can number.
	ErrRatchetExhausted = errors.New("mls: ratchet generations exhausted")
)

// secretTreeConfig bounds what a receiver keeps for out-of-order delivery.
type secretTreeConfig struct {
	// MaxForward is how many generations a message may skip ahead of the
	// next expected generation of its ratchet. Zero means 1000.
	MaxForward uint32
	// MaxRetained is how many skipped keys one ratchet keeps for messages
	// that arrive late; the oldest are dropped first. Zero means 64.
	MaxRetained int
}

func (c secretTreeConfig) withDefaults() secretTreeConfig {
	if c.MaxForward == 0 {
		c.MaxForward = 1000
	}
	if c.MaxRetained == 0 {
		c.MaxRetained = 64
	}
	return c
}

// keyNonce is one generation's AEAD key and nonce.
type keyNonce struct {
	key, nonce []byte
}

func (k keyNonce) wipe() {
	clear(k.key)
	clear(k.nonce)
}

// ratchet is one hash ratchet (handshake or application) of one leaf.
type ratchet struct {
	secret   []byte // ratchet secret of generation next
	next     uint32 // next generation to derive
	floor    uint32 // skipped keys below floor were dropped (expired)
	retained map[uint32]keyNonce
}

// advance derives generation r.next's key and nonce and moves the
// ratchet on, deleting the old ratchet secret.
func (r *ratchet) advance(s *CipherSuite) (keyNonce, uint32, error) {
	if r.next == math.MaxUint32 {
		return keyNonce{}, 0, ErrRatchetExhausted
	}
	g := r.next
	var buf [48]byte
	kn := keyNonce{
		key:   s.Expand(r.secret, treeSecretInfo(buf[:0], "key", g, s.keySize), s.keySize),
		nonce: s.Expand(r.secret, treeSecretInfo(buf[:0], "nonce", g, s.nonceLen), s.nonceLen),
	}
	next := s.Expand(r.secret, treeSecretInfo(buf[:0], "secret", g, s.Nh()), s.Nh())
	clear(r.secret)
	r.secret = next
	r.next++
	return kn, g, nil
}

// treeSecretInfo appends the KDFLabel of DeriveTreeSecret(secret, label,
// generation, length) to b without the allocations of the general
// ExpandWithLabel path; the ratchet derives three of these per message.
// Labels are short ASCII constants, so every varint length is one byte.
func treeSecretInfo(b []byte, label string, generation uint32, length int) []byte {
	const prefix = "MLS 1.0 "
	b = append(b, byte(length>>8), byte(length))
	b = append(b, byte(len(prefix)+len(label)))
	b = append(b, prefix...)
	b = append(b, label...)
	b = append(b, 4, byte(generation>>24), byte(generation>>16), byte(generation>>8), byte(generation))
	return b
}

// retain stores a key for a later (out-of-order) message, evicting the
// oldest retained key when more than limit are held.
func (r *ratchet) retain(g uint32, kn keyNonce, limit int) {
	if r.retained == nil {
		r.retained = make(map[uint32]keyNonce)
	}
	r.retained[g] = kn
	for len(r.retained) > limit {
		oldest := uint32(math.MaxUint32)
		for k := range r.retained {
			oldest = min(oldest, k)
		}
		r.retained[oldest].wipe()
		delete(r.retained, oldest)
		r.floor = max(r.floor, oldest+1)
	}
}

// leafRatchets are the two ratchets of one leaf.
type leafRatchets struct {
	handshake, application ratchet
}

// secretTree derives the per-leaf ratchets lazily: node secrets are
// computed only on the path to a leaf that is used, and each secret is
// deleted as soon as its children (or ratchets) are derived, as RFC 9420
// section 9.2 requires. It is safe for concurrent use.
type secretTree struct {
	s       *CipherSuite
	cfg     secretTreeConfig
	nLeaves uint32

	mu     sync.Mutex
	nodes  map[NodeIndex][]byte // node secrets not yet consumed
	leaves map[LeafIndex]*leafRatchets
}

// newSecretTree starts a secret tree for nLeaves leaves with the epoch's
// encryption_secret at the root and the default receiver limits.
func newSecretTree(s *CipherSuite, encryptionSecret []byte, nLeaves uint32) *secretTree {
	return newSecretTreeConfig(s, encryptionSecret, nLeaves, secretTreeConfig{})
}

// newSecretTreeConfig is newSecretTree with explicit receiver limits.
func newSecretTreeConfig(s *CipherSuite, encryptionSecret []byte, nLeaves uint32, cfg secretTreeConfig) *secretTree {
	t := &secretTree{
		s:       s,
		cfg:     cfg.withDefaults(),
		nLeaves: nLeaves,
		nodes:   make(map[NodeIndex][]byte),
		leaves:  make(map[LeafIndex]*leafRatchets),
	}
	if nLeaves > 0 {
		t.nodes[root(nLeaves)] = append([]byte(nil), encryptionSecret...)
	}
	return t
}

// ratchetFor returns the ratchet of a leaf for a content type, deriving
// the leaf's secrets on first use. t.mu is held.
func (t *secretTree) ratchetFor(leaf LeafIndex, ct ContentType) (*ratchet, error) {
	if uint32(leaf) >= t.nLeaves {
		return nil, errorf(ErrInvalidMessage, "leaf %d outside a tree of %d leaves", leaf, t.nLeaves)
	}
	if ct < ContentApplication || ct > ContentCommit {
		return nil, errorf(ErrInvalidMessage, "unknown content type %d", ct)
	}
	lr := t.leaves[leaf]
	if lr == nil {
		leafSecret := t.deriveLeafSecret(leaf)
		s := t.s
		lr = &leafRatchets{
			handshake:   ratchet{secret: s.ExpandWithLabel(leafSecret, "handshake", nil, s.Nh())},
			application: ratchet{secret: s.ExpandWithLabel(leafSecret, "application", nil, s.Nh())},
		}
		clear(leafSecret)
		t.leaves[leaf] = lr
	}
	if ct == ContentApplication {
		return &lr.application, nil
	}
	return &lr.handshake, nil
}

// deriveLeafSecret walks down from the lowest ancestor whose secret is
// still held, keeping the siblings' secrets and deleting each consumed
// parent secret, and returns (and forgets) the leaf's secret.
func (t *secretTree) deriveLeafSecret(leaf LeafIndex) []byte {
	target := leaf.node()
	x := target
	for t.nodes[x] == nil {
		// An ancestor always holds a secret: secrets are only removed
		// after both children's secrets (or the leaf ratchets) exist.
		x = x.parent()
	}
	for x != target {
		secret := t.nodes[x]
		l, r := x.left(), x.right()
		t.nodes[l] = t.s.ExpandWithLabel(secret, "tree", []byte("left"), t.s.Nh())
		t.nodes[r] = t.s.ExpandWithLabel(secret, "tree", []byte("right"), t.s.Nh())
		clear(secret)
		delete(t.nodes, x)
		if isAncestor(l, target) {
			x = l
		} else {
			x = r
		}
	}
	secret := t.nodes[target]
	delete(t.nodes, target)
	return secret
}

// next returns the sender's key and nonce for its next message of content
// type ct and moves its ratchet on.
func (t *secretTree) next(leaf LeafIndex, ct ContentType) (key, nonce []byte, generation uint32, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, err := t.ratchetFor(leaf, ct)
	if err != nil {
		return nil, nil, 0, err
	}
	kn, g, err := r.advance(t.s)
	if err != nil {
		return nil, nil, 0, err
	}
	return kn.key, kn.nonce, g, nil
}

// get returns the key and nonce of a received message's generation and
// deletes them: a second call for the same generation fails with
// ErrGenerationReused.
func (t *secretTree) get(leaf LeafIndex, ct ContentType, generation uint32) (key, nonce []byte, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	kn, err := t.peekLocked(leaf, ct, generation)
	if err != nil {
		return nil, nil, err
	}
	t.eraseLocked(leaf, ct, generation)
	return kn.key, kn.nonce, nil
}

// open runs fn with a received generation's key and nonce and deletes
// them only if fn succeeds, so a forged message that fails to decrypt does
// not destroy the key of the genuine one. The tree is locked while fn runs,
// so one generation's key is never used by two calls at once.
func (t *secretTree) open(leaf LeafIndex, ct ContentType, generation uint32, fn func(key, nonce []byte) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	kn, err := t.peekLocked(leaf, ct, generation)
	if err != nil {
		return err
	}
	if err := fn(kn.key, kn.nonce); err != nil {
		return err
	}
	t.eraseLocked(leaf, ct, generation)
	kn.wipe()
	return nil
}

func (t *secretTree) peekLocked(leaf LeafIndex, ct ContentType, g uint32) (keyNonce, error) {
	r, err := t.ratchetFor(leaf, ct)
	if err != nil {
		return keyNonce{}, err
	}
	if g < r.next {
		if kn, ok := r.retained[g]; ok {
			return kn, nil
		}
		if g < r.floor {
			return keyNonce{}, errorf(ErrGenerationExpired, "leaf %d generation %d", leaf, g)
		}
		return keyNonce{}, errorf(ErrGenerationReused, "leaf %d generation %d", leaf, g)
	}
	if g-r.next > t.cfg.MaxForward {
		return keyNonce{}, errorf(ErrGenerationTooFar, "leaf %d generation %d, next expected %d, window %d",
			leaf, g, r.next, t.cfg.MaxForward)
	}
	for r.next < g {
		kn, skipped, err := r.advance(t.s)
		if err != nil {
			return keyNonce{}, err
		}
		r.retain(skipped, kn, t.cfg.MaxRetained)
	}
	kn, _, err := r.advance(t.s)
	if err != nil {
		return keyNonce{}, err
	}
	// Held until erase; it may exceed MaxRetained by one until then.
	if r.retained == nil {
		r.retained = make(map[uint32]keyNonce)
	}
	r.retained[g] = kn
	return kn, nil
}

// eraseLocked deletes a generation's retained key. t.mu is held.
func (t *secretTree) eraseLocked(leaf LeafIndex, ct ContentType, g uint32) {
	r, err := t.ratchetFor(leaf, ct)
	if err != nil {
		return
	}
	delete(r.retained, g)
}

// senderDataKeyNonce derives the sender-data key and nonce from the
// epoch's sender_data_secret and a sample of the content ciphertext (its
// first Nh bytes, or all of it when shorter), RFC 9420 section 6.3.2.
func (s *CipherSuite) senderDataKeyNonce(senderDataSecret, ciphertext []byte) (key, nonce []byte) {
	sample := ciphertext[:min(len(ciphertext), s.Nh())]
	var buf [96]byte
	key = s.Expand(senderDataSecret, senderDataInfo(buf[:0], "key", sample, s.keySize), s.keySize)
	nonce = s.Expand(senderDataSecret, senderDataInfo(buf[:0], "nonce", sample, s.nonceLen), s.nonceLen)
	return key, nonce
}

// senderDataInfo appends the KDFLabel of ExpandWithLabel(secret, label,
// sample, length) to b, like treeSecretInfo: the label is a short ASCII
// constant, so its varint length is one byte.
func senderDataInfo(b []byte, label string, sample []byte, length int) []byte {
	const prefix = "MLS 1.0 "
	w := writer{b: b}
	w.u16(uint16(length))
	w.u8(byte(len(prefix) + len(label)))
	w.b = append(w.b, prefix...)
	w.b = append(w.b, label...)
	w.opaque(sample)
	return w.b
}
