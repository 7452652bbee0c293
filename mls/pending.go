package mls

import "fmt"

// A pending commit is kept by its maker until the delivery service's
// answer is known: if the answer is lost (a crash, a dropped connection),
// the commit may still have been accepted, and the maker must then move to
// its epoch when it meets the commit in the group's log. Save and
// LoadPendingCommit keep it across restarts.

const pendingVersion = 1

// Save serializes the pending commit with the state it leads to, private
// keys included: the caller must keep it encrypted at rest, like a
// group's saved state.
func (p *PendingCommit) Save() ([]byte, error) {
	if p == nil || p.next == nil {
		return nil, fmt.Errorf("saving pending commit: %w", ErrWrongEpoch)
	}
	next, err := p.next.Save()
	if err != nil {
		return nil, fmt.Errorf("saving pending commit: %w", err)
	}
	var w writer
	w.u16(pendingVersion)
	w.u64(p.epoch)
	w.opaque(p.Commit.Encode())
	w.optional(p.Welcome != nil, func(w *writer) { w.opaque(p.Welcome.Encode()) })
	writeVector(&w, p.Added, func(w *writer, l LeafIndex) { w.u32(uint32(l)) })
	writeVector(&w, p.Removed, func(w *writer, l LeafIndex) { w.u32(uint32(l)) })
	w.opaque(next)
	return w.b, nil
}

// LoadPendingCommit restores a pending commit saved with Save.
func LoadPendingCommit(cfg Config, b []byte) (*PendingCommit, error) {
	r := newReader(b)
	if v := r.u16("pending.version"); r.err == nil && v != pendingVersion {
		return nil, fmt.Errorf("%w: pending commit version %d", ErrBadState, v)
	}
	p := &PendingCommit{epoch: r.u64("pending.epoch")}
	commit := r.opaque("pending.commit")
	var welcome []byte
	if r.optional("pending.welcome") {
		welcome = r.opaque("pending.welcome")
	}
	leaf := func(r *reader) LeafIndex { return LeafIndex(r.u32("pending.leaf")) }
	p.Added = readVector(r, "pending.added", leaf)
	p.Removed = readVector(r, "pending.removed", leaf)
	next := r.opaque("pending.next")
	if err := r.done("pending"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	var err error
	if p.Commit, err = DecodeMLSMessage(commit); err != nil || p.Commit.WireFormat != WirePublicMessage {
		return nil, fmt.Errorf("%w: pending commit message: %v", ErrBadState, err)
	}
	if welcome != nil {
		if p.Welcome, err = DecodeMLSMessage(welcome); err != nil || p.Welcome.WireFormat != WireWelcome {
			return nil, fmt.Errorf("%w: pending commit welcome: %v", ErrBadState, err)
		}
	}
	if p.next, err = Load(cfg, next); err != nil {
		return nil, fmt.Errorf("loading pending commit: %w", err)
	}
	if p.next.ctx.Epoch != p.epoch+1 {
		return nil, fmt.Errorf("%w: pending commit of epoch %d leads to epoch %d", ErrBadState, p.epoch, p.next.ctx.Epoch)
	}
	return p, nil
}
