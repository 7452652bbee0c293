package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"anom/internal/store"
)

// Entry kinds the package itself writes.
const (
	// KindAnchor holds another service's signed head, anchored here.
	KindAnchor = "anchor"
	// KindAnchorConflict holds a signed head that contradicts one anchored
	// before (its log went back or forked); it is evidence, not an anchor.
	KindAnchorConflict = "anchor-conflict"
)

// anchorBody is the JSON body of an anchor or anchor-conflict entry.
type anchorBody struct {
	Service string `json:"service"`
	Head    string `json:"head"`           // SignedHead.String()
	Seq     uint64 `json:"seq"`            // for people reading the log
	Peer    string `json:"peer,omitempty"` // where it came from (an endpoint)
	Error   string `json:"error,omitempty"`
}

// AppendAnchor appends another service's signed head (which the caller has
// verified), received from peer.
func (l *Log) AppendAnchor(ctx context.Context, sh *SignedHead, peer string) error {
	return l.AppendJSON(ctx, KindAnchor, anchorBody{Service: sh.Service, Head: sh.String(), Seq: sh.Head.Seq, Peer: peer})
}

// AppendAnchorConflict records a signed head that contradicts an earlier
// one, and why.
func (l *Log) AppendAnchorConflict(ctx context.Context, sh *SignedHead, peer, reason string) error {
	return l.AppendJSON(ctx, KindAnchorConflict, anchorBody{Service: sh.Service, Head: sh.String(), Seq: sh.Head.Seq, Peer: peer, Error: reason})
}

// ParseAnchor decodes the signed head of an anchor or anchor-conflict
// entry, and the peer it came from.
func ParseAnchor(e *Entry) (*SignedHead, string, error) {
	if e.Kind != KindAnchor && e.Kind != KindAnchorConflict {
		return nil, "", fmt.Errorf("reading anchor: %w: entry %d is a %q", ErrMalformed, e.Seq, e.Kind)
	}
	var ab anchorBody
	if err := json.Unmarshal(e.Body, &ab); err != nil {
		return nil, "", fmt.Errorf("reading anchor in entry %d: %w: %w", e.Seq, ErrMalformed, err)
	}
	sh, err := ParseSignedHeadText(ab.Head)
	if err != nil {
		return nil, "", fmt.Errorf("reading anchor in entry %d: %w", e.Seq, err)
	}
	return sh, ab.Peer, nil
}

// Summary is what Check found in a log.
type Summary struct {
	Head  Head              // the verified end of the chain
	Kinds map[string]uint64 // entries of each kind
	// Anchored lists the other services' heads anchored in the log, in
	// log order.
	Anchored []*SignedHead
	// Peers maps each peer an anchor came from to that anchor's service.
	Peers map[string]string
	// Checked is the number of anchored heads of this log that matched.
	Checked int
	// Warrants counts, per warrant, the entries of each kind whose JSON
	// body names that warrant by its hash (a "warrant_hash" field of 64
	// hex digits): the archive's and custodians' requests, answers and
	// refusals do.
	Warrants map[[32]byte]map[string]uint64
}

// warrantOf returns the warrant hash an entry's JSON body names, if any.
func warrantOf(body []byte) ([32]byte, bool) {
	var w [32]byte
	if len(body) == 0 || body[0] != '{' || !bytes.Contains(body, []byte(`"warrant_hash"`)) {
		return w, false
	}
	var b struct {
		WarrantHash string `json:"warrant_hash"`
	}
	if json.Unmarshal(body, &b) != nil || len(b.WarrantHash) != 64 {
		return w, false
	}
	if _, err := hex.Decode(w[:], []byte(b.WarrantHash)); err != nil {
		return w, false
	}
	return w, true
}

