package server

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"anom/identity"
	"anom/internal/store"
	anomv1 "anom/proto/anom/v1"
)

// Further devices of a user. A username that exists takes a new device
// only with an identity.DeviceApproval of its key: signed by one of the
// user's current devices (valid, not revoked) or by the root (the admin).
// The approval comes with the activation, or was submitted before by the
// approving device (ApproveDevice) or the admin (the admin API, ApproveDevice);
// submitted approvals wait in bucketApprovals under the new key until
// used or too old. The approval is appended to the transparency log just
// before the new certificate, and the user's other devices are told
// (DeviceAdded) once the new device has uploaded key packages.

const (
	// approvalMaxAge is how long an approval may be used after it was
	// signed.
	approvalMaxAge = 24 * time.Hour
	// approvalSkew is how far in the future an approval's time may be.
	approvalSkew = 5 * time.Minute
)

func (s *Server) checkApprovalTime(a *identity.DeviceApproval) error {
	now := s.now()
	if a.IssuedAt.After(now.Add(approvalSkew)) {
		return errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "approval issued in the future (%v)", a.IssuedAt.UTC())
	}
	if now.Sub(a.IssuedAt) > approvalMaxAge {
		return errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "approval of %v is older than %v", a.IssuedAt.UTC(), approvalMaxAge)
	}
	return nil
}

// approveDevice records an approval signed by the session's device for a
// further device of its own user.
func (s *Server) approveDevice(ctx context.Context, c *session, req *anomv1.ApproveDevice) (*anomv1.Ok, error) {
	raw := req.GetApproval()
	if len(raw) > identity.MaxDeviceApprovalSize {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_TOO_LARGE, "approval of %d bytes", len(raw))
	}
	a, err := identity.DecodeDeviceApproval(raw)
	if err != nil {
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "approval")
	}
	if a.Kind != identity.ApproverDevice || a.Approver != c.device {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "an approval sent by a device must be signed by it")
	}
	if err := a.Verify(s.rootPub, c.cert); err != nil {
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, err, "approval")
	}
	if err := s.checkApprovalTime(a); err != nil {
		return nil, err
	}
	if err := s.storeApproval(ctx, a); err != nil {
		return nil, err
	}
	s.log.Info("device approval submitted", "username", a.Username, "approver", c.devHex)
	return &anomv1.Ok{}, nil
}

// ApproveDevice records an administrator's approval of a further device
// of an existing user, from the pairing request the new device shows: the
// server signs the approval (dated at) and keeps it until the device
// activates under that username with its own activation code.
func (s *Server) ApproveDevice(ctx context.Context, req *identity.PairingRequest, at time.Time) (*identity.DeviceApproval, error) {
	if _, err := s.st.Get(ctx, bucketUsers, req.Username); errors.Is(err, store.ErrNotFound) {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_NOT_FOUND, "no user %q in this network: a first device activates with a code alone", req.Username)
	} else if err != nil {
		return nil, storeError(err, "user "+req.Username)
	}
	a, err := s.signAdminApproval(req, at)
	if err != nil {
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "approving device")
	}
	if err := s.checkApprovalTime(a); err != nil {
		return nil, err
	}
	if err := s.storeApproval(ctx, a); err != nil {
		return nil, err
	}
	s.log.Info("admin device approval recorded", "username", a.Username)
	return a, nil
}

func (s *Server) storeApproval(ctx context.Context, a *identity.DeviceApproval) error {
	if _, err := s.st.Put(ctx, bucketApprovals, hex.EncodeToString(a.Key), a.Encode()); err != nil {
		return fmt.Errorf("storing approval: %w", err)
	}
	return nil
}

// storedApproval returns the approval submitted for key, or nil.
func (s *Server) storedApproval(ctx context.Context, key ed25519.PublicKey) (*identity.DeviceApproval, error) {
	e, err := s.st.Get(ctx, bucketApprovals, hex.EncodeToString(key))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up approval: %w", err)
	}
	a, err := identity.DecodeDeviceApproval(e.Value)
	if err != nil {
		return nil, fmt.Errorf("stored approval: %w: %w", store.ErrCorrupt, err)
	}
	return a, nil
}

// checkApproval verifies an approval presented for a new device of
// username with key: its signer must be the root or a current device of
// that user, valid now and not revoked.
func (s *Server) checkApproval(ctx context.Context, a *identity.DeviceApproval, username string, key ed25519.PublicKey) error {
	if a.Username != username || !ed25519.PublicKey(a.Key).Equal(key) {
		return errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "the approval is for another username or key")
	}
	if err := s.checkApprovalTime(a); err != nil {
		return err
	}
	var approver *identity.DeviceCertificate
	if a.Kind == identity.ApproverDevice {
		cert, err := s.deviceCert(ctx, a.Approver.String())
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "approving device %s is unknown", a.Approver)
			}
			return err
		}
		if s.isRevoked(cert.DeviceID) {
			return errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "approving device %s is revoked", a.Approver)
		}
		if err := cert.Verify(s.rootPub, s.now()); err != nil {
			return wrapErr(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, err, "approving device")
		}
		approver = cert
	}
	if err := a.Verify(s.rootPub, approver); err != nil {
		return wrapErr(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, err, "approval")
	}
	return nil
}

// announcePending announces the session's device to its user's other
// devices if it is a further device not yet announced (called once it has
// key packages, so the others can add it to their groups at once).
func (s *Server) announcePending(ctx context.Context, c *session) error {
	e, err := s.st.Get(ctx, bucketAnnounce, c.devHex)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking device announcement: %w", err)
	}
	rec, _, err := s.deviceRecord(ctx, c.devHex)
	if err != nil {
		return err
	}
	if err := s.st.Delete(ctx, bucketAnnounce, c.devHex, e.Revision); err != nil {
		if errors.Is(err, store.ErrRevisionMismatch) || errors.Is(err, store.ErrNotFound) {
			return nil // announced by a concurrent upload
		}
		return fmt.Errorf("recording device announcement: %w", err)
	}
	s.announceDevice(ctx, c.cert, rec.LogIndex)
	return nil
}

// announceDevice tells the user's other online devices that a device was
// added under their name.
func (s *Server) announceDevice(ctx context.Context, cert *identity.DeviceCertificate, idx uint64) {
	e, err := s.st.Get(ctx, bucketUsers, cert.Username)
	if err != nil {
		s.log.Warn("announcing new device", "device", cert.DeviceID, "err", err)
		return
	}
	var u userRecord
	if err := decodeRecord(e, &u); err != nil {
		s.log.Warn("announcing new device", "device", cert.DeviceID, "err", err)
		return
	}
	b, err := proto.Marshal(&anomv1.Frame{Body: &anomv1.Frame_PushDeviceAdded{PushDeviceAdded: &anomv1.DeviceAdded{
		Username: cert.Username, DeviceId: cert.DeviceID[:], LogIndex: idx,
	}}})
	if err != nil {
		s.log.Error("encoding push", "err", err)
		return
	}
	var others []string
	for _, d := range u.Devices {
		id, err := identity.ParseDeviceID(d)
		if err != nil || id == cert.DeviceID {
			continue
		}
		for _, c := range s.hub.of(id) {
			c.push(b)
		}
		others = append(others, d)
	}
	if len(others) > 0 {
		s.publish(Push{Devices: others, Frame: b})
	}
}
