package server

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"anom/identity"
	"anom/internal/adminapi"
	"anom/internal/store"
	"anom/internal/translog"
	anomv1 "anom/proto/anom/v1"
)

// Administration: revocation, remote wipe, admin device approvals,
// distributors and their activation codes. An administrator asks through
// the admin API (adminapi.go), which checks who asks; the methods here do
// the work, through the store only, so every server of a cluster sees it.
// Revocations, wipe commands and admin approvals are signed here, by the
// server, with its directory key (certified by the offline root; v2
// objects carry that certificate): the administrator states the intent.

// The objects the server signs on an administrator's behalf, one place
// each, so the key they are signed with is chosen here alone.

func (s *Server) signRevocation(id identity.DeviceID, at time.Time) *identity.Revocation {
	return s.dir.SignRevocation(id, at)
}

func (s *Server) signWipe(id identity.DeviceID, at time.Time) (*identity.WipeCommand, error) {
	return s.dir.SignWipeCommand(id, at, s.rand)
}

func (s *Server) signAdminApproval(req *identity.PairingRequest, at time.Time) (*identity.DeviceApproval, error) {
	return s.dir.ApproveDevice(req, at)
}

// Revoke revokes a device for an administrator (reason goes to the log):
// the revocation, dated at, is recorded, appended to the transparency log,
// and every session of the device is cut at once. Revoking twice is
// harmless; already reports it.
func (s *Server) Revoke(ctx context.Context, id identity.DeviceID, reason string, at time.Time) (already bool, err error) {
	key := id.String()
	if err := s.knownDevice(ctx, key); err != nil {
		return false, err
	}
	already, err = s.revoke(ctx, s.signRevocation(id, at), nil)
	if err != nil {
		return false, err
	}
	if !already {
		s.log.Info("device revoked by an administrator", "device", key, "reason", reason)
	}
	return already, nil
}

// revoke records and logs a revocation the server signed; the session
// spare, if not nil, is left to close itself after its answer.
func (s *Server) revoke(ctx context.Context, r *identity.Revocation, spare *session) (already bool, err error) {
	key := r.DeviceID.String()
	if _, err := s.st.Create(ctx, bucketRevoked, key, r.Encode()); err != nil {
		if errors.Is(err, store.ErrExists) {
			// Announced again: a crash may have come between the
			// revocation and its announcement.
			s.setRevoked(r.DeviceID, spare)
			s.announceRevocation(ctx, r.DeviceID)
			return true, nil
		}
		return false, fmt.Errorf("revoking %s: %w", key, err)
	}
	s.setRevoked(r.DeviceID, spare)
	s.announceRevocation(ctx, r.DeviceID)
	s.tlogMu.Lock()
	_, err = s.tlog.Append(ctx, translog.Entry{Kind: translog.KindRevocation, Payload: r.Encode()})
	s.tlogMu.Unlock()
	if err != nil {
		return false, fmt.Errorf("logging revocation of %s: %w", key, err)
	}
	s.log.Info("device revoked", "device", key)
	return false, nil
}

// knownDevice returns nil if the device (hex) exists, else an *Error.
func (s *Server) knownDevice(ctx context.Context, key string) error {
	_, err := s.st.Get(ctx, bucketDevices, key)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(anomv1.ErrorCode_ERROR_CODE_NOT_FOUND, "no device %s in this network", key)
	}
	if err != nil {
		return storeError(err, "device "+key)
	}
	return nil
}

func (s *Server) setRevoked(id identity.DeviceID, spare *session) {
	s.revokedMu.Lock()
	s.revoked[id] = true
	s.revokedMu.Unlock()
	for _, c := range s.hub.of(id) {
		if c != spare {
			go c.kick(anomv1.ErrorCode_ERROR_CODE_REVOKED, "device revoked")
		}
	}
}

// Wipe orders a device, for an administrator (reason goes to the log), to
// wipe itself: the server signs the wipe command, dated at, records it and
// pushes it to the device's sessions; a device that is offline gets it when
// it next connects. online is how many sessions got it at once.
func (s *Server) Wipe(ctx context.Context, id identity.DeviceID, reason string, at time.Time) (online int, err error) {
	key := id.String()
	if err := s.knownDevice(ctx, key); err != nil {
		return 0, err
	}
	w, err := s.signWipe(id, at)
	if err != nil {
		return 0, fmt.Errorf("wiping %s: %w", key, err)
	}
	if _, err := s.st.Put(ctx, bucketWipes, key, w.Encode()); err != nil {
		return 0, fmt.Errorf("wiping %s: %w", key, err)
	}
	b, err := marshalPush(&anomv1.Frame{Body: &anomv1.Frame_PushWipe{PushWipe: &anomv1.Wipe{Command: w.Encode()}}})
	if err != nil {
		return 0, fmt.Errorf("wiping %s: %w", key, err)
	}
	for _, c := range s.hub.of(id) {
		c.push(b)
		online++
	}
	s.publish(Push{Devices: []string{key}, Frame: b}) // its sessions on other servers
	s.log.Info("wipe command issued", "device", key, "reason", reason, "online", online)
	return online, nil
}

