package server

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"anom/identity"
	"anom/internal/adminapi"
	"anom/internal/store"
	anomv1 "anom/proto/anom/v1"
)

// The admin API (package adminapi): POST /v1/admin on the server's TLS
// listener. It shares the listener rather than taking a port of its own:
// a request is authenticated by its signature (an admin key the offline
// root certified), not by where it comes from, so a separate, firewalled
// port would add no check, and in a cluster any server behind the
// balancer can answer, since all it reads and writes is in the store.
//
// A request is decoded and checked (certificate, signature, issued-at
// window) before anything is written; then its certificate is checked
// against the newest one seen of the same administrator name
// (checkAdminKey), its nonce is created in the store, where a second
// request with the same issued-at and nonce fails (ErrReplay), and only
// then is the operation applied. Every authenticated request, applied or
// refused, is appended to the store's admin log.

// adminLogEntry is one entry of the admin log.
type adminLogEntry struct {
	Time    time.Time `json:"time"`
	Admin   string    `json:"admin"`  // the admin key's certificate name
	Serial  uint64    `json:"serial"` // and serial
	Op      string    `json:"op"`
	Code    string    `json:"code"`
	Message string    `json:"message"`
	Reason  string    `json:"reason,omitempty"`
}

// Before its signature is checked an admin request is anyone's: at most
// adminConcurrency are read or applied at once (a further one gets HTTP 503
// at once), and each body must arrive within adminReadTimeout, so slow or
// many unauthenticated senders cannot hold the server's goroutines and
// buffers.
const adminConcurrency = 16

var adminReadTimeout = 10 * time.Second // a variable for tests

// serveAdmin answers POST /v1/admin.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	select {
	case s.adminSlots <- struct{}{}:
		defer func() { <-s.adminSlots }()
	default:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many admin requests at once", http.StatusServiceUnavailable)
		return
	}
	// The deadline is best effort: a ResponseWriter that cannot take one
	// (a test recorder) reads without it.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(adminReadTimeout))
	var a *adminapi.Answer
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, adminapi.MaxRequestSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			a = refusal(errorf(anomv1.ErrorCode_ERROR_CODE_TOO_LARGE, "admin request larger than %d bytes", adminapi.MaxRequestSize))
		} else {
			a = refusal(wrapErr(anomv1.ErrorCode_ERROR_CODE_BAD_FRAME, err, "reading admin request"))
		}
	} else {
		a = s.admin(r.Context(), raw, r.RemoteAddr)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(adminStatus(a.Code))
	_, _ = w.Write(a.Encode())
}

// Admin applies an encoded admin request and returns the answer; it is
// what /v1/admin serves, for in-process callers.
func (s *Server) Admin(ctx context.Context, raw []byte) *adminapi.Answer {
	return s.admin(ctx, raw, "in-process")
}

func (s *Server) admin(ctx context.Context, raw []byte, remote string) *adminapi.Answer {
	req, err := adminapi.DecodeRequest(raw)
	if err != nil {
		s.log.Warn("admin request refused before authentication", "remote", remote, "err", err)
		return refusal(wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "admin request"))
	}
	now := s.now()
	if err := req.Verify(s.rootPub, now, s.cfg.AdminWindow); err != nil {
		s.log.Warn("admin request refused before authentication", "remote", remote, "op", req.Op, "key_name", req.Cert.Name, "err", err)
		a := refusal(adminAuthError(err))
		a.Op = req.Op.String()
		return a
	}
	if err := s.checkAdminKey(ctx, req.Cert); err != nil {
		s.log.Warn("admin request refused: superseded admin key", "remote", remote, "op", req.Op, "key_name", req.Cert.Name, "err", err)
		a := refusal(err)
		a.Op = req.Op.String()
		return a
	}
	// The admin key's certificate goes to the transparency log the first
	// time the server sees it (logOnlineKey is a store read after that), so
	// every key that acted for the root is public; nothing is applied with
	// an admin key that is not logged.
	if _, err := s.logOnlineKey(ctx, req.Cert, identity.RoleAdmin); err != nil {
		s.log.Error("admin request refused: logging its admin key", "remote", remote, "op", req.Op, "key_name", req.Cert.Name, "err", err)
		a := refusal(err)
		a.Op = req.Op.String()
		return a
	}
	a, reason := s.applyAdmin(ctx, req)
	a.Op = req.Op.String()
	s.logAdmin(ctx, req, a, reason, remote, now)
	return a
}

