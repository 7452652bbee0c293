package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"anom/identity"
	"anom/internal/store"
	anomv1 "anom/proto/anom/v1"
)

const challengeSize = 32

// hello answers with a fresh challenge.
func (c *session) hello(h *anomv1.Hello) (*anomv1.Frame, error) {
	if h.GetVersion() != uint32(anomv1.ProtocolVersion_PROTOCOL_VERSION_1) {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_UNSUPPORTED_VERSION, "version %d; this server speaks %d", h.GetVersion(), anomv1.ProtocolVersion_PROTOCOL_VERSION_1)
	}
	if c.authed.Load() {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_ALREADY_AUTHENTICATED, "already authenticated")
	}
	ch := make([]byte, challengeSize)
	if _, err := io.ReadFull(c.s.rand, ch); err != nil {
		return nil, fmt.Errorf("drawing challenge: %w", err)
	}
	c.challenge = ch
	return &anomv1.Frame{Body: &anomv1.Frame_Challenge{Challenge: &anomv1.Challenge{
		Version: uint32(anomv1.ProtocolVersion_PROTOCOL_VERSION_1), Nonce: ch, ServerName: c.s.name, ServerTimeMs: c.s.now().UnixMilli(),
	}}}, nil
}

// takeChallenge returns the outstanding challenge; it is good for one
// attempt only.
func (c *session) takeChallenge() ([]byte, error) {
	if c.authed.Load() {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_ALREADY_AUTHENTICATED, "already authenticated")
	}
	ch := c.challenge
	c.challenge = nil
	if ch == nil {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "send hello first")
	}
	return ch, nil
}

// auth authenticates an activated device.
func (c *session) auth(ctx context.Context, a *anomv1.Auth) (*anomv1.Frame, error) {
	ch, err := c.takeChallenge()
	if err != nil {
		return nil, err
	}
	if len(a.GetCertificate()) > identity.MaxDeviceCertificateSize {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_TOO_LARGE, "certificate of %d bytes", len(a.GetCertificate()))
	}
	cert, err := identity.DecodeDeviceCertificate(a.GetCertificate())
	if err != nil {
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED, err, "certificate")
	}
	if err := cert.Verify(c.s.rootPub, c.s.now()); err != nil {
		return nil, certError(err)
	}
	if err := cert.VerifyAuthResponse(c.s.name, ch, a.GetSignature()); err != nil {
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED, err, "signature")
	}
	// The store, not this server's memory, says who is revoked: another
	// server may have revoked the device a moment ago.
	if revoked, err := c.s.revokedInStore(ctx, cert.DeviceID); err != nil {
		return nil, err
	} else if revoked {
		return nil, refuseRevoked(cert.DeviceID)
	}
	// The certificate must be the one the server issued for this device
	// (a re-issued certificate replaces the old one).
	rec, _, err := c.s.deviceRecord(ctx, cert.DeviceID.String())
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, errorf(anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED, "unknown device %s", cert.DeviceID)
		}
		return nil, err
	}
	if string(rec.Cert) != string(cert.Encode()) {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED, "certificate of %s superseded", cert.DeviceID)
	}
	if err := c.authenticate(ctx, cert); err != nil {
		return nil, err
	}
	return &anomv1.Frame{Body: &anomv1.Frame_Authenticated{Authenticated: &anomv1.Authenticated{
		Certificate: rec.Cert, LogIndex: rec.LogIndex, ServerTimeMs: c.s.now().UnixMilli(),
	}}}, nil
}