// wipeConfirm records a device's confirmation that it wiped itself; the
// device is then revoked.
func (s *Server) wipeConfirm(ctx context.Context, c *session, req *anomv1.WipeConfirm) (*anomv1.Ok, error) {
	e, err := s.st.Get(ctx, bucketWipes, c.devHex)
	if err != nil {
		return nil, storeError(err, "pending wipe")
	}
	cmd, err := identity.DecodeWipeCommand(e.Value)
	if err != nil {
		return nil, fmt.Errorf("stored wipe command: %w: %w", store.ErrCorrupt, err)
	}
	conf := &identity.WipeConfirmation{Command: req.GetCommand(), Signature: req.GetSignature()}
	if err := conf.Verify(c.cert, cmd); err != nil {
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "wipe confirmation")
	}
	if _, err := s.st.Put(ctx, bucketWiped, c.devHex, []byte("{}")); err != nil {
		return nil, fmt.Errorf("recording wipe confirmation: %w", err)
	}
	if err := s.st.Delete(ctx, bucketWipes, c.devHex, e.Revision); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("recording wipe confirmation: %w", err)
	}
	s.log.Info("wipe confirmed", "device", c.devHex)
	if _, err := s.revoke(ctx, s.signRevocation(c.device, s.now()), c); err != nil {
		return nil, err
	}
	c.closeAfterAnswer = true
	return &anomv1.Ok{}, nil
}

// ErrStaleDistributorCertificate is returned by AddDistributor for a
// certificate whose serial is not above the one in force: a replayed or
// older certificate cannot reset a distributor's quota.
var ErrStaleDistributorCertificate = errors.New("server: distributor certificate not newer than the one in force")

// AddDistributor records a root-signed distributor certificate. The rule
// for a distributor already known: its certificate is replaced only by one
// with a strictly higher serial (anom admin sets the serial to the time of
// issue in nanoseconds), else ErrStaleDistributorCertificate; its count of
// issued codes is kept across certificates, so a new certificate changes
// the quota, never what was issued under the old one.
func (s *Server) AddDistributor(ctx context.Context, c *identity.DistributorCertificate) error {
	_, err := s.addDistributor(ctx, c)
	return err
}

func (s *Server) addDistributor(ctx context.Context, c *identity.DistributorCertificate) (adminapi.DistributorResult, error) {
	res := adminapi.DistributorResult{Name: c.Name, Quota: c.Quota, Serial: c.Serial}
	if err := c.Verify(s.rootPub); err != nil {
		return res, wrapErr(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, err, "distributor certificate")
	}
	for {
		e, err := s.st.Get(ctx, bucketDistributors, c.Name)
		if errors.Is(err, store.ErrNotFound) {
			_, err = s.st.Create(ctx, bucketDistributors, c.Name, encodeRecord(distributorRecord{Cert: c.Encode()}))
			if errors.Is(err, store.ErrExists) {
				continue
			}
			if err != nil {
				return res, fmt.Errorf("adding distributor %q: %w", c.Name, err)
			}
			s.log.Info("distributor added", "distributor", c.Name, "quota", c.Quota, "serial", c.Serial)
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("adding distributor %q: %w", c.Name, err)
		}
		var rec distributorRecord
		if err := decodeRecord(e, &rec); err != nil {
			return res, err
		}
		old, err := identity.DecodeDistributorCertificate(rec.Cert)
		if err != nil {
			return res, fmt.Errorf("adding distributor %q: stored certificate: %w: %w", c.Name, store.ErrCorrupt, err)
		}
		res.Issued = rec.Issued
		if c.Serial <= old.Serial {
			return res, wrapErr(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, ErrStaleDistributorCertificate,
				"distributor %q: certificate serial %d, the one in force has %d (quota %d, %d issued)", c.Name, c.Serial, old.Serial, old.Quota, rec.Issued)
		}
		rec.Cert = c.Encode()
		_, err = s.st.Update(ctx, bucketDistributors, c.Name, encodeRecord(rec), e.Revision)
		if errors.Is(err, store.ErrRevisionMismatch) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("adding distributor %q: %w", c.Name, err)
		}
		s.log.Info("distributor certificate replaced", "distributor", c.Name, "quota", c.Quota, "serial", c.Serial, "issued", rec.Issued)
		return res, nil
	}
}

