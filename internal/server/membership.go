package server

import (
	"slices"

	"anom/identity"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// The server follows each group's membership from the commits it accepts:
// which device sits at which leaf. It cannot verify the MLS signatures and
// tags (it has no group secrets) but it attributes every commit to the
// authenticated device that sent it, checks that this device holds the
// sender leaf, validates added key packages, and places members exactly
// as the MLS tree does (removals blank leaves; additions take the leftmost
// blank leaf, or extend the tree).

// commitPlan is the membership change of one commit.
type commitPlan struct {
	leaves  []string // the new leaf table
	added   []string // devices added, in proposal order
	removed []string // devices removed
}

// planCommit checks a commit by the member at senderLeaf against the
// current leaf table. With validate false (replay of an accepted commit)
// key packages are only decoded, not validated again.
func (s *Server) planCommit(leaves []string, senderLeaf uint32, commit *mls.Commit, validate bool) (*commitPlan, error) {
	if int(senderLeaf) >= len(leaves) || leaves[senderLeaf] == "" {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "sender leaf %d is not a member", senderLeaf)
	}
	sender := leaves[senderLeaf]
	plan := &commitPlan{leaves: slices.Clone(leaves)}
	var removes []uint32
	members := map[string]bool{}
	for _, d := range leaves {
		if d != "" {
			members[d] = true
		}
	}
	for i, pr := range commit.Proposals {
		if pr.Proposal == nil {
			return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, "proposal %d is by reference; commits must carry proposals inline", i)
		}
		p := pr.Proposal
		switch p.Type {
		case mls.ProposalAdd:
			if p.Add == nil {
				return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, "proposal %d: empty add", i)
			}
			var cert *identity.DeviceCertificate
			var err error
			if validate {
				cert, err = s.checkKeyPackage(&p.Add.KeyPackage)
			} else {
				cert, err = identity.CertificateFromCredential(&p.Add.KeyPackage.LeafNode.Credential)
			}
			if err != nil {
				return nil, err
			}
			d := cert.DeviceID.String()
			if members[d] {
				return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, "proposal %d adds device %s, already a member", i, d)
			}
			members[d] = true
			plan.added = append(plan.added, d)
		case mls.ProposalRemove:
			if p.Remove == nil {
				return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, "proposal %d: empty remove", i)
			}
			l := uint32(p.Remove.Removed)
			if int(l) >= len(leaves) || leaves[l] == "" || slices.Contains(removes, l) {
				return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, "proposal %d removes leaf %d, which is not a member", i, l)
			}
			if l == senderLeaf {
				return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, "proposal %d: a committer cannot remove itself", i)
			}
			removes = append(removes, l)
		case mls.ProposalPSK, mls.ProposalGroupContextExtensions, mls.ProposalReInit:
			// No membership change.
		default:
			return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, "proposal %d of type %d is not accepted in a member's commit", i, p.Type)
		}
	}
	if validate && commit.Path != nil {
		// A path may carry a renewed certificate, but only of the same
		// device.
		cert, err := identity.CertificateFromCredential(&commit.Path.LeafNode.Credential)
		if err != nil {
			return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, err, "update path leaf")
		}
		if cert.DeviceID.String() != sender {
			return nil, errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "update path leaf is device %s, not the sender", cert.DeviceID)
		}
		if err := s.validator()(&commit.Path.LeafNode.Credential, commit.Path.LeafNode.SignatureKey); err != nil {
			return nil, certError(err)
		}
	}
	if len(plan.added) > s.limits.MaxAddsPerCommit {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_LIMIT_EXCEEDED, "commit adds %d members, limit %d", len(plan.added), s.limits.MaxAddsPerCommit)
	}
	for _, l := range removes {
		plan.removed = append(plan.removed, plan.leaves[l])
		plan.leaves[l] = ""
	}
	// Truncate trailing blanks, as the tree does; additions then fill the
	// leftmost blank leaf or extend to the right, which is where MLS puts
	// them whatever the tree's exact width.
	for len(plan.leaves) > 0 && plan.leaves[len(plan.leaves)-1] == "" {
		plan.leaves = plan.leaves[:len(plan.leaves)-1]
	}
	for _, d := range plan.added {
		if i := slices.Index(plan.leaves, ""); i >= 0 {
			plan.leaves[i] = d
		} else {
			plan.leaves = append(plan.leaves, d)
		}
	}
	if len(plan.leaves) > s.limits.MaxGroupLeaves {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_LIMIT_EXCEEDED, "group of %d leaves, limit %d", len(plan.leaves), s.limits.MaxGroupLeaves)
	}
	return plan, nil
}
