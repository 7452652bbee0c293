package server

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"anom/internal/store"
)

// A device removed from a group by a commit is not cut off at once: it may
// still read the group's log up to and including that commit, so that a
// device offline at the time learns it was removed (it cannot post: that
// is checked against the group's leaves). Its member record is kept with
// the commit's sequence in Removed, and a "leaving" record indexed by
// group keeps the log from being trimmed past its cursor. Both go once it
// acknowledges the commit, or once retention has dropped the commit.

func leavingKey(gh, devHex string) string { return gh + "." + devHex }

// removalOps returns the writes that mark the devices a commit at seq
// removed (and did not add back) as leaving; each member record is
// updated at the revision read, and not at all if a later join or this
// removal is recorded already.
func (s *Server) removalOps(ctx context.Context, gh string, plan *commitPlan, seq uint64) ([]store.Op, error) {
	var ops []store.Op
	for _, d := range plan.removed {
		if slices.Contains(plan.added, d) {
			continue
		}
		mr, rev, err := s.memberEntry(ctx, d, gh)
		if err != nil {
			return nil, fmt.Errorf("recording removal from group %s: %w", gh, err)
		}
		if rev == 0 {
			continue // no member record (never joined through the log): nothing to keep
		}
		if mr.Removed != 0 && mr.Removed <= seq {
			continue // replay of a removal already recorded
		}
		if mr.Joined > seq {
			continue // joined again after this commit
		}
		mr.Removed = seq
		ops = append(ops, store.UpdateOp(bucketMembers, memberKey(d, gh), encodeRecord(mr), rev),
			store.PutOp(bucketLeaving, leavingKey(gh, d), encodeRecord(mr)))
	}
	return ops, nil
}

// dropRemoved forgets a removed device's membership once it has the
// commit that removed it at seq (unless it was added back meanwhile).
func (s *Server) dropRemoved(ctx context.Context, devHex, gh string, seq uint64) error {
	e, err := s.st.Get(ctx, bucketMembers, memberKey(devHex, gh))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dropping removed member: %w", err)
	}
	var mr memberRecord
	if err := decodeRecord(e, &mr); err != nil {
		return err
	}
	if mr.Removed != seq {
		return nil // added back since
	}
	_, err = s.st.Txn(ctx, store.DeleteOp(bucketMembers, memberKey(devHex, gh), e.Revision), store.DeleteOp(bucketLeaving, leavingKey(gh, devHex), 0))
	if err != nil && !errors.Is(err, store.ErrRevisionMismatch) && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("dropping removed member: %w", err)
	}
	return nil
}

// leavingMembers lists the devices removed from a group that may still
// read it, with their member records.
func (s *Server) leavingMembers(ctx context.Context, gh string) (map[string]memberRecord, error) {
	out := map[string]memberRecord{}
	prefix := gh + "."
	after := ""
	for {
		page, more, err := s.st.List(ctx, bucketLeaving, store.ListOptions{Prefix: prefix, After: after})
		if err != nil {
			return nil, fmt.Errorf("listing removed members of %s: %w", gh, err)
		}
		for _, e := range page {
			var mr memberRecord
			if err := decodeRecord(e, &mr); err != nil {
				return nil, err
			}
			out[e.Key[len(prefix):]] = mr
		}
		if !more || len(page) == 0 {
			return out, nil
		}
		after = page[len(page)-1].Key
	}
}
