package mls

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Saved group state. The encoding holds private keys and epoch secrets:
// the caller must keep it encrypted at rest (anom's client does, under a
// key derived from the user's PIN). It uses the codec of the wire types
// and is decoded as strictly.

const stateVersion = 1

// ErrBadState is returned when saved state cannot be loaded.
var ErrBadState = errors.New("mls: invalid saved group state")

// Save serializes the group state, private keys included.
func (g *Group) Save() ([]byte, error) {
	var w writer
	w.u16(stateVersion)
	w.u16(uint16(g.suite.ID))
	g.ctx.marshal(&w)
	w.opaque(EncodeRatchetTree(g.tree.encode()))
	w.u32(uint32(g.priv.leaf))
	nodes := slices.Sorted(maps.Keys(g.priv.keys))
	writeVector(&w, nodes, func(w *writer, n NodeIndex) {
		w.u32(uint32(n))
		w.opaque(g.priv.keys[n])
	})
	w.opaque(g.sigPriv.Seed())
	sec := g.secrets
	for _, b := range [][]byte{sec.joiner, sec.epochSecret, sec.senderData, sec.encryption, sec.exporter,
		sec.epochAuthenticator, sec.external, sec.confirmation, sec.membership, sec.resumption, sec.init} {
		w.opaque(b)
	}
	g.secretTree.marshal(&w)
	w.opaque(g.interim)
	writeVector(&w, g.proposals, func(w *writer, p cachedProposal) {
		w.opaque(p.ref)
		p.proposal.marshal(w)
		p.sender.marshal(w)
	})
	epochs := slices.Sorted(maps.Keys(g.resumption))
	writeVector(&w, epochs, func(w *writer, e uint64) {
		w.u64(e)
		w.opaque(g.resumption[e])
	})
	w.optional(g.reinit != nil, func(w *writer) {
		(&Proposal{Type: ProposalReInit, ReInit: g.reinit}).marshalBody(w)
	})
	w.boolean(g.active)
	writeVector(&w, g.past, func(w *writer, p pastEpoch) {
		p.ctx.marshal(w)
		w.opaque(EncodeRatchetTree(p.tree.encode()))
		p.secretTree.marshal(w)
		w.opaque(p.senderData)
	})
	return w.b, nil
}

