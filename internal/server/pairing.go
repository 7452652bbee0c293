package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"anom/identity"
	"anom/internal/store"
	anomv1 "anom/proto/anom/v1"
)

// Pairing requests published under a short code. A new device that is not
// activated yet publishes its identity.PairingRequest before
// authenticating (PublishPairing: once per connection, each publication
// counted against its source like a failed activation); the server keeps
// it in bucketPairings under the request's short code for pairingTTL,
// one request per code. A device of the same user fetches it by the code
// (FetchPairing), checks it against the code, shows its fingerprint and
// approves it as before (ApproveDevice). Fetches of codes that are
// unknown, expired or another user's are rate-limited per device
// (Limits.PairingMissBurst); another user's code answers as an unknown
// one, so a fetch tells nothing about other users' pairings.

const (
	// bucketPairings: short code (grouped) -> pairingRecord, until
	// expired and swept.
	bucketPairings = "pairings"
	// pairingTTL is how long a published request may be fetched.
	pairingTTL = 10 * time.Minute
)

// pairingRecord is a published pairing request.
type pairingRecord struct {
	Request   []byte `json:"request"` // identity.PairingRequest encoding
	ExpiresMs int64  `json:"expires_ms"`
}

func (r *pairingRecord) expired(now time.Time) bool { return now.UnixMilli() >= r.ExpiresMs }

// publishPairing handles PublishPairing on a session that has not
// authenticated.
func (c *session) publishPairing(ctx context.Context, p *anomv1.PublishPairing) (*anomv1.Frame, error) {
	if !c.preauthPairing.CompareAndSwap(false, true) {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_LIMIT_EXCEEDED, "one pairing request per connection")
	}
	now := c.s.now()
	if wait, first, by := c.s.activations.checkBy(c.src, now); wait > 0 {
		c.s.metrics.activationsLimited.Inc()
		if first {
			c.s.log.Warn("pairing publications rate-limited", "source", sourceString(c.src), "limited_by", by.String(), "retry_after", wait.Round(time.Millisecond))
		}
		return nil, &Error{Code: anomv1.ErrorCode_ERROR_CODE_RATE_LIMITED, Message: "too many pairing requests or failed activations from this address or its network", RetryAfterMs: uint32(min(wait.Milliseconds()+1, 1<<31))}
	}
	// Every publication costs: it holds a record for ten minutes.
	c.s.activations.fail(c.src, now)
	r, err := c.s.PublishPairing(ctx, p.GetRequest())
	if err != nil {
		return nil, err
	}
	return &anomv1.Frame{Body: &anomv1.Frame_PairingPublished{PairingPublished: r}}, nil
}

// PublishPairing stores an encoded pairing request under its short code
// for ten minutes; a code already held by an unexpired request is
// refused with EXISTS.
func (s *Server) PublishPairing(ctx context.Context, raw []byte) (*anomv1.PairingPublished, error) {
	if len(raw) > identity.MaxPairingRequestSize {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_TOO_LARGE, "pairing request of %d bytes", len(raw))
	}
	req, err := identity.DecodePairingRequest(raw)
	if err != nil {
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "pairing request")
	}
	code := req.ShortCode()
	now := s.now()
	rec := &pairingRecord{Request: req.Encode(), ExpiresMs: now.Add(pairingTTL).UnixMilli()}
	_, err = s.st.Create(ctx, bucketPairings, code, encodeRecord(rec))
	if errors.Is(err, store.ErrExists) {
		// Only an expired request (not swept yet) gives its code up.
		e, gerr := s.st.Get(ctx, bucketPairings, code)
		if gerr != nil {
			return nil, storeError(gerr, "pairing code "+code)
		}
		var old pairingRecord
		if derr := decodeRecord(e, &old); derr == nil && !old.expired(now) {
			return nil, errorf(anomv1.ErrorCode_ERROR_CODE_EXISTS, "pairing code %s is in use", code)
		}
		_, err = s.st.Update(ctx, bucketPairings, code, encodeRecord(rec), e.Revision)
		if errors.Is(err, store.ErrRevisionMismatch) || errors.Is(err, store.ErrNotFound) {
			return nil, errorf(anomv1.ErrorCode_ERROR_CODE_EXISTS, "pairing code %s is in use", code)
		}
	}
	if err != nil {
		return nil, storeError(err, "storing pairing request")
	}
	s.log.Info("pairing request published", "username", req.Username)
	return &anomv1.PairingPublished{Code: code, ExpiresAtMs: uint64(rec.ExpiresMs)}, nil
}