// authenticate binds the session to a device and delivers a pending wipe.
func (c *session) authenticate(ctx context.Context, cert *identity.DeviceCertificate) error {
	cert.Signer = c.s.signers.intern(cert.Signer)
	c.device, c.devHex, c.cert = cert.DeviceID, cert.DeviceID.String(), cert
	if !c.s.hub.add(c, c.s.limits.MaxConnsPerDevice) {
		return errorf(anomv1.ErrorCode_ERROR_CODE_LIMIT_EXCEEDED, "device has %d sessions already", c.s.limits.MaxConnsPerDevice)
	}
	c.authed.Store(true)
	c.releasePreauth()
	c.s.metrics.authed.Inc()
	// A revocation that raced with this authentication still cuts it.
	if c.s.isRevoked(cert.DeviceID) {
		go c.kick(anomv1.ErrorCode_ERROR_CODE_REVOKED, "device revoked")
	}
	if e, err := c.s.st.Get(ctx, bucketWipes, c.devHex); err == nil {
		if b, err := marshalPush(&anomv1.Frame{Body: &anomv1.Frame_PushWipe{PushWipe: &anomv1.Wipe{Command: e.Value}}}); err == nil {
			c.push(b)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("checking pending wipe: %w", err)
	}
	return nil
}

// checkStillValid refuses requests once the certificate expired or the
// device was revoked, even before the session is cut.
func (c *session) checkStillValid() error {
	if c.s.isRevoked(c.device) {
		return errorf(anomv1.ErrorCode_ERROR_CODE_REVOKED, "device revoked")
	}
	if !c.s.now().Before(c.cert.NotAfter) {
		return errorf(anomv1.ErrorCode_ERROR_CODE_EXPIRED, "certificate expired")
	}
	return nil
}

// activate makes a new device from an activation code. A source address
// that has failed too often is refused unseen (preauth.go); a failure is
// counted against its source and logged (without the code).
func (c *session) activate(ctx context.Context, a *anomv1.Activate) (*anomv1.Frame, error) {
	ch, err := c.takeChallenge()
	if err != nil {
		return nil, err
	}
	wait, first, by := c.s.activations.checkBy(c.src, c.s.now())
	if wait > 0 {
		c.s.metrics.activationsLimited.Inc()
		if first {
			c.s.log.Warn("activations rate-limited", "source", sourceString(c.src), "limited_by", by.String(), "retry_after", wait.Round(time.Millisecond))
		}
		return nil, &Error{Code: anomv1.ErrorCode_ERROR_CODE_RATE_LIMITED, Message: "too many failed activations from this address or its network", RetryAfterMs: uint32(min(wait.Milliseconds()+1, 1<<31))}
	}
	f, err := c.tryActivate(ctx, ch, a)
	if err == nil {
		return f, nil
	}
	var e *Error
	if !errors.As(err, &e) || e.Code == anomv1.ErrorCode_ERROR_CODE_INTERNAL || e.Code == anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE {
		return nil, err // the server's failure, not the client's
	}
	c.s.activations.fail(c.src, c.s.now())
	c.s.metrics.activationFailures.WithLabelValues(e.Code.String()).Inc()
	name := a.GetUsername()
	if len(name) > identity.MaxUsernameLen {
		name = name[:identity.MaxUsernameLen] + "…"
	}
	// The message is not logged: a code that failed to parse may be
	// echoed in it.
	c.s.log.Warn("activation failed", "source", sourceString(c.src), "code", e.Code.String(), "username", name)
	return nil, err
}

// tryActivate is one activation attempt, answering challenge ch.
func (c *session) tryActivate(ctx context.Context, ch []byte, a *anomv1.Activate) (*anomv1.Frame, error) {
	name, err := identity.CanonicalUsername(a.GetUsername())
	if err != nil {
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_USERNAME, err, "activation")
	}
	if len(a.GetSignatureKey()) != ed25519.PublicKeySize {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "signature key of %d bytes", len(a.GetSignatureKey()))
	}
	proof := &identity.DeviceCertificate{Key: ed25519.PublicKey(a.GetSignatureKey())}
	if err := proof.VerifyAuthResponse(c.s.name, ch, a.GetSignature()); err != nil {
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED, err, "proof of possession")
	}
	var approval *identity.DeviceApproval
	if raw := a.GetApproval(); len(raw) > 0 {
		if len(raw) > identity.MaxDeviceApprovalSize {
			return nil, errorf(anomv1.ErrorCode_ERROR_CODE_TOO_LARGE, "approval of %d bytes", len(raw))
		}
		if approval, err = identity.DecodeDeviceApproval(raw); err != nil {
			return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "approval")
		}
	}
	code, err := identity.ParseActivationCode(a.GetCode())
	if err != nil {
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_BAD_CODE, err, "activation")
	}
	cert, idx, err := c.s.activate(ctx, code, name, proof.Key, approval)
	if err != nil {
		return nil, err
	}
	if err := c.authenticate(ctx, cert); err != nil {
		return nil, err
	}
	return &anomv1.Frame{Body: &anomv1.Frame_Authenticated{Authenticated: &anomv1.Authenticated{
		Certificate: cert.Encode(), LogIndex: idx, ServerTimeMs: c.s.now().UnixMilli(),
	}}}, nil
}