// Latest returns the latest anchored head of each other service, in
// service order.
func (s *Summary) Latest() []*SignedHead {
	by := map[string]*SignedHead{}
	for _, h := range s.Anchored {
		if old := by[h.Service]; old == nil || h.Head.Seq >= old.Head.Seq {
			by[h.Service] = h
		}
	}
	out := make([]*SignedHead, 0, len(by))
	for _, h := range by {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}

// CheckOptions tunes Check. The zero value checks the whole chain and its
// stored head.
type CheckOptions struct {
	// UpTo, if set, is the head a running log reported: the chain is
	// checked up to it, later entries and the stored head are ignored.
	UpTo *Head
	// Anchors are heads of this log held elsewhere (by the other services,
	// or by anyone given a signed head): the log must hold, at each one's
	// sequence, an entry with its hash. A head beyond the end of the log
	// means it was truncated; a different hash means it was rewritten or
	// re-chained after the head was handed out.
	Anchors []Head
}

// Check walks the chain in bucket from the first entry, checks every link,
// the stored head (or opts.UpTo) and every anchored head, and sums up the
// log. A failure is a *TamperError (errors.Is ErrTampered) naming the first
// entry that does not verify.
func Check(ctx context.Context, kv store.KV, bucket string, opts CheckOptions) (*Summary, error) {
	sum := &Summary{Kinds: map[string]uint64{}, Peers: map[string]string{}, Warrants: map[[32]byte]map[string]uint64{}}
	want := map[uint64][32]byte{} // anchored seq -> hash
	for _, a := range opts.Anchors {
		if h, ok := want[a.Seq]; ok && h != a.Hash {
			// The service signed two different logs: a fork.
			return nil, &TamperError{Seq: a.Seq, Anchored: true, Reason: fmt.Sprintf(
				"two heads anchored elsewhere vouch for different entries %d (%x and %x): the log was forked", a.Seq, h, a.Hash)}
		}
		want[a.Seq] = a.Hash
	}
	var (
		cur   Head
		after string
		done  bool
	)
	for !done {
		page, more, err := kv.List(ctx, bucket, store.ListOptions{Prefix: entryPrefix, After: after})
		if err != nil {
			return nil, fmt.Errorf("verifying audit log %q: %w", bucket, err)
		}
		for _, p := range page {
			next := cur.Seq + 1
			if p.Key != entryKey(next) {
				return nil, &TamperError{Seq: next, Reason: fmt.Sprintf("found key %q where entry %d belongs", p.Key, next)}
			}
			e, err := ParseEntry(p.Value)
			if err != nil {
				return nil, &TamperError{Seq: next, Reason: err.Error()}
			}
			if e.Seq != next {
				return nil, &TamperError{Seq: next, Reason: fmt.Sprintf("entry says it is %d", e.Seq)}
			}
			if subtle.ConstantTimeCompare(e.Prev[:], cur.Hash[:]) != 1 {
				return nil, &TamperError{Seq: next, Reason: "previous-entry hash does not match"}
			}
			cur = Head{Seq: next, Hash: Hash(p.Value)}
			after = p.Key
			if h, ok := want[cur.Seq]; ok {
				if subtle.ConstantTimeCompare(h[:], cur.Hash[:]) != 1 {
					return nil, &TamperError{Seq: cur.Seq, Anchored: true, Reason: fmt.Sprintf(
						"entry %d is not the one a head anchored elsewhere vouches for (%x): the log was rewritten or re-chained", cur.Seq, h)}
				}
				sum.Checked++
			}
			sum.Kinds[e.Kind]++
			if w, ok := warrantOf(e.Body); ok {
				if sum.Warrants[w] == nil {
					sum.Warrants[w] = map[string]uint64{}
				}
				sum.Warrants[w][e.Kind]++
			}
			if e.Kind == KindAnchor {
				sh, peer, err := ParseAnchor(e)
				if err != nil {
					return nil, fmt.Errorf("verifying audit log %q: %w", bucket, err)
				}
				sum.Anchored = append(sum.Anchored, sh)
				if peer != "" {
					sum.Peers[peer] = sh.Service
				}
			}
			if opts.UpTo != nil && cur.Seq == opts.UpTo.Seq {
				done = true
				break
			}
		}
		if !more {
			break
		}
	}
	var stored Head
	if opts.UpTo != nil {
		stored = *opts.UpTo
	} else {
		e, err := kv.Get(ctx, bucket, headKey)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("verifying audit log %q: %w", bucket, err)
		default:
			if stored, err = decodeHead(e.Value); err != nil {
				return nil, &TamperError{Seq: 0, Reason: err.Error()}
			}
		}
	}
	if stored != cur {
		return nil, &TamperError{Seq: cur.Seq + 1, Reason: fmt.Sprintf("head says %s, chain ends at %s", stored, cur)}
	}
	for seq := range want {
		if seq > cur.Seq {
			return nil, &TamperError{Seq: seq, Anchored: true, Reason: fmt.Sprintf(
				"the log ends at entry %d, but a head at entry %d was anchored elsewhere: the log was truncated", cur.Seq, seq)}
		}
	}
	sum.Head = cur
	return sum, nil
}

