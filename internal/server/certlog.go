package server

import (
	"context"
	"fmt"
	"sync"

	"anom/identity"
	"anom/internal/store"
	"anom/internal/translog"
)

// Device certificates are logged in batches: activations that arrive
// while a batch is being written wait for the next one, which appends all
// their entries to the transparency log in one storage write and records
// their log indexes in concurrent transactions (one grouped fsync), instead
// of two fsyncs per device one device at a time.

// maxCertBatch bounds the certificates of one batch.
const maxCertBatch = 256

// certBatcher queues certificates to log.
type certBatcher struct {
	mu      sync.Mutex
	pending []*certReq
	running bool
}

// certReq is one certificate to log and, once done is closed, its log
// index or error.
type certReq struct {
	cert *identity.DeviceCertificate
	idx  uint64
	err  error
	done chan struct{}
}

// logCertificate logs a device certificate with whatever others are
// waiting, and returns its log index.
func (s *Server) logCertificate(ctx context.Context, cert *identity.DeviceCertificate) (uint64, error) {
	r := &certReq{cert: cert, done: make(chan struct{})}
	b := &s.certs
	b.mu.Lock()
	b.pending = append(b.pending, r)
	if !b.running {
		b.running = true
		go s.certLoop()
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.idx, r.err
	case <-ctx.Done():
		// The batch goes on; an activation it does not finish is
		// finished at the next start.
		return 0, fmt.Errorf("logging certificate of %s: %w", cert.DeviceID, ctx.Err())
	}
}

func (s *Server) certLoop() {
	b := &s.certs
	for {
		b.mu.Lock()
		if len(b.pending) == 0 {
			b.running = false
			b.pending = nil
			b.mu.Unlock()
			return
		}
		n := min(len(b.pending), maxCertBatch)
		batch := b.pending[:n:n]
		b.pending = b.pending[n:]
		b.mu.Unlock()
		s.appendCertificates(s.ctx, batch)
		for _, r := range batch {
			close(r.done)
		}
	}
}

// appendCertificate logs one device certificate and records its index.
func (s *Server) appendCertificate(ctx context.Context, cert *identity.DeviceCertificate) (uint64, error) {
	r := &certReq{cert: cert}
	s.appendCertificates(ctx, []*certReq{r})
	return r.idx, r.err
}

// appendCertificates logs device certificates (each after its approval,
// if it has one) in one transparency-log append and records their
// indexes, setting each request's idx or err. A certificate logged
// already keeps its index.
func (s *Server) appendCertificates(ctx context.Context, reqs []*certReq) {
	s.tlogMu.Lock()
	defer s.tlogMu.Unlock()
	type item struct {
		r   *certReq
		key string
		rec deviceRecord
		rev uint64
		pos int // of the certificate in entries
	}
	var items []item
	var entries []translog.Entry
	for _, r := range reqs {
		key := r.cert.DeviceID.String()
		e, err := s.st.Get(ctx, bucketDevices, key)
		if err != nil {
			r.err = fmt.Errorf("logging certificate of %s: %w", key, err)
			continue
		}
		var rec deviceRecord
		if err := decodeRecord(e, &rec); err != nil {
			r.err = err
			continue
		}
		if rec.Logged {
			r.idx = rec.LogIndex
			continue
		}
		if len(rec.Approval) > 0 {
			// The approval goes in just before the certificate it approves.
			entries = append(entries, translog.Entry{Kind: translog.KindDeviceApproval, Payload: rec.Approval})
		}
		entries = append(entries, translog.Entry{Kind: translog.KindDeviceCertificate, Payload: r.cert.Encode()})
		items = append(items, item{r: r, key: key, rec: rec, rev: e.Revision, pos: len(entries) - 1})
	}
	if len(items) == 0 {
		return
	}
	first, err := s.tlog.AppendBatch(ctx, entries)
	if err != nil {
		for _, it := range items {
			it.r.err = fmt.Errorf("logging certificate of %s: %w", it.key, err)
		}
		return
	}
	// Each device's record update is two operations; the transactions
	// run concurrently so the store commits them together.
	const perTxn = store.MaxTxnOps / 2
	var wg sync.WaitGroup
	for start := 0; start < len(items); start += perTxn {
		chunk := items[start:min(start+perTxn, len(items))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			ops := make([]store.Op, 0, 2*len(chunk))
			for i := range chunk {
				it := &chunk[i]
				it.rec.LogIndex, it.rec.Logged = first+uint64(it.pos), true
				ops = append(ops, store.UpdateOp(bucketDevices, it.key, encodeRecord(it.rec), it.rev), store.DeleteOp(bucketPending, it.key, 0))
			}
			_, err := s.st.Txn(ctx, ops...)
			for _, it := range chunk {
				if err != nil {
					it.r.err = fmt.Errorf("recording log index of %s: %w", it.key, err)
				} else {
					it.r.idx = it.rec.LogIndex
				}
			}
		}()
	}
	wg.Wait()
}
