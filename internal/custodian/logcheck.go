package custodian

import (
	"context"
	"errors"
	"fmt"

	"anom/escrow"
	"anom/identity"
	"anom/internal/store"
	"anom/internal/translog"
)

// The custodian trusts no certificate for being signed: a key is trusted
// only as a transparency-log entry included in a tree head that the
// network's directory key signed (its certificate logged and chained to
// the root) and that extends the head the custodian saw last. So a
// certificate minted with a stolen key but kept out of the log (a device
// of bob relabelled as alice) is refused, and one put in the log is
// visible to every monitor of that username.

// StateBucket holds the custodian's tracked tree head.
const StateBucket = "custodian-state"

const keyTreeHead = "tree-head"

// TrackedHead returns the tree head the custodian tracks (zero before any
// request).
func (s *Service) TrackedHead() translog.SignedTreeHead {
	s.headMu.Lock()
	defer s.headMu.Unlock()
	return s.head
}

func (s *Service) loadHead(ctx context.Context) error {
	e, err := s.cfg.Store.Get(ctx, StateBucket, keyTreeHead)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("loading tracked tree head: %w", err)
	}
	var h translog.SignedTreeHead
	if err := h.UnmarshalBinary(e.Value); err != nil {
		return fmt.Errorf("loading tracked tree head: %w: %w", store.ErrCorrupt, err)
	}
	if _, err := identity.VerifyTreeHead(s.cfg.Root, h, translog.SignedTreeHead{}); err != nil {
		return fmt.Errorf("loading tracked tree head: %w", err)
	}
	s.head = h
	return nil
}