// Load restores a group saved with Save.
func Load(cfg Config, b []byte) (*Group, error) {
	r := newReader(b)
	if v := r.u16("state.version"); r.err == nil && v != stateVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadState, v)
	}
	s, err := Suite(CipherSuiteID(r.u16("state.suite")))
	if r.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, r.err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	g := &Group{cfg: cfg, suite: s, resumption: map[uint64][]byte{}}
	g.ctx.unmarshal(r)
	treeBytes := r.opaque("state.tree")
	g.priv = &treePrivate{leaf: LeafIndex(r.u32("state.leaf")), keys: map[NodeIndex][]byte{}}
	var keyOrder ascending
	for _, kv := range readVector(r, "state.keys", func(r *reader) struct {
		n NodeIndex
		k []byte
	} {
		n := r.u32("state.keys")
		keyOrder.next(r, "state.keys", uint64(n))
		return struct {
			n NodeIndex
			k []byte
		}{NodeIndex(n), r.opaque("state.keys")}
	}) {
		g.priv.keys[kv.n] = kv.k
	}
	g.sigPriv = SignaturePrivateKey(r.opaque("state.signature_key")).Expanded()
	sec := &epochSecrets{}
	for _, p := range []*[]byte{&sec.joiner, &sec.epochSecret, &sec.senderData, &sec.encryption, &sec.exporter,
		&sec.epochAuthenticator, &sec.external, &sec.confirmation, &sec.membership, &sec.resumption, &sec.init} {
		*p = r.opaque("state.secrets")
	}
	g.secrets = sec
	st := readSecretTree(r, s)
	g.interim = r.opaque("state.interim")
	g.proposals = readVector(r, "state.proposals", func(r *reader) cachedProposal {
		var p cachedProposal
		p.ref = r.opaque("state.proposal.ref")
		p.proposal = new(Proposal)
		p.proposal.unmarshal(r)
		p.sender.unmarshal(r)
		return p
	})
	var epochOrder ascending
	readVector(r, "state.resumption", func(r *reader) struct{} {
		e := r.u64("state.resumption")
		epochOrder.next(r, "state.resumption", e)
		g.resumption[e] = r.opaque("state.resumption")
		return struct{}{}
	})
	if r.optional("state.reinit") {
		p := &Proposal{Type: ProposalReInit}
		p.unmarshalBody(r)
		g.reinit = p.ReInit
	}
	g.active = r.boolean("state.active")
	type savedPast struct {
		ctx        GroupContext
		tree       []byte
		st         *secretTree
		senderData []byte
	}
	past := readVector(r, "state.past", func(r *reader) savedPast {
		var p savedPast
		p.ctx.unmarshal(r)
		p.tree = r.opaque("state.past.tree")
		p.st = readSecretTree(r, s)
		p.senderData = r.opaque("state.past.sender_data")
		return p
	})
	if err := r.done("state"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	for _, p := range past {
		nodes, err := DecodeRatchetTree(p.tree)
		if err != nil {
			return nil, fmt.Errorf("%w: past epoch %d: %w", ErrBadState, p.ctx.Epoch, err)
		}
		tree, err := newRatchetTree(s, nodes)
		if err != nil {
			return nil, fmt.Errorf("%w: past epoch %d: %w", ErrBadState, p.ctx.Epoch, err)
		}
		if p.st == nil || p.st.nLeaves != tree.numLeaves() {
			return nil, fmt.Errorf("%w: past epoch %d: secret tree does not match the ratchet tree", ErrBadState, p.ctx.Epoch)
		}
		g.past = append(g.past, pastEpoch{ctx: p.ctx, tree: tree, secretTree: p.st, senderData: p.senderData})
	}
	nodes, err := DecodeRatchetTree(treeBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	if g.tree, err = newRatchetTree(s, nodes); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	if st == nil || st.nLeaves != g.tree.numLeaves() {
		return nil, fmt.Errorf("%w: secret tree does not match the ratchet tree", ErrBadState)
	}
	g.secretTree = st
	if g.tree.leaf(g.priv.leaf) == nil && g.active {
		return nil, fmt.Errorf("%w: own leaf %d is blank", ErrBadState, g.priv.leaf)
	}
	return g, nil
}

// marshal writes the secret tree's remaining node secrets and ratchets.
func (t *secretTree) marshal(w *writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w.u32(t.nLeaves)
	nodes := slices.Sorted(maps.Keys(t.nodes))
	writeVector(w, nodes, func(w *writer, n NodeIndex) {
		w.u32(uint32(n))
		w.opaque(t.nodes[n])
	})
	leaves := slices.Sorted(maps.Keys(t.leaves))
	writeVector(w, leaves, func(w *writer, l LeafIndex) {
		w.u32(uint32(l))
		lr := t.leaves[l]
		lr.handshake.marshal(w)
		lr.application.marshal(w)
	})
}

func (r *ratchet) marshal(w *writer) {
	w.opaque(r.secret)
	w.u32(r.next)
	w.u32(r.floor)
	gens := slices.Sorted(maps.Keys(r.retained))
	writeVector(w, gens, func(w *writer, g uint32) {
		w.u32(g)
		w.opaque(r.retained[g].key)
		w.opaque(r.retained[g].nonce)
	})
}

func readRatchet(r *reader) ratchet {
	rt := ratchet{secret: r.opaque("state.ratchet.secret"), next: r.u32("state.ratchet.next"), floor: r.u32("state.ratchet.floor")}
	var order ascending
	readVector(r, "state.ratchet.retained", func(r *reader) struct{} {
		g := r.u32("state.ratchet.retained")
		order.next(r, "state.ratchet.retained", uint64(g))
		kn := keyNonce{key: r.opaque("state.ratchet.key"), nonce: r.opaque("state.ratchet.nonce")}
		if rt.retained == nil {
			rt.retained = map[uint32]keyNonce{}
		}
		rt.retained[g] = kn
		return struct{}{}
	})
	return rt
}

// readSecretTree reads a secret tree written by marshal.
func readSecretTree(r *reader, s *CipherSuite) *secretTree {
	n := r.u32("state.secret_tree.leaves")
	t := newSecretTreeConfig(s, nil, 0, secretTreeConfig{})
	t.nLeaves = n
	var nodeOrder, leafOrder ascending
	readVector(r, "state.secret_tree.nodes", func(r *reader) struct{} {
		x := NodeIndex(r.u32("state.secret_tree.node"))
		nodeOrder.next(r, "state.secret_tree.node", uint64(x))
		if uint32(x) >= nodeWidth(n) {
			r.failf("state.secret_tree.node", "node %d outside the tree", x)
		}
		t.nodes[x] = r.opaque("state.secret_tree.node")
		return struct{}{}
	})
	readVector(r, "state.secret_tree.ratchets", func(r *reader) struct{} {
		l := LeafIndex(r.u32("state.secret_tree.leaf"))
		leafOrder.next(r, "state.secret_tree.leaf", uint64(l))
		if uint32(l) >= n {
			r.failf("state.secret_tree.leaf", "leaf %d outside the tree", l)
		}
		lr := &leafRatchets{handshake: readRatchet(r), application: readRatchet(r)}
		t.leaves[l] = lr
		return struct{}{}
	})
	if r.err != nil {
		return nil
	}
	return t
}

// ascending checks the keys of a saved map, which Save writes sorted and
// once each: a key not above the one before is refused, so that a loaded
// state saves back to the bytes it came from.
type ascending struct {
	last uint64
	seen bool
}

func (a *ascending) next(r *reader, what string, k uint64) {
	if a.seen && k <= a.last {
		r.failf(what, "key %d after %d: out of order or repeated", k, a.last)
	}
	a.last, a.seen = k, true
}