// fetchPairing handles FetchPairing: the request under a code, for a
// device of the same user.
func (s *Server) fetchPairing(ctx context.Context, c *session, f *anomv1.FetchPairing) (*anomv1.Pairing, error) {
	now := s.now()
	if c.limiter.pairingMisses.TokensAt(now) < 1 {
		r := c.limiter.pairingMisses.ReserveN(now, 1)
		wait := r.DelayFrom(now)
		r.CancelAt(now)
		return nil, &Error{Code: anomv1.ErrorCode_ERROR_CODE_RATE_LIMITED, Message: "too many unknown pairing codes", RetryAfterMs: uint32(min(wait.Milliseconds()+1, 1<<31))}
	}
	req, exp, err := s.LookupPairing(ctx, f.GetCode(), c.cert.Username)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Code != anomv1.ErrorCode_ERROR_CODE_INTERNAL && e.Code != anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE {
			c.limiter.pairingMisses.ReserveN(now, 1) // into debt if need be
			s.log.Warn("pairing code not found", "device", c.devHex, "code", e.Code.String())
		}
		return nil, err
	}
	return &anomv1.Pairing{Request: req.Encode(), ExpiresAtMs: uint64(exp.UnixMilli())}, nil
}

// LookupPairing returns the pairing request published under code and
// when it expires. With username != "" a request of another user is
// answered as an unknown code (the admin passes "").
func (s *Server) LookupPairing(ctx context.Context, code, username string) (*identity.PairingRequest, time.Time, error) {
	if len(code) > 64 {
		return nil, time.Time{}, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "pairing code of %d bytes", len(code))
	}
	canon, err := identity.ParseShortCode(code)
	if err != nil {
		return nil, time.Time{}, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "pairing code")
	}
	notFound := errorf(anomv1.ErrorCode_ERROR_CODE_NOT_FOUND, "no pairing request under code %s: check the code the new device shows", canon)
	e, err := s.st.Get(ctx, bucketPairings, canon)
	if errors.Is(err, store.ErrNotFound) {
		return nil, time.Time{}, notFound
	}
	if err != nil {
		return nil, time.Time{}, storeError(err, "pairing code "+canon)
	}
	var rec pairingRecord
	if err := decodeRecord(e, &rec); err != nil {
		return nil, time.Time{}, storeError(err, "pairing code "+canon)
	}
	req, err := identity.DecodePairingRequest(rec.Request)
	if err != nil {
		return nil, time.Time{}, storeError(fmt.Errorf("%w: %w", store.ErrCorrupt, err), "pairing code "+canon)
	}
	if username != "" && req.Username != username {
		return nil, time.Time{}, notFound
	}
	if rec.expired(s.now()) {
		return nil, time.Time{}, errorf(anomv1.ErrorCode_ERROR_CODE_EXPIRED, "pairing code %s has expired (codes last %v): ask the new device for a new one", canon, pairingTTL)
	}
	return req, time.UnixMilli(rec.ExpiresMs), nil
}

// sweepPairings deletes the expired pairing requests.
func (s *Server) sweepPairings(ctx context.Context) error {
	now := s.now()
	after := ""
	for {
		page, more, err := s.st.List(ctx, bucketPairings, store.ListOptions{After: after, Limit: 500})
		if err != nil {
			return fmt.Errorf("sweeping pairing requests: %w", err)
		}
		for _, e := range page {
			after = e.Key
			var rec pairingRecord
			if err := decodeRecord(e, &rec); err == nil && !rec.expired(now) {
				continue
			}
			if err := s.st.Delete(ctx, bucketPairings, e.Key, e.Revision); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrRevisionMismatch) {
				return fmt.Errorf("sweeping pairing requests: %w", err)
			}
		}
		if !more {
			return nil
		}
	}
}