// applyAdmin records the nonce, then applies an authenticated request.
func (s *Server) applyAdmin(ctx context.Context, req *adminapi.Request) (*adminapi.Answer, string) {
	key := fmt.Sprintf("%020d.%s", req.IssuedAt.UnixMilli(), hex.EncodeToString(req.Nonce[:]))
	if _, err := s.st.Create(ctx, bucketAdminNonces, key, []byte("{}")); err != nil {
		if errors.Is(err, store.ErrExists) {
			return refusal(wrapErr(anomv1.ErrorCode_ERROR_CODE_EXISTS, adminapi.ErrReplay, "admin request of %s with nonce %x was applied already", req.IssuedAt.UTC().Format(time.RFC3339Nano), req.Nonce)), ""
		}
		return refusal(storeError(err, "recording admin nonce")), ""
	}
	at := req.IssuedAt
	switch req.Op {
	case adminapi.OpAddDistributor:
		c, err := identity.DecodeDistributorCertificate(req.Body)
		if err != nil {
			return refusal(wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "distributor certificate")), ""
		}
		res, err := s.addDistributor(ctx, c)
		if err != nil {
			return refusal(err), ""
		}
		return &adminapi.Answer{Code: adminapi.CodeOK, Distributor: &res,
			Message: fmt.Sprintf("distributor %q certified with a quota of %d codes (%d issued so far)", res.Name, res.Quota, res.Issued)}, ""
	case adminapi.OpImportCodes:
		b, err := identity.DecodeCodeBatch(req.Body)
		if err != nil {
			return refusal(wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "code batch")), ""
		}
		res, err := s.importCodes(ctx, b)
		if err != nil {
			return refusal(err), ""
		}
		msg := fmt.Sprintf("%d activation codes of %q imported (%d of %d issued)", res.Imported, res.Distributor, res.Issued, res.Quota)
		if res.AlreadyImported > 0 || res.AlreadyUsed > 0 {
			msg += fmt.Sprintf("; %d imported before, %d already used and not revived", res.AlreadyImported, res.AlreadyUsed)
		}
		return &adminapi.Answer{Code: adminapi.CodeOK, Codes: &res, Message: msg}, ""
	case adminapi.OpRevoke:
		d, err := adminapi.DecodeDeviceAction(req.Body)
		if err != nil {
			return refusal(wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "revocation")), ""
		}
		already, err := s.Revoke(ctx, d.Device, d.Reason, at)
		if err != nil {
			return refusal(err), d.Reason
		}
		msg := fmt.Sprintf("device %s revoked: refused from now on, revocation in the transparency log", d.Device)
		if already {
			msg = fmt.Sprintf("device %s was revoked already", d.Device)
		}
		return &adminapi.Answer{Code: adminapi.CodeOK, Device: &adminapi.DeviceResult{Device: d.Device.String(), Already: already}, Message: msg}, d.Reason
	case adminapi.OpWipe:
		d, err := adminapi.DecodeDeviceAction(req.Body)
		if err != nil {
			return refusal(wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "wipe")), ""
		}
		online, err := s.Wipe(ctx, d.Device, d.Reason, at)
		if err != nil {
			return refusal(err), d.Reason
		}
		msg := fmt.Sprintf("wipe command for device %s recorded; sent at once to %d online session(s), otherwise when it next connects", d.Device, online)
		return &adminapi.Answer{Code: adminapi.CodeOK, Device: &adminapi.DeviceResult{Device: d.Device.String(), Online: online}, Message: msg}, d.Reason
	case adminapi.OpApprove:
		if len(req.Body) > adminapi.MaxPairingCodeLen {
			return refusal(errorf(anomv1.ErrorCode_ERROR_CODE_TOO_LARGE, "pairing code of %d bytes", len(req.Body))), ""
		}
		pr, err := identity.ParsePairingCode(string(req.Body))
		if err != nil {
			return refusal(wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "pairing code")), ""
		}
		if _, err := s.ApproveDevice(ctx, pr, at); err != nil {
			return refusal(err), ""
		}
		return &adminapi.Answer{Code: adminapi.CodeOK, Approval: &adminapi.ApprovalResult{Username: pr.Username, Fingerprint: pr.Fingerprint()},
			Message: fmt.Sprintf("a new device of %s approved; it may activate under that username with its own activation code", pr.Username)}, ""
	case adminapi.OpPairing:
		if len(req.Body) > adminapi.MaxPairingCodeLen {
			return refusal(errorf(anomv1.ErrorCode_ERROR_CODE_TOO_LARGE, "pairing code of %d bytes", len(req.Body))), ""
		}
		pr, exp, err := s.LookupPairing(ctx, string(req.Body), "")
		if err != nil {
			return refusal(err), ""
		}
		return &adminapi.Answer{Code: adminapi.CodeOK, Approval: &adminapi.ApprovalResult{Username: pr.Username, Fingerprint: pr.Fingerprint(), Request: pr.Code()},
			Message: fmt.Sprintf("a new device of %s asks to be approved (code valid until %s)", pr.Username, exp.UTC().Format(time.TimeOnly))}, ""
	case adminapi.OpAlerts:
		from, err := adminapi.DecodeAlertsFrom(req.Body)
		if err != nil {
			return refusal(wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "alerts request")), ""
		}
		res, err := s.alertsPage(ctx, from)
		if err != nil {
			return refusal(err), ""
		}
		return &adminapi.Answer{Code: adminapi.CodeOK, Alerts: &res, Message: fmt.Sprintf("%d alerts", len(res.Alerts))}, ""
	case adminapi.OpDevices, adminapi.OpUsers:
		after, err := adminapi.DecodeCursor(req.Body)
		if err != nil {
			return refusal(wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "list request")), ""
		}
		// A cursor is a key the previous page ended on; one that could not
		// be a key is the caller's mistake, not the store's.
		if after != "" {
			if err := store.CheckName("list cursor", after); err != nil {
				return refusal(wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "list request")), ""
			}
		}
		if req.Op == adminapi.OpDevices {
			res, err := s.devicesPage(ctx, after)
			if err != nil {
				return refusal(err), ""
			}
			return &adminapi.Answer{Code: adminapi.CodeOK, Devices: &res, Message: fmt.Sprintf("%d devices", len(res.Devices))}, ""
		}
		res, err := s.usersPage(ctx, after)
		if err != nil {
			return refusal(err), ""
		}
		return &adminapi.Answer{Code: adminapi.CodeOK, Users: &res, Message: fmt.Sprintf("%d users", len(res.Users))}, ""
	}
	return refusal(errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "unknown op %v", req.Op)), ""
}

