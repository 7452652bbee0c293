// Package archive is the escrow archive: it pulls escrow records (and the
// device certificates and attachment blobs they need) from a Source into its
// own store, indexes them by device, username, group and time, and opens
// the records in a warrant's scope by asking k of the n custodians for
// partial decryptions. It never holds plaintext at rest: plaintexts exist
// only in memory while Open combines them and in the output directory Open
// writes. Every warrant, custodian request and answer goes to the archive's
// hash-chained audit log, from which Report derives the transparency report;
// the archive and the custodians anchor each other's audit heads.
//
// Files by concern:
//
//	archive.go     configuration and storage layout
//	source.go      the Source interface and an in-memory Source
//	httpsource.go  the pull protocol over HTTP (handler and client Source)
//	ingest.go      resumable, idempotent ingestion
//	index.go       queries by device, username, group and time
//	open.go        opening a warrant's records with the custodians
//	anchor.go      cross-signing audit heads with the custodians
//	report.go      the transparency report, with the custodians' signed counts
package archive

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
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
)

// Sentinel errors; match with errors.Is.
var (
	// ErrInvalidItem: a source delivered an item the archive cannot keep.
	ErrInvalidItem = errors.New("archive: invalid item")
	// ErrCursor: a source delivered items out of cursor order.
	ErrCursor = errors.New("archive: source cursor out of order")
	// ErrMalformed: bytes from the network are not a valid encoding.
	ErrMalformed = errors.New("archive: malformed input")
	// ErrNotEnoughCustodians: fewer than k custodians answered.
	ErrNotEnoughCustodians = errors.New("archive: not enough custodians answered")
	// ErrOutputExists: Open's output directory is not empty.
	ErrOutputExists = errors.New("archive: output directory is not empty")
	// ErrReusedR: a record carries the R of a record already archived in
	// another slot. Records are refused at ingest for it (with
	// ErrInvalidItem): a record's R is derived from its own message, so a
	// second record with the same R copies another's, to have it opened
	// under its own metadata.
	ErrReusedR = errors.New("archive: record reuses the R of an archived record")
)

// Storage layout: buckets and key prefixes.
const (
	bucketMeta    = "archive-meta"    // "cursor" -> uint64
	bucketRecords = "archive-records" // "r/<slot>" -> tag byte, record or blob name
	bucketIndex   = "archive-index"   // "d/<device>/<ms>/<slot>", "g/<group hash>/<ms>/<slot>", "t/<ms>/<slot>"
	bucketDevices = "archive-devices" // "<device>/<serial>" -> log index (uint64), log entry of the certificate
	bucketUsers   = "archive-users"   // "<username hex>/<device>" -> empty
	bucketOnline  = "archive-online"  // "<server id>" -> log index, log entry of its countersigning key certificate
	bucketRs      = "archive-rs"      // "<R hex>" -> slot of the record with that R
	// AuditBucket holds the archive's audit log.
	AuditBucket = "archive-audit"

	keyCursor = "cursor"

	tagInline = 0 // the rest of the value is the ServerRecord
	tagBlob   = 1 // the record is in the blob named by the rest of the value

	recordBlobPrefix = "archive-record/"
)

// Config configures an archive. Fields without a stated zero value are
// required.
type Config struct {
	Store  store.Store
	Policy *escrow.SignedPolicy   // the escrow policy, signed by Root
	Root   identity.RootPublicKey // the network root: device certificates and countersigning keys must chain to it
	// Log gives the transparency-log proofs custodians require (the
	// server, over HTTPSource). Required by Open.
	Log LogProver
	// Attachments finds and opens the attachments an opened plaintext
	// refers to; nil: Open writes plaintexts only.
	Attachments AttachmentOpener
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand weighs the batch check of the records' proofs at ingest and
	// makes the report's nonces; nil means crypto/rand.
	Rand io.Reader
	// Logger receives ingestion retries and refused records; nil discards
	// them.
	Logger *slog.Logger
	// Key signs the archive's audit heads; the custodians take its public
	// half as the archive's key (see Anchor). Nil: the archive anchors
	// nothing and its report carries no signed head.
	Key ed25519.PrivateKey
	// ClientCertificate is the certificate the archive presents to the
	// custodians, which answer only archives whose certificate they pin
	// (custodian.LoadOrCreateClientCertificate makes one). Open needs it;
	// nil: Open refuses.
	ClientCertificate *tls.Certificate
}

// Archive is an open archive.
type Archive struct {
	cfg    Config
	policy *escrow.Policy
	log    *audit.Log
	cursor uint64
	online sync.Map // server id -> *loggedKey, a cache of bucketOnline
	// countersigned: the batch countersignatures already checked, so the
	// records of one batch cost one signature check.
	countersigned *escrow.CountersignCache

	anchors anchors
}

// New verifies the policy and opens the archive kept in cfg.Store.
func New(ctx context.Context, cfg Config) (*Archive, error) {
	if cfg.Store == nil || cfg.Policy == nil {
		return nil, fmt.Errorf("opening archive: store and policy are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Key != nil && len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("opening archive: audit key is %d bytes", len(cfg.Key))
	}
	p, err := cfg.Policy.Verify(ed25519.PublicKey(cfg.Root))
	if err != nil {
		return nil, fmt.Errorf("opening archive: %w", err)
	}
	a := &Archive{cfg: cfg, policy: p, countersigned: escrow.NewCountersignCache()}
	if a.log, err = audit.Open(ctx, cfg.Store, AuditBucket, cfg.Now); err != nil {
		return nil, fmt.Errorf("opening archive: %w", err)
	}
	e, err := cfg.Store.Get(ctx, bucketMeta, keyCursor)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("opening archive: %w", err)
	case len(e.Value) != 8:
		return nil, fmt.Errorf("opening archive: %w: cursor is %d bytes", store.ErrCorrupt, len(e.Value))
	default:
		a.cursor = binary.BigEndian.Uint64(e.Value)
	}
	return a, nil
}

// Cursor is the source cursor up to which everything is durable here.
func (a *Archive) Cursor() uint64 { return a.cursor }

// AuditHead is the end of the archive's audit chain.
func (a *Archive) AuditHead() audit.Head { return a.log.Head() }

// VerifyAudit walks the archive's audit chain.
func (a *Archive) VerifyAudit(ctx context.Context) (audit.Head, error) {
	return audit.Verify(ctx, a.cfg.Store, AuditBucket)
}

func slotKey(slot [32]byte) string { return "r/" + hex.EncodeToString(slot[:]) }

func msKey(t time.Time) string { return fmt.Sprintf("%016x", t.UnixMilli()) }

func deviceIndexPrefix(device []byte) string { return "d/" + hex.EncodeToString(device) + "/" }

func groupIndexPrefix(group []byte) string {
	h := sha256.Sum256(group)
	return "g/" + hex.EncodeToString(h[:]) + "/"
}

const timeIndexPrefix = "t/"

// indexKeys are the index entries of a record.
func indexKeys(m *escrow.Metadata, slot [32]byte) []string {
	tail := msKey(m.SentAt) + "/" + hex.EncodeToString(slot[:])
	return []string{deviceIndexPrefix(m.SenderDevice) + tail, groupIndexPrefix(m.GroupID) + tail, timeIndexPrefix + tail}
}
