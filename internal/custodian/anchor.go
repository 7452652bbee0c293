package custodian

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"anom/internal/audit"
)

// Anchoring: the archive and the custodians cross-sign their audit heads.
// The archive posts its signed head to AnchorPath; the custodian checks it
// under the archive's key (Config.ArchiveKey), appends it to its own audit
// log and answers with its own signed head, which covers that entry and
// which the archive appends to its log. Each log then holds the other's
// heads, so a truncation or rewrite of either after a head was anchored is
// found by checking it against them (audit.CheckSigned). CountsPath gives a
// signed count of the custodian's log (requests, answers, refusals), with
// the latest archive head anchored in it, so the archive's report shows
// requests that did not come from it.

// API paths.
const (
	// AnchorPath: POST an encoded audit.SignedHead of the archive, get this
	// custodian's encoded audit.SignedHead (200) or a JSON refusal.
	AnchorPath = "/v1/audit/anchor"
	// CountsPath: POST a 32-byte nonce, get an encoded audit.Counts (200).
	CountsPath = "/v1/audit/counts"
)

// ArchiveService is the service name in the archive's signed heads.
const ArchiveService = "archive"

// ServiceName is the service name in custodian name's signed heads and
// counts.
func ServiceName(name string) string { return "custodian/" + name }

// Refusal codes of the anchoring API.
const (
	CodeAnchorConflict Code = "anchor_conflict"
	CodeNoArchiveKey   Code = "no_archive_key"
)

// Sentinel errors of anchoring; match with errors.Is.
var (
	// ErrAnchorConflict: a signed head contradicts one anchored before
	// (the log it vouches for went back or forked). The conflicting head is
	// kept in the audit log as evidence.
	ErrAnchorConflict = errors.New("custodian: signed head contradicts an earlier one")
	// ErrNoArchiveKey: the custodian was not given the archive's key, so
	// it cannot take the archive's heads.
	ErrNoArchiveKey = errors.New("custodian: no archive key configured")
)

const (
	maxAnchorBody   = 4 << 10
	maxCountsAnswer = 256 << 10
)

// latestArchiveHead finds the archive's latest head anchored in the log;
// it also verifies the chain.
func latestArchiveHead(ctx context.Context, log *audit.Log) (*audit.SignedHead, error) {
	sum, err := log.Summary(ctx)
	if err != nil {
		return nil, err
	}
	for _, h := range sum.Latest() {
		if h.Service == ArchiveService {
			return h, nil
		}
	}
	return nil, nil
}

// Anchor takes the archive's signed head, received from peer: it checks the
// signature and that the head does not go back from the last one anchored
// here, appends it to the audit log, and returns this custodian's signed
// head, which covers that entry. A head that goes back is logged as a
// conflict and refused with ErrAnchorConflict.
func (s *Service) Anchor(ctx context.Context, peer string, sh *audit.SignedHead) (*audit.SignedHead, error) {
	if len(s.cfg.ArchiveKey) == 0 {
		return nil, ErrNoArchiveKey
	}
	if sh.Service != ArchiveService {
		return nil, fmt.Errorf("anchoring: %w: head of %q, want %q", ErrMalformed, sh.Service, ArchiveService)
	}
	if err := sh.Verify(s.cfg.ArchiveKey); err != nil {
		return nil, fmt.Errorf("anchoring: %w", err)
	}
	s.anchorMu.Lock()
	defer s.anchorMu.Unlock()
	if last := s.lastArchive; last != nil {
		switch {
		case sh.Head.Seq < last.Head.Seq:
			return nil, s.anchorConflict(ctx, sh, peer, fmt.Sprintf("the archive's log went back from %s to %s", last.Head, sh.Head))
		case sh.Head.Seq == last.Head.Seq && sh.Head.Hash != last.Head.Hash:
			return nil, s.anchorConflict(ctx, sh, peer, fmt.Sprintf("the archive signed two heads at entry %d: %s and %s", sh.Head.Seq, last.Head, sh.Head))
		case sh.Head == last.Head:
			// Already anchored (a retry): nothing new to log.
			return s.log.Sign(s.cfg.Secret.Key, ServiceName(s.name))
		}
	}
	if err := s.log.AppendAnchor(ctx, sh, peer); err != nil {
		return nil, fmt.Errorf("anchoring: %w", err)
	}
	s.lastArchive = sh
	return s.log.Sign(s.cfg.Secret.Key, ServiceName(s.name))
}

func (s *Service) anchorConflict(ctx context.Context, sh *audit.SignedHead, peer, reason string) error {
	if err := s.log.AppendAnchorConflict(ctx, sh, peer, reason); err != nil {
		return fmt.Errorf("anchoring: %w", err)
	}
	return fmt.Errorf("anchoring: %w: %s", ErrAnchorConflict, reason)
}

// AuditCounts is the custodian's signed count statement for the nonce: its
// audit head, the entries of each kind ("request", "answer", "refusal",
// "anchor", ...) of its verified chain up to it, and the archive's latest
// head anchored in it.
func (s *Service) AuditCounts(ctx context.Context, nonce [32]byte) (*audit.Counts, error) {
	return s.log.Counts(ctx, s.cfg.Secret.Key, ServiceName(s.name), nonce)
}