// alertsPerPage bounds the alerts of one OpAlerts answer, well within
// adminapi.MaxAnswerSize.
const alertsPerPage = 200

// alertsPage reads a page of the alerts log from sequence from.
func (s *Server) alertsPage(ctx context.Context, from uint64) (adminapi.AlertsResult, error) {
	res := adminapi.AlertsResult{Alerts: []json.RawMessage{}, Next: max(from, 1)}
	es, err := s.st.Read(ctx, logAlerts, res.Next, alertsPerPage)
	if err != nil {
		return res, fmt.Errorf("reading alerts: %w", err)
	}
	for _, e := range es {
		if !json.Valid(e.Data) {
			return res, fmt.Errorf("reading alert %d: %w", e.Seq, store.ErrCorrupt)
		}
		res.Alerts = append(res.Alerts, json.RawMessage(e.Data))
		res.Next = e.Seq + 1
	}
	info, err := s.st.Info(ctx, logAlerts)
	if err != nil {
		return res, fmt.Errorf("reading alerts: %w", err)
	}
	res.More = info.Last >= res.Next
	return res, nil
}

// ErrSupersededAdminKey: an admin request under a certificate older than
// the newest the servers have seen for the same administrator name.
var ErrSupersededAdminKey = errors.New("server: admin key superseded by a newer certificate")

// adminKeyRecord is the newest admin key certificate seen of a name.
type adminKeyRecord struct {
	Serial uint64 `json:"serial"`
	Key    []byte `json:"key"`
}

// checkAdminKey retires older admin keys: of each administrator name, the
// certificate with the highest serial seen in a valid request is in force,
// and requests under a lower serial are refused. Certifying a new key for
// the name (anom admin adminkey) and using it once thus retires the old
// key on every server of the network, before its certificate expires.
func (s *Server) checkAdminKey(ctx context.Context, c *identity.OnlineKeyCertificate) error {
	rec := encodeRecord(adminKeyRecord{Serial: c.Serial, Key: c.Key})
	for {
		e, err := s.st.Get(ctx, bucketAdminKeys, c.Name)
		if errors.Is(err, store.ErrNotFound) {
			if _, err := s.st.Create(ctx, bucketAdminKeys, c.Name, rec); errors.Is(err, store.ErrExists) {
				continue
			} else if err != nil {
				return storeError(err, "recording admin key")
			}
			return nil
		}
		if err != nil {
			return storeError(err, "admin key")
		}
		var cur adminKeyRecord
		if err := decodeRecord(e, &cur); err != nil {
			return err
		}
		switch {
		case c.Serial < cur.Serial || (c.Serial == cur.Serial && !c.Key.Equal(ed25519.PublicKey(cur.Key))):
			return wrapErr(anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED, fmt.Errorf("%w: %w", adminapi.ErrUnauthorized, ErrSupersededAdminKey),
				"admin key %q of serial %d: serial %d is in force", c.Name, c.Serial, cur.Serial)
		case c.Serial == cur.Serial:
			return nil
		}
		if _, err := s.st.Update(ctx, bucketAdminKeys, c.Name, rec, e.Revision); errors.Is(err, store.ErrRevisionMismatch) {
			continue
		} else if err != nil {
			return storeError(err, "recording admin key")
		}
		s.log.Info("admin key rotated", "name", c.Name, "serial", c.Serial, "previous_serial", cur.Serial)
		return nil
	}
}

