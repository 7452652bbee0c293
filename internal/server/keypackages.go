package server

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"anom/identity"
	"anom/internal/store"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// validator is the MLS credential check of the server: device
// certificates of this network, valid now and not revoked.
func (s *Server) validator() mls.CredentialValidator {
	return identity.NewCredentialValidator(identity.ValidatorConfig{Root: s.rootPub, Now: s.now, Revoked: s.isRevoked})
}

// parseKeyPackage decodes and validates a key package (an MLSMessage) and
// returns it with the device certificate in its credential.
func (s *Server) parseKeyPackage(b []byte) (*mls.KeyPackage, *identity.DeviceCertificate, error) {
	if len(b) > s.limits.MaxKeyPackageSize {
		return nil, nil, errorf(anomv1.ErrorCode_ERROR_CODE_TOO_LARGE, "key package of %d bytes, limit %d", len(b), s.limits.MaxKeyPackageSize)
	}
	m, err := mls.DecodeMLSMessage(b)
	if err != nil {
		return nil, nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, err, "key package")
	}
	if m.WireFormat != mls.WireKeyPackage || m.KeyPackage == nil {
		return nil, nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, "wire format %d is not a key package", m.WireFormat)
	}
	kp, err := s.checkKeyPackage(m.KeyPackage)
	if err != nil {
		return nil, nil, err
	}
	return m.KeyPackage, kp, nil
}

// checkKeyPackage validates a decoded key package and returns its
// certificate.
func (s *Server) checkKeyPackage(kp *mls.KeyPackage) (*identity.DeviceCertificate, error) {
	suite, err := mls.Suite(kp.CipherSuite)
	if err != nil {
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, err, "key package")
	}
	if err := mls.ValidateKeyPackage(suite, kp, s.now(), s.validator()); err != nil {
		if errors.Is(err, identity.ErrRevoked) {
			return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_REVOKED, err, "key package")
		}
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, err, "key package")
	}
	cert, err := identity.CertificateFromCredential(&kp.LeafNode.Credential)
	if err != nil {
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_MESSAGE, err, "key package")
	}
	return cert, nil
}

func (s *Server) uploadKeyPackages(ctx context.Context, c *session, req *anomv1.UploadKeyPackages) (*anomv1.KeyPackagesStored, error) {
	if len(req.GetKeyPackages()) > s.limits.MaxKeyPackages {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_LIMIT_EXCEEDED, "%d key packages, limit %d", len(req.GetKeyPackages()), s.limits.MaxKeyPackages)
	}
	var ops []store.Op
	seen := map[string]bool{}
	for i, b := range req.GetKeyPackages() {
		kp, cert, err := s.parseKeyPackage(b)
		if err != nil {
			return nil, fmt.Errorf("key package %d: %w", i, err)
		}
		if cert.DeviceID != c.device {
			return nil, errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "key package %d is for device %s", i, cert.DeviceID)
		}
		suite, _ := mls.Suite(kp.CipherSuite)
		key := c.devHex + "." + hex.EncodeToString(mls.KeyPackageRef(suite, kp))
		if seen[key] {
			continue
		}
		seen[key] = true
		ops = append(ops, store.PutOp(bucketKeyPackages, key, b))
	}
	if lr := req.GetLastResort(); len(lr) > 0 {
		_, cert, err := s.parseKeyPackage(lr)
		if err != nil {
			return nil, fmt.Errorf("last-resort key package: %w", err)
		}
		if cert.DeviceID != c.device {
			return nil, errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "last-resort key package is for device %s", cert.DeviceID)
		}
		ops = append(ops, store.PutOp(bucketLastResort, c.devHex, lr))
	}
	have, err := s.countKeyPackages(ctx, c.devHex)
	if err != nil {
		return nil, err
	}
	if have+len(seen) > s.limits.MaxKeyPackages {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_LIMIT_EXCEEDED, "device has %d key packages; %d more exceed the limit of %d", have, len(seen), s.limits.MaxKeyPackages)
	}
	for len(ops) > 0 {
		n := min(len(ops), store.MaxTxnOps)
		if _, err := s.st.Txn(ctx, ops[:n]...); err != nil {
			return nil, fmt.Errorf("storing key packages: %w", err)
		}
		ops = ops[n:]
	}
	have, err = s.countKeyPackages(ctx, c.devHex)
	if err != nil {
		return nil, err
	}
	if err := s.announcePending(ctx, c); err != nil {
		return nil, err
	}
	return &anomv1.KeyPackagesStored{Available: uint32(have)}, nil
}

func (s *Server) countKeyPackages(ctx context.Context, devHex string) (int, error) {
	page, _, err := s.st.List(ctx, bucketKeyPackages, store.ListOptions{Prefix: devHex + ".", Limit: s.limits.MaxKeyPackages + 1})
	if err != nil {
		return 0, fmt.Errorf("counting key packages: %w", err)
	}
	return len(page), nil
}

func (s *Server) claimKeyPackage(ctx context.Context, c *session, req *anomv1.ClaimKeyPackage) (*anomv1.KeyPackage, error) {
	if ok, wait := allow(c.limiter.claims, s.now()); !ok {
		return nil, &Error{Code: anomv1.ErrorCode_ERROR_CODE_RATE_LIMITED, Message: "too many key package claims", RetryAfterMs: uint32(wait.Milliseconds()) + 1}
	}
	id, err := identity.DeviceIDFromBytes(req.GetDeviceId())
	if err != nil {
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "device id")
	}
	if s.isRevoked(id) {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_REVOKED, "device %s is revoked", id)
	}
	devHex := id.String()
	e, err := store.ClaimFirst(ctx, s.st, bucketKeyPackages, devHex+".")
	if err == nil {
		return &anomv1.KeyPackage{KeyPackage: e.Value}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("claiming key package: %w", err)
	}
	e, err = s.st.Get(ctx, bucketLastResort, devHex)
	if err != nil {
		return nil, storeError(err, "key package of "+devHex)
	}
	return &anomv1.KeyPackage{KeyPackage: e.Value, LastResort: true}, nil
}