// SignedAuditHead is the custodian's current audit head, signed.
func (s *Service) SignedAuditHead() (*audit.SignedHead, error) {
	return s.log.Sign(s.cfg.Secret.Key, ServiceName(s.name))
}

// auditRoutes adds the anchoring API to the custodian's mux.
func (s *Service) auditRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+AnchorPath, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAnchorBody))
		if err != nil {
			writeAuditError(w, fmt.Errorf("%w: %w", ErrTooLarge, err))
			return
		}
		sh, err := audit.ParseSignedHead(body)
		if err != nil {
			writeAuditError(w, fmt.Errorf("%w: %w", ErrMalformed, err))
			return
		}
		mine, err := s.Anchor(r.Context(), r.RemoteAddr, sh)
		if err != nil {
			writeAuditError(w, err)
			return
		}
		writeBinary(w, mine)
	})
	mux.HandleFunc("POST "+CountsPath, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64))
		if err != nil || len(body) != 32 {
			writeAuditError(w, fmt.Errorf("%w: want a 32-byte nonce", ErrMalformed))
			return
		}
		c, err := s.AuditCounts(r.Context(), [32]byte(body))
		if err != nil {
			writeAuditError(w, err)
			return
		}
		writeBinary(w, c)
	})
}

func writeBinary(w http.ResponseWriter, m interface{ MarshalBinary() ([]byte, error) }) {
	b, err := m.MarshalBinary()
	if err != nil {
		writeAuditError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(b)
}

func writeAuditError(w http.ResponseWriter, err error) {
	eb := errorBody{Record: -1, Message: err.Error()}
	status := http.StatusForbidden
	switch {
	case errors.Is(err, ErrAnchorConflict):
		eb.Code, status = CodeAnchorConflict, http.StatusConflict
	case errors.Is(err, ErrNoArchiveKey):
		eb.Code = CodeNoArchiveKey
	case errors.Is(err, audit.ErrBadSignature):
		eb.Code = CodeBadSignature
	case errors.Is(err, ErrTooLarge):
		eb.Code, status = CodeTooLarge, http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrMalformed), errors.Is(err, audit.ErrMalformed):
		eb.Code, status = CodeMalformed, http.StatusBadRequest
	default:
		eb.Code, status, eb.Message = CodeInternal, http.StatusInternalServerError, "internal error"
	}
	b, _ := json.Marshal(eb)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// Anchor posts the archive's signed head and returns the custodian's
// signed head. It does not verify the answer's signature (the caller knows
// the custodians' keys). A conflict is ErrAnchorConflict; another refusal
// a *RefusedError; a custodian that cannot be reached, ErrUnavailable.
func (c *Client) Anchor(ctx context.Context, sh *audit.SignedHead) (*audit.SignedHead, error) {
	body, err := sh.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("anchoring at custodian %s: %w", c.Endpoint.URL, err)
	}
	b, err := c.postAudit(ctx, AnchorPath, body, maxAnchorBody)
	if err != nil {
		return nil, fmt.Errorf("anchoring at custodian %s: %w", c.Endpoint.URL, err)
	}
	mine, err := audit.ParseSignedHead(b)
	if err != nil {
		return nil, fmt.Errorf("anchoring at custodian %s: %w: %w", c.Endpoint.URL, ErrMalformed, err)
	}
	return mine, nil
}

// AuditCounts asks for the custodian's signed count statement for nonce. It
// does not verify the signature.
func (c *Client) AuditCounts(ctx context.Context, nonce [32]byte) (*audit.Counts, error) {
	b, err := c.postAudit(ctx, CountsPath, nonce[:], maxCountsAnswer)
	if err != nil {
		return nil, fmt.Errorf("asking custodian %s for audit counts: %w", c.Endpoint.URL, err)
	}
	counts, err := audit.ParseCounts(b)
	if err != nil {
		return nil, fmt.Errorf("asking custodian %s for audit counts: %w: %w", c.Endpoint.URL, ErrMalformed, err)
	}
	return counts, nil
}

func (c *Client) postAudit(ctx context.Context, path string, body []byte, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: answer over %d bytes", ErrMalformed, max)
	}
	if resp.StatusCode == http.StatusOK {
		return b, nil
	}
	var eb errorBody
	if err := json.Unmarshal(b, &eb); err != nil || eb.Code == "" {
		return nil, fmt.Errorf("%w: HTTP %d", ErrUnavailable, resp.StatusCode)
	}
	switch eb.Code {
	case CodeInternal:
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, eb.Message)
	case CodeAnchorConflict:
		return nil, fmt.Errorf("%w: %s", ErrAnchorConflict, eb.Message)
	case CodeNoArchiveKey:
		return nil, fmt.Errorf("%w: %s", ErrNoArchiveKey, eb.Message)
	}
	return nil, &RefusedError{Custodian: c.Endpoint.URL, Code: eb.Code, Record: -1, Message: eb.Message}
}

// archiveKeyOK reports whether k is usable as the archive's key.
func archiveKeyOK(k ed25519.PublicKey) bool { return len(k) == 0 || len(k) == ed25519.PublicKeySize }
