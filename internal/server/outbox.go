package server

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"anom/internal/archive"
	"anom/internal/store"
)

// EscrowOutboxLog is the store log of the escrow outbox.
const EscrowOutboxLog = logOutbox

// The escrow outbox: a durable queue (store.Queue in the log
// "escrow.outbox") of what the archive needs, in order: countersigned
// records, the certificates of their senders and the attachment blobs
// records may refer to. The archive pulls it over HTTPS (archive's pull
// protocol, authenticated by Config.ArchiveToken) and acknowledges what it
// has stored durably; the server then forgets it.
//
// Entry encoding: kind (archive.Kind, 1 byte), then for a record the
// escrow.ServerRecord, for a device certificate or an online key
// certificate its log index (uint64) and encoded log entry, for a blob the
// blob's expiry (Unix ms, 8 bytes) and its id.

const (
	outboxRecord      = byte(archive.KindRecord)
	outboxCertificate = byte(archive.KindCertificate)
	outboxBlob        = byte(archive.KindBlob)
	outboxOnlineKey   = byte(archive.KindOnlineKey)

	// bucketEscrowBlobs holds the blobs the archive has while their TTL
	// runs: "<expiry ms, 16 hex>/<id>" -> {}.
	bucketEscrowBlobs = "escrow-blobs"

	// pullBudget bounds the bytes of one Pull answer (it always holds at
	// least one item).
	pullBudget = 64 << 20
)

func outboxEntry(kind byte, payload []byte) []byte {
	return append([]byte{kind}, payload...)
}

func blobEntry(id string, expires time.Time) []byte {
	b := binary.BigEndian.AppendUint64([]byte{outboxBlob}, uint64(expires.UnixMilli()))
	return append(b, id...)
}

func parseBlobEntry(p []byte) (string, time.Time, error) {
	if len(p) < 9 {
		return "", time.Time{}, fmt.Errorf("%w: blob entry of %d bytes", store.ErrCorrupt, len(p))
	}
	return string(p[8:]), time.UnixMilli(int64(binary.BigEndian.Uint64(p[:8]))), nil
}

// EscrowSource is the escrow outbox as an archive.Source, or nil when no
// escrow policy is set.
func (s *Server) EscrowSource() archive.Source {
	if s.esc == nil {
		return nil
	}
	return outbox{s}
}

type outbox struct{ s *Server }

func (o outbox) queue() store.Queue { return store.Queue{Logs: o.s.st, Name: logOutbox} }

// Pull implements archive.Source. It does not wait for new entries.
func (o outbox) Pull(ctx context.Context, after uint64, limit int) ([]archive.Item, error) {
	acked, err := o.s.st.Cursor(ctx, logOutbox, store.QueueConsumer)
	if err != nil {
		return nil, fmt.Errorf("pulling escrow outbox: %w", err)
	}
	es, err := o.s.st.Read(ctx, logOutbox, max(after, acked)+1, min(limit, store.MaxReadEntries))
	if err != nil {
		return nil, fmt.Errorf("pulling escrow outbox: %w", err)
	}
	var (
		items []archive.Item
		size  int
	)
	for _, e := range es {
		if len(e.Data) < 1 {
			return nil, fmt.Errorf("pulling escrow outbox: %w: empty entry %d", store.ErrCorrupt, e.Seq)
		}
		it := archive.Item{Cursor: e.Seq, Kind: archive.Kind(e.Data[0]), Data: e.Data[1:]}
		if e.Data[0] == outboxBlob {
			id, _, err := parseBlobEntry(e.Data[1:])
			if err != nil {
				return nil, fmt.Errorf("pulling escrow outbox entry %d: %w", e.Seq, err)
			}
			data, err := o.readBlob(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				o.s.log.Error("escrow outbox: blob gone before the archive had it", "blob", id, "entry", e.Seq)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("pulling escrow outbox entry %d: %w", e.Seq, err)
			}
			it.BlobID, it.Data = id, data
		}
		if len(items) > 0 && size+len(it.Data) > pullBudget {
			break
		}
		size += len(it.Data)
		items = append(items, it)
	}
	return items, nil
}

func (o outbox) readBlob(ctx context.Context, id string) ([]byte, error) {
	r, info, err := o.s.st.GetBlob(ctx, id)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if info.Size > archive.MaxItemBytes {
		return nil, fmt.Errorf("blob %s of %d bytes is over the archive's item limit", id, info.Size)
	}
	return io.ReadAll(io.LimitReader(r, archive.MaxItemBytes))
}

