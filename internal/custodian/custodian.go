// Package custodian is the service that holds one share of the escrow key.
// It answers an archive's request (a signed warrant and countersigned
// records, see Envelope) with partial decryptions and a DLEQ proof, only
// after checking the warrant against the policy's issuers, its expiry and
// the custodian's own revocation list, and every record's device signature,
// server countersignature, scope and time range. The device keys and the
// countersigning keys are trusted only as entries of the network's
// transparency log, included in a tree head signed by the logged,
// root-certified directory key that extends the head the custodian tracks
// (logcheck.go). Every request and answer goes to the custodian's
// hash-chained audit log.
//
// Files by concern:
//
//	custodian.go  the service and its checks
//	envelope.go   the request envelope and the per-request key directory
//	logcheck.go   the log evidence: tracked tree head, inclusion, consistency
//	http.go       the HTTPS API and the archive's client
//	anchor.go     cross-signed audit heads and signed audit counts
//	tls.go        the self-signed certificate and pinning
//	revoke.go     the revocation list file
//	sharefile.go  the custodian's secret file (share and signing key)
//	errors.go     sentinel errors and refusal codes
package custodian

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"anom/escrow"
	"anom/identity"
	"anom/internal/audit"
	"anom/internal/store"
	"anom/internal/translog"
)

// AuditBucket is the store bucket of the custodian's audit log.
const AuditBucket = "custodian-audit"

// Revocations is the custodian's own list of revoked warrant ids.
type Revocations interface {
	// Revoked returns the set of revoked warrant ids.
	Revoked(ctx context.Context) (map[string]bool, error)
}

// Config configures a custodian. Fields without a stated zero value are
// required.
type Config struct {
	Secret *ShareFile           // this custodian's share and signing key
	Policy *escrow.SignedPolicy // the escrow policy, signed by Root
	// Root is the pinned network root: the escrow policy, the directory
	// key of tree heads and the countersigning keys chain to it.
	Root        identity.RootPublicKey
	Store       store.KV    // holds the audit log and the tracked tree head
	Revocations Revocations // nil: no warrant is revoked
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the randomness of proofs; nil means crypto/rand.
	Rand io.Reader
	// Logger receives the HTTP server's connection errors and alerts (a
	// forked transparency log); nil discards them.
	Logger *slog.Logger
	// MaxRequestBytes bounds a request body; zero means
	// DefaultMaxRequestBytes.
	MaxRequestBytes int64
	// ArchiveKey is the key of the archive's signed audit heads (see
	// Anchor); nil: the archive's heads are refused, so this custodian's
	// log anchors nothing.
	ArchiveKey ed25519.PublicKey
	// ArchivePins are the SHA-256 pins of the client certificates of the
	// archives allowed to ask (Pin of the certificate an archive makes
	// with LoadOrCreateClientCertificate). At least one is required: any
	// other client is refused before its request is read.
	ArchivePins [][32]byte
}

// Service is one running custodian.
type Service struct {
	cfg    Config
	policy *escrow.Policy
	holder escrow.Keyholder
	log    *audit.Log
	name   string

	headMu sync.Mutex
	head   translog.SignedTreeHead // the tracked tree head

	anchorMu    sync.Mutex
	lastArchive *audit.SignedHead // the archive's latest head anchored here
}

// New checks the configuration (policy signed by the root, share and key
// matching the policy's entry for this custodian) and opens the audit log,
// whose whole chain it verifies: a custodian does not start on a log that
// does not verify.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Secret == nil || cfg.Policy == nil || cfg.Store == nil {
		return nil, fmt.Errorf("starting custodian: secret, policy and store are required")
	}
	if len(cfg.ArchivePins) == 0 {
		return nil, fmt.Errorf("starting custodian: %w: no archive pin (custodians answer only archives they pin)", ErrUnauthenticated)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	p, err := cfg.Policy.Verify(ed25519.PublicKey(cfg.Root))
	if err != nil {
		return nil, fmt.Errorf("starting custodian: %w", err)
	}
	holder := escrow.Keyholder{Share: cfg.Secret.Share, Key: cfg.Secret.Key, Policy: p, Rand: cfg.Rand}
	c, err := holder.Custodian()
	if err != nil {
		return nil, fmt.Errorf("starting custodian: %w", err)
	}
	if !archiveKeyOK(cfg.ArchiveKey) {
		return nil, fmt.Errorf("starting custodian: archive key is %d bytes", len(cfg.ArchiveKey))
	}
	log, err := audit.Open(ctx, cfg.Store, AuditBucket, cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("starting custodian: %w", err)
	}
	last, err := latestArchiveHead(ctx, log)
	if err != nil {
		return nil, fmt.Errorf("starting custodian: %w", err)
	}
	svc := &Service{cfg: cfg, policy: p, holder: holder, log: log, name: c.Name, lastArchive: last}
	if err := svc.loadHead(ctx); err != nil {
		return nil, fmt.Errorf("starting custodian: %w", err)
	}
	return svc, nil
}