// Verify walks the chain in bucket from the first entry and checks every
// link and the head. It returns the verified head, or a *TamperError
// (errors.Is ErrTampered) naming the first entry that does not verify.
// Without anchored heads it cannot tell a log from one truncated or
// re-chained by whoever can write the store; CheckSigned can.
func Verify(ctx context.Context, kv store.KV, bucket string) (Head, error) {
	s, err := Check(ctx, kv, bucket, CheckOptions{})
	if err != nil {
		return Head{}, err
	}
	return s.Head, nil
}

// CheckSigned checks the log of service (whose heads verify under pub)
// against signed heads of it held elsewhere: each head's signature must
// verify (else ErrBadSignature), and the log must hold it (see
// CheckOptions.Anchors). Heads of other services are ignored; Summary's
// Checked counts the heads used.
func CheckSigned(ctx context.Context, kv store.KV, bucket, service string, pub ed25519.PublicKey, heads []*SignedHead) (*Summary, error) {
	var anchors []Head
	for i, h := range heads {
		if h.Service != service {
			continue
		}
		if err := h.Verify(pub); err != nil {
			return nil, fmt.Errorf("checking audit log %q against signed head %d: %w", bucket, i+1, err)
		}
		anchors = append(anchors, h.Head)
	}
	return Check(ctx, kv, bucket, CheckOptions{Anchors: anchors})
}

// Summary checks the running log up to its current head and sums it up.
func (l *Log) Summary(ctx context.Context) (*Summary, error) {
	h := l.Head()
	return Check(ctx, l.kv, l.bucket, CheckOptions{UpTo: &h})
}

// Sign signs the log's current head as service.
func (l *Log) Sign(key ed25519.PrivateKey, service string) (*SignedHead, error) {
	return SignHead(key, service, l.Head(), l.now())
}

// Counts makes the signed count statement of the running log for a
// requester's nonce: its head, entries of each kind and the latest head of
// each other service anchored in it, in service order. A log with more
// than MaxKinds kinds or MaxAnchors services is refused (ErrTooLarge).
func (l *Log) Counts(ctx context.Context, key ed25519.PrivateKey, service string, nonce [32]byte) (*Counts, error) {
	sum, err := l.Summary(ctx)
	if err != nil {
		return nil, fmt.Errorf("counting audit log %q: %w", l.bucket, err)
	}
	c := &Counts{Service: service, Head: sum.Head, Time: l.now(), Nonce: nonce, Kinds: sum.Kinds, Anchors: sum.Latest(), Warrants: sum.Warrants}
	if len(c.Kinds) > MaxKinds || len(c.Anchors) > MaxAnchors || len(c.Warrants) > MaxWarrants {
		return nil, fmt.Errorf("counting audit log %q: %w: %d kinds, %d services anchored, %d warrants", l.bucket, ErrTooLarge, len(c.Kinds), len(c.Anchors), len(c.Warrants))
	}
	if err := c.Sign(key); err != nil {
		return nil, err
	}
	return c, nil
}