// Activate consumes an activation code atomically and issues a device
// certificate for username and key, valid for the code's months, then
// appends it to the transparency log. It returns the certificate and its
// log index. A username that exists takes a further device only with an
// approval of key submitted before (ApproveDevice); see ActivateApproved.
func (s *Server) Activate(ctx context.Context, code identity.ActivationCode, username string, key ed25519.PublicKey) (*identity.DeviceCertificate, uint64, error) {
	return s.activate(ctx, code, username, key, nil)
}

// ActivateApproved is Activate for a further device of an existing user
// with its approval (by one of the user's devices or the admin).
func (s *Server) ActivateApproved(ctx context.Context, code identity.ActivationCode, username string, key ed25519.PublicKey, approval *identity.DeviceApproval) (*identity.DeviceCertificate, uint64, error) {
	if approval == nil {
		return nil, 0, errors.New("activating: no approval")
	}
	return s.activate(ctx, code, username, key, approval)
}

func (s *Server) activate(ctx context.Context, code identity.ActivationCode, username string, key ed25519.PublicKey, approval *identity.DeviceApproval) (*identity.DeviceCertificate, uint64, error) {
	// The code first: without a valid one, the answer is the same
	// whatever the username (no enumeration of users).
	h := code.Hash()
	codeKey := hex.EncodeToString(h[:])
	e, err := s.st.Get(ctx, bucketCodes, codeKey)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, 0, errorf(anomv1.ErrorCode_ERROR_CODE_BAD_CODE, "unknown or used activation code")
		}
		return nil, 0, fmt.Errorf("looking up activation code: %w", err)
	}
	var cr codeRecord
	if err := decodeRecord(e, &cr); err != nil {
		return nil, 0, err
	}
	now := s.now().Truncate(time.Second)
	if !now.Before(time.Unix(cr.Expires, 0)) {
		return nil, 0, errorf(anomv1.ErrorCode_ERROR_CODE_BAD_CODE, "activation code expired")
	}
	// A further device of an existing user needs an approval.
	var user userRecord
	ue, err := s.st.Get(ctx, bucketUsers, username)
	exists := err == nil
	switch {
	case errors.Is(err, store.ErrNotFound):
		approval = nil // a new user needs none
	case err != nil:
		return nil, 0, fmt.Errorf("looking up user %q: %w", username, err)
	default:
		if err := decodeRecord(ue, &user); err != nil {
			return nil, 0, err
		}
		if approval == nil {
			if approval, err = s.storedApproval(ctx, key); err != nil {
				return nil, 0, err
			}
		}
		if approval == nil {
			return nil, 0, errorf(anomv1.ErrorCode_ERROR_CODE_USERNAME_TAKEN, "username %q is taken; a further device of it needs an approval", username)
		}
		if err := s.checkApproval(ctx, approval, username, key); err != nil {
			return nil, 0, err
		}
	}
	id, err := identity.NewDeviceID(s.rand)
	if err != nil {
		return nil, 0, err
	}
	var serial [8]byte
	if _, err := io.ReadFull(s.rand, serial[:]); err != nil {
		return nil, 0, fmt.Errorf("drawing serial: %w", err)
	}
	cert := &identity.DeviceCertificate{
		DeviceID: id, Username: username, Key: key,
		NotBefore: now.Add(-time.Minute), NotAfter: now.AddDate(0, cr.Months, 0),
		Serial: binary.BigEndian.Uint64(serial[:]),
	}
	if nb := s.dir.Certificate().NotBefore; cert.NotBefore.Before(nb) {
		cert.NotBefore = nb // inside the directory key's validity
	}
	if err := s.dir.SignDeviceCertificate(cert); err != nil {
		return nil, 0, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "certificate")
	}
	devHex := id.String()
	keyHex := hex.EncodeToString(key)
	devRec := deviceRecord{Cert: cert.Encode()}
	userOp := store.CreateOp(bucketUsers, username, encodeRecord(userRecord{Devices: []string{devHex}}))
	if exists {
		devRec.Approval = approval.Encode()
		user.Devices = append(user.Devices, devHex)
		userOp = store.UpdateOp(bucketUsers, username, encodeRecord(user), ue.Revision)
	}
	ops := []store.Op{
		store.DeleteOp(bucketCodes, codeKey, e.Revision),
		userOp,
		store.CreateOp(bucketDevices, devHex, encodeRecord(devRec)),
		store.CreateOp(bucketPending, devHex, []byte("{}")),
		store.CreateOp(bucketKeys, keyHex, []byte(devHex)),
		// The tombstone: a batch imported again cannot revive the code.
		store.PutOp(bucketUsedCodes, codeKey, encodeRecord(usedCodeRecord{Device: devHex, At: now.Unix()})),
	}
	if exists {
		// The user's other devices are told once the new device has
		// key packages they can add it with.
		ops = append(ops, store.DeleteOp(bucketApprovals, keyHex, 0), store.PutOp(bucketAnnounce, devHex, []byte("{}")))
	}
	if _, err = s.st.Txn(ctx, ops...); err != nil {
		var te *store.TxnError
		if errors.As(err, &te) {
			switch te.Index {
			case 0:
				return nil, 0, errorf(anomv1.ErrorCode_ERROR_CODE_BAD_CODE, "activation code already used")
			case 1:
				if exists {
					return nil, 0, errorf(anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "user %q changed meanwhile; retry", username)
				}
				return nil, 0, errorf(anomv1.ErrorCode_ERROR_CODE_USERNAME_TAKEN, "username %q is taken", username)
			case 4:
				return nil, 0, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "signature key already used by a device")
			}
		}
		return nil, 0, fmt.Errorf("recording activation: %w", err)
	}
	idx, err := s.logCertificate(ctx, cert)
	if err != nil {
		return nil, 0, err
	}
	if exists {
		s.log.Info("further device activated", "device", devHex, "username", username, "approved_by", approval.Kind.String(), "approver", approval.Approver, "distributor", cr.Distributor, "until", cert.NotAfter)
	} else {
		s.log.Info("device activated", "device", devHex, "username", username, "distributor", cr.Distributor, "until", cert.NotAfter)
	}
	return cert, idx, nil
}

// signerSet keeps one copy of each directory key certificate met in the
// device certificates of sessions, so that a session's certificate
// points to it rather than to a copy of its own (about 240 bytes, with
// its name, key and signature, in every authenticated session). The
// certificates are the root's, of the server's directory keys: a
// network has a few (one per rotation); the set keeps at most
// maxSigners, and a certificate beyond those keeps its own copy. The
// zero value is empty.
type signerSet struct {
	mu    sync.Mutex
	certs []*identity.OnlineKeyCertificate
	enc   [][]byte // certs[i].Encode()
}

const maxSigners = 16

// intern returns the set's copy of a certificate equal to c, adding c if
// there is none (and room); nil stays nil.
func (s *signerSet) intern(c *identity.OnlineKeyCertificate) *identity.OnlineKeyCertificate {
	if c == nil {
		return nil
	}
	e := c.Encode()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range s.enc {
		if bytes.Equal(k, e) {
			return s.certs[i]
		}
	}
	if len(s.certs) < maxSigners {
		s.certs, s.enc = append(s.certs, c), append(s.enc, e)
	}
	return c
}