// Ack implements archive.Source: entries up to upTo are durable in the
// archive. The blobs among them are from now on kept only until their TTL.
func (o outbox) Ack(ctx context.Context, upTo uint64) error {
	info, err := o.s.st.Info(ctx, logOutbox)
	if err != nil {
		return fmt.Errorf("acknowledging escrow outbox: %w", err)
	}
	if upTo > info.Last {
		return fmt.Errorf("acknowledging escrow outbox up to %d: only %d entries were ever added", upTo, info.Last)
	}
	acked, err := o.s.st.Cursor(ctx, logOutbox, store.QueueConsumer)
	if err != nil {
		return fmt.Errorf("acknowledging escrow outbox: %w", err)
	}
	for from := acked + 1; from <= upTo; {
		es, err := o.s.st.Read(ctx, logOutbox, from, 0)
		if err != nil {
			return fmt.Errorf("acknowledging escrow outbox: %w", err)
		}
		if len(es) == 0 {
			break
		}
		var ops []store.Op
		for _, e := range es {
			if e.Seq > upTo {
				break
			}
			if len(e.Data) > 0 && e.Data[0] == outboxBlob {
				id, exp, err := parseBlobEntry(e.Data[1:])
				if err != nil {
					return fmt.Errorf("acknowledging escrow outbox entry %d: %w", e.Seq, err)
				}
				ops = append(ops, store.PutOp(bucketEscrowBlobs, fmt.Sprintf("%016x/%s", exp.UnixMilli(), id), []byte{}))
			}
		}
		for len(ops) > 0 {
			n := min(len(ops), store.MaxTxnOps)
			if _, err := o.s.st.Txn(ctx, ops[:n]...); err != nil {
				return fmt.Errorf("acknowledging escrow outbox: %w", err)
			}
			ops = ops[n:]
		}
		from = es[len(es)-1].Seq + 1
	}
	if err := o.queue().Ack(ctx, upTo); err != nil {
		return fmt.Errorf("acknowledging escrow outbox: %w", err)
	}
	return nil
}

// putEscrowedBlob stores an uploaded blob under an escrow policy: without
// an expiry, since it is kept for the archive until the archive has it and
// its TTL has run (sweepEscrowBlobs), and queued in the outbox. If it
// cannot be queued it is deleted again and the upload fails.
func (s *Server) putEscrowedBlob(ctx context.Context, id string, r io.Reader, maxSize int64) error {
	expires := s.now().Add(s.cfg.BlobTTL)
	if _, err := s.st.PutBlob(ctx, id, r, store.BlobOptions{MaxSize: maxSize}); err != nil {
		return err
	}
	if _, err := s.st.Append(ctx, logOutbox, blobEntry(id, expires)); err != nil {
		if derr := s.st.DeleteBlob(context.WithoutCancel(ctx), id); derr != nil {
			s.log.Error("deleting a blob that could not be queued for the archive", "blob", id, "err", derr)
		}
		return fmt.Errorf("queueing blob %s for the archive: %w", id, err)
	}
	return nil
}

// sweepEscrowBlobs deletes the blobs the archive has once their TTL has
// run.
func (s *Server) sweepEscrowBlobs(ctx context.Context) error {
	limit := fmt.Sprintf("%016x", s.now().UnixMilli())
	for {
		page, _, err := s.st.List(ctx, bucketEscrowBlobs, store.ListOptions{Limit: 100})
		if err != nil {
			return fmt.Errorf("sweeping escrow blobs: %w", err)
		}
		n := 0
		for _, e := range page {
			exp, id, ok := strings.Cut(e.Key, "/")
			if !ok || exp > limit {
				return nil
			}
			if err := s.st.DeleteBlob(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("sweeping escrow blob %s: %w", id, err)
			}
			if err := s.st.Delete(ctx, bucketEscrowBlobs, e.Key, 0); err != nil {
				return fmt.Errorf("sweeping escrow blob %s: %w", id, err)
			}
			n++
		}
		if n == 0 {
			return nil
		}
	}
}

// archiveHandler serves the outbox over the archive's pull protocol to a
// caller presenting Config.ArchiveToken as a bearer token.
func (s *Server) archiveHandler() http.Handler {
	h := archive.SourceHandler(outbox{s})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.ArchiveToken)) != 1 {
			http.Error(w, "archive token required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ProveLog implements archive.LogProver: the archive gets, with its
// token, inclusion proofs of the certificates it forwards to custodians
// and consistency proofs from the heads they track.
func (o outbox) ProveLog(ctx context.Context, indexes, from []uint64) (*archive.LogProofs, error) {
	sth, _, err := o.s.signedHead()
	if err != nil {
		return nil, err
	}
	return archive.BuildLogProofs(o.s.tlog, sth, indexes, from)
}