// Name is the custodian's name in the policy.
func (s *Service) Name() string { return s.name }

// AuditHead is the end of the custodian's audit chain.
func (s *Service) AuditHead() audit.Head { return s.log.Head() }

// requestAudit is the audit body of a request.
type requestAudit struct {
	From        string   `json:"from,omitempty"`
	Bytes       int      `json:"bytes"`
	WarrantID   string   `json:"warrant_id,omitempty"`
	Issuer      string   `json:"issuer,omitempty"`
	WarrantHash string   `json:"warrant_hash,omitempty"`
	RequestHash string   `json:"request_hash,omitempty"`
	Records     int      `json:"records"`
	Slots       []string `json:"slots,omitempty"`
	Error       string   `json:"error,omitempty"`
}

// answerAudit is the audit body of an answer or a refusal.
type answerAudit struct {
	RequestHash string `json:"request_hash,omitempty"`
	WarrantID   string `json:"warrant_id,omitempty"`
	WarrantHash string `json:"warrant_hash,omitempty"`
	Partials    int    `json:"partials,omitempty"`
	Code        Code   `json:"code,omitempty"`
	Record      *int   `json:"record,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Handle decodes a request body, answers it and returns the encoded
// response. The request and the answer (or refusal) are in the audit log
// before Handle returns; an answer is returned only once it is logged.
func (s *Service) Handle(ctx context.Context, from string, body []byte) ([]byte, error) {
	ra := requestAudit{From: from, Bytes: len(body)}
	env, perr := ParseEnvelope(body)
	var reqHash [32]byte
	if perr == nil {
		w := env.Request.Warrant.Warrant
		ra.WarrantID, ra.Issuer, ra.Records = w.ID, w.Issuer, len(env.Request.Records)
		wh, err := env.Request.Warrant.Hash()
		if err == nil {
			reqHash, err = env.RequestHash()
		}
		if err != nil {
			perr = fmt.Errorf("%w: %w", ErrMalformed, err)
		} else {
			ra.WarrantHash, ra.RequestHash = hex.EncodeToString(wh[:]), hex.EncodeToString(reqHash[:])
		}
		for _, rec := range env.Request.Records {
			if slot, err := rec.Signed.Record.Metadata.Slot(); err == nil {
				ra.Slots = append(ra.Slots, hex.EncodeToString(slot[:]))
			}
		}
	}
	if perr != nil {
		ra.Error = perr.Error()
	}
	if err := s.audit(ctx, "request", ra); err != nil {
		return nil, err
	}
	if perr != nil {
		return nil, s.refuse(ctx, ra, perr)
	}
	resp, err := s.answer(ctx, env)
	if err != nil {
		return nil, s.refuse(ctx, ra, err)
	}
	out, err := resp.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("answering: %w", err)
	}
	if err := s.audit(ctx, "answer", answerAudit{RequestHash: ra.RequestHash, WarrantID: ra.WarrantID, WarrantHash: ra.WarrantHash, Partials: len(resp.D)}); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Service) answer(ctx context.Context, env *Envelope) (*escrow.Response, error) {
	revoked := map[string]bool{}
	if s.cfg.Revocations != nil {
		var err error
		if revoked, err = s.cfg.Revocations.Revoked(ctx); err != nil {
			return nil, fmt.Errorf("reading revocation list: %w", err)
		}
	}
	keys, err := s.checkLog(ctx, env)
	if err != nil {
		return nil, err
	}
	h := s.holder
	h.Keys = keys
	hash, err := env.RequestHash()
	if err != nil {
		return nil, err
	}
	return h.AnswerHashed(env.Request, hash, s.cfg.Now(), revoked)
}

// refuse logs a refusal of the request ra describes and returns the error
// to send.
func (s *Service) refuse(ctx context.Context, ra requestAudit, cause error) error {
	code, _ := codeOf(cause)
	aa := answerAudit{RequestHash: ra.RequestHash, WarrantID: ra.WarrantID, WarrantHash: ra.WarrantHash, Code: code, Error: cause.Error()}
	var re *escrow.RecordError
	if errors.As(cause, &re) {
		aa.Record = &re.Index
	}
	if err := s.audit(ctx, "refusal", aa); err != nil {
		return err
	}
	return cause
}

func (s *Service) audit(ctx context.Context, kind string, body any) error {
	return s.log.AppendJSON(ctx, kind, body)
}