// ErrQuota is returned by ImportCodes when a batch exceeds the
// distributor's quota.
var ErrQuota = errors.New("server: distributor quota exceeded")

// ImportCodes records a distributor's signed batch of activation codes,
// within its quota. Codes imported before add nothing; codes consumed by
// an activation stay consumed (a tombstone in bucketUsedCodes), so
// importing a batch again never makes them valid again.
func (s *Server) ImportCodes(ctx context.Context, b *identity.CodeBatch) error {
	_, err := s.importCodes(ctx, b)
	return err
}

func (s *Server) importCodes(ctx context.Context, b *identity.CodeBatch) (adminapi.CodesResult, error) {
	res := adminapi.CodesResult{Distributor: b.Distributor}
	for attempt := 0; ; attempt++ {
		r, err := s.importCodesOnce(ctx, b)
		var te *store.TxnError
		if attempt < 8 && (errors.As(err, &te) || errors.Is(err, store.ErrRevisionMismatch)) {
			continue // a concurrent import or activation: look again
		}
		if err != nil {
			return res, err
		}
		s.log.Info("activation codes imported", "distributor", b.Distributor, "new", r.Imported, "already_imported", r.AlreadyImported, "already_used", r.AlreadyUsed, "months", b.Months)
		return r, nil
	}
}

// importCodesOnce sorts the batch's codes into new, imported before and
// used, checks the quota for the new ones, then creates them in
// transactions that each also update the distributor's count (at the
// revision read) and require that no tombstone exists.
func (s *Server) importCodesOnce(ctx context.Context, b *identity.CodeBatch) (adminapi.CodesResult, error) {
	res := adminapi.CodesResult{Distributor: b.Distributor}
	rec, rev, err := s.distributor(ctx, b.Distributor)
	if err != nil {
		return res, storeError(err, "distributor "+b.Distributor)
	}
	cert, err := identity.DecodeDistributorCertificate(rec.Cert)
	if err != nil {
		return res, fmt.Errorf("importing codes: %w: %w", store.ErrCorrupt, err)
	}
	res.Quota = cert.Quota
	if err := b.Verify(s.rootPub, cert); err != nil {
		return res, wrapErr(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, err, "code batch of %q", b.Distributor)
	}
	var fresh []string
	for _, h := range b.Hashes {
		key := hex.EncodeToString(h[:])
		switch used, err := s.codeKnown(ctx, key); {
		case err != nil:
			return res, fmt.Errorf("importing codes: %w", err)
		case used == codeImported:
			res.AlreadyImported++
		case used == codeUsed:
			res.AlreadyUsed++
		default:
			fresh = append(fresh, key)
		}
	}
	if uint64(rec.Issued)+uint64(len(fresh)) > uint64(cert.Quota) {
		return res, wrapErr(anomv1.ErrorCode_ERROR_CODE_LIMIT_EXCEEDED, ErrQuota, "distributor %q has issued %d of %d codes; %d more exceed the quota", b.Distributor, rec.Issued, cert.Quota, len(fresh))
	}
	value := encodeRecord(codeRecord{Distributor: b.Distributor, Months: int(b.Months), Expires: b.Expires.Unix()})
	const perTxn = (store.MaxTxnOps - 1) / 2
	for i := 0; i < len(fresh); i += perTxn {
		chunk := fresh[i:min(i+perTxn, len(fresh))]
		rec.Issued += uint32(len(chunk))
		ops := []store.Op{store.UpdateOp(bucketDistributors, b.Distributor, encodeRecord(rec), rev)}
		for _, key := range chunk {
			ops = append(ops, store.CreateOp(bucketCodes, key, value), store.CheckOp(bucketUsedCodes, key, 0))
		}
		revs, err := s.st.Txn(ctx, ops...)
		if err != nil {
			return res, fmt.Errorf("importing codes: %w", err)
		}
		rev = revs[0]
		res.Imported += len(chunk)
	}
	res.Issued = rec.Issued
	return res, nil
}

const (
	codeNew = iota
	codeImported
	codeUsed
)

// codeKnown says whether a code (hash hex) is imported and unused, used,
// or new.
func (s *Server) codeKnown(ctx context.Context, key string) (int, error) {
	if _, err := s.st.Get(ctx, bucketCodes, key); err == nil {
		return codeImported, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	if _, err := s.st.Get(ctx, bucketUsedCodes, key); err == nil {
		return codeUsed, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	return codeNew, nil
}

func (s *Server) distributor(ctx context.Context, name string) (distributorRecord, uint64, error) {
	var rec distributorRecord
	e, err := s.st.Get(ctx, bucketDistributors, name)
	if err != nil {
		return rec, 0, fmt.Errorf("loading distributor %q: %w", name, err)
	}
	return rec, e.Revision, decodeRecord(e, &rec)
}