// logAdmin appends an authenticated request and its answer to the admin
// log; a failure is logged, the answer stands.
func (s *Server) logAdmin(ctx context.Context, req *adminapi.Request, a *adminapi.Answer, reason, remote string, now time.Time) {
	e := adminLogEntry{Time: now.UTC(), Admin: req.Cert.Name, Serial: req.Cert.Serial, Op: a.Op, Code: a.Code, Message: a.Message, Reason: reason}
	b, err := json.Marshal(e)
	if err == nil {
		_, err = s.st.Append(ctx, logAdmin, b)
	}
	if err != nil {
		s.log.Error("appending to the admin log", "err", err)
	}
	level := slog.LevelInfo
	if !a.OK() {
		level = slog.LevelWarn
	}
	s.log.Log(ctx, level, "admin request", "admin", e.Admin, "remote", remote, "op", e.Op, "code", e.Code, "message", e.Message, "reason", reason)
}

// sweepAdminNonces forgets the nonces of requests issued before twice the
// window: such a request is refused as stale by any server whose clock is
// within a window of this one's.
func (s *Server) sweepAdminNonces(ctx context.Context) error {
	cutoff := fmt.Sprintf("%020d", s.now().Add(-2*s.cfg.AdminWindow).UnixMilli())
	for {
		page, _, err := s.st.List(ctx, bucketAdminNonces, store.ListOptions{Limit: 500})
		if err != nil {
			return fmt.Errorf("sweeping admin nonces: %w", err)
		}
		n := 0
		for _, e := range page {
			if ms, _, _ := strings.Cut(e.Key, "."); ms >= cutoff {
				return nil
			}
			if err := s.st.Delete(ctx, bucketAdminNonces, e.Key, e.Revision); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrRevisionMismatch) {
				return fmt.Errorf("sweeping admin nonces: %w", err)
			}
			n++
		}
		if n == 0 {
			return nil
		}
	}
}

// refusal makes the answer of a failed request. The administrator is
// authenticated (or the failure is about that), so the cause is shown.
func refusal(err error) *adminapi.Answer {
	code, msg := anomv1.ErrorCode_ERROR_CODE_INTERNAL, err.Error()
	var e *Error
	switch {
	case errors.Is(err, store.ErrFull):
		code = anomv1.ErrorCode_ERROR_CODE_STORAGE_FULL
	case errors.As(err, &e):
		code, msg = e.Code, e.Message
		if e.Err != nil {
			msg += ": " + e.Err.Error()
		}
	case errors.Is(err, store.ErrNotFound):
		code = anomv1.ErrorCode_ERROR_CODE_NOT_FOUND
	case errors.Is(err, store.ErrClosed), errors.Is(err, context.DeadlineExceeded):
		code = anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE
	}
	return &adminapi.Answer{Code: code.String(), Message: msg, Reason: adminapi.ReasonOf(err)}
}

// adminAuthError maps a failed Verify to its code.
func adminAuthError(err error) *Error {
	switch {
	case errors.Is(err, adminapi.ErrStale):
		return wrapErr(anomv1.ErrorCode_ERROR_CODE_EXPIRED, err, "admin request")
	case errors.Is(err, identity.ErrExpired), errors.Is(err, identity.ErrNotYetValid):
		return wrapErr(anomv1.ErrorCode_ERROR_CODE_EXPIRED, err, "admin key certificate")
	}
	return wrapErr(anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED, err, "admin request")
}

// adminStatus is the HTTP status of an answer.
func adminStatus(code string) int {
	switch code {
	case adminapi.CodeOK:
		return http.StatusOK
	case "ERROR_CODE_INVALID_ARGUMENT", "ERROR_CODE_BAD_FRAME":
		return http.StatusBadRequest
	case "ERROR_CODE_AUTH_FAILED", "ERROR_CODE_EXPIRED":
		return http.StatusUnauthorized
	case "ERROR_CODE_FORBIDDEN", "ERROR_CODE_LIMIT_EXCEEDED":
		return http.StatusForbidden
	case "ERROR_CODE_NOT_FOUND":
		return http.StatusNotFound
	case "ERROR_CODE_EXISTS":
		return http.StatusConflict
	case "ERROR_CODE_TOO_LARGE":
		return http.StatusRequestEntityTooLarge
	case "ERROR_CODE_UNAVAILABLE":
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