// checkLog verifies the envelope's log evidence, moves the tracked head
// forward (durably) and returns the key directory of the logged
// certificates.
func (s *Service) checkLog(ctx context.Context, env *Envelope) (*keyDirectory, error) {
	h := env.TreeHead
	s.headMu.Lock()
	defer s.headMu.Unlock()
	cur := s.head
	if _, err := identity.VerifyTreeHead(s.cfg.Root, h, cur); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLogEvidence, err)
	}
	if h.Size < cur.Size {
		return nil, fmt.Errorf("%w: tree head of size %d is older than the tracked head of size %d", ErrLogEvidence, h.Size, cur.Size)
	}
	p := env.Consistency
	if p.Size1 != cur.Size || p.Size2 != h.Size {
		return nil, fmt.Errorf("%w: consistency proof from %d to %d, want from the tracked size %d to %d", ErrLogEvidence, p.Size1, p.Size2, cur.Size, h.Size)
	}
	curRoot := translog.EmptyRoot
	if cur.Signature != nil {
		curRoot = cur.Root
	}
	if err := translog.VerifyConsistency(cur.Size, h.Size, curRoot, h.Root, p.Path); err != nil {
		refusal := fmt.Errorf("%w: tree head of size %d does not extend the tracked head of size %d (fork): %w", ErrLogEvidence, h.Size, cur.Size, err)
		if aerr := s.alertFork(ctx, cur, h, refusal); aerr != nil {
			return nil, errors.Join(refusal, aerr)
		}
		return nil, refusal
	}
	if cur.Signature == nil || h.Size > cur.Size || h.Timestamp > cur.Timestamp {
		b, err := h.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrLogEvidence, err)
		}
		if _, err := s.cfg.Store.Put(ctx, StateBucket, keyTreeHead, b); err != nil {
			return nil, fmt.Errorf("recording tracked tree head: %w", err)
		}
		s.head = h
	}
	k := &keyDirectory{devices: map[identity.DeviceID][]*identity.DeviceCertificate{}, servers: map[string]*identity.OnlineKeyCertificate{}}
	for i, l := range env.Logged {
		if l.Proof.TreeSize != h.Size {
			return nil, fmt.Errorf("%w: log entry %d: proof for size %d, tree head has %d", ErrLogEvidence, i, l.Proof.TreeSize, h.Size)
		}
		if err := translog.VerifyInclusion(translog.HashLeaf(l.Entry), l.Proof.Index, l.Proof.TreeSize, l.Proof.Path, h.Root); err != nil {
			return nil, fmt.Errorf("%w: log entry %d is not in the tree head of size %d: %w", ErrLogEvidence, i, h.Size, err)
		}
		e, err := translog.DecodeEntry(l.Entry)
		if err != nil {
			return nil, fmt.Errorf("%w: log entry %d: %w", ErrMalformed, i, err)
		}
		switch e.Kind {
		case translog.KindDeviceCertificate:
			c, err := identity.DecodeDeviceCertificate(e.Payload)
			if err != nil {
				return nil, fmt.Errorf("%w: log entry %d: %w", ErrMalformed, i, err)
			}
			if err := c.VerifySignature(s.cfg.Root); err != nil {
				return nil, fmt.Errorf("%w: logged certificate of device %s: %w", ErrLogEvidence, c.DeviceID, err)
			}
			k.devices[c.DeviceID] = append(k.devices[c.DeviceID], c)
		case translog.KindOnlineKey:
			c, err := identity.OnlineKeyOfEntry(e)
			if err != nil {
				return nil, fmt.Errorf("%w: log entry %d: %w", ErrMalformed, i, err)
			}
			// Role and root signature; the time is checked per record.
			if err := c.Verify(s.cfg.Root, identity.RoleCountersign, c.NotBefore); err != nil {
				return nil, fmt.Errorf("%w: logged online key %d: %w", ErrLogEvidence, i, err)
			}
			k.servers[fmt.Sprintf("%s/%d", c.Name, c.Serial)] = c
		default:
			return nil, fmt.Errorf("%w: log entry %d is a %v, not a certificate", ErrLogEvidence, i, e.Kind)
		}
	}
	// A countersignature counts only inside its key's validity.
	for i, rec := range env.Request.Records {
		c, ok := k.servers[string(rec.ServerID)]
		if !ok {
			continue // ServerKey refuses it with ErrUnknownKey
		}
		if rec.ServerTime.Before(c.NotBefore) || !rec.ServerTime.Before(c.NotAfter) {
			return nil, &escrow.RecordError{Index: i, Err: fmt.Errorf("%w: countersigned at %v, outside the validity of countersigning key %q",
				escrow.ErrUnknownKey, rec.ServerTime.UTC(), rec.ServerID)}
		}
	}
	return k, nil
}

// KindLogFork is the custodian's audit entry for a tree head signed by the
// network's directory key that was not shown to extend the head the
// custodian tracks: a fork of the transparency log (a split view shown to
// the custodians), or a broken consistency proof. The archive's report
// flags every one of them.
const KindLogFork = "log-fork"

// forkAudit is the audit body of a log-fork entry: both signed heads, as
// evidence anyone can check against the root.
type forkAudit struct {
	Tracked []byte `json:"tracked"` // the tracked SignedTreeHead
	Offered []byte `json:"offered"` // the offered one
	Error   string `json:"error"`
}

// alertFork records a tree head that does not extend the tracked one in
// the audit log and raises an alert in the custodian's log.
func (s *Service) alertFork(ctx context.Context, cur, h translog.SignedTreeHead, cause error) error {
	tb, err := cur.MarshalBinary()
	if err != nil {
		return err
	}
	hb, err := h.MarshalBinary()
	if err != nil {
		return err
	}
	s.cfg.Logger.Error("ALERT: a tree head signed by the network's directory key does not extend the tracked head: the transparency log may be forked (a split view); the request is refused and the evidence is in the audit log",
		"tracked_size", cur.Size, "offered_size", h.Size, "error", cause)
	return s.audit(ctx, KindLogFork, forkAudit{Tracked: tb, Offered: hb, Error: cause.Error()})
}
