package server

import (
	"context"
	"errors"
	"fmt"

	"anom/identity"
	"anom/internal/store"
	"anom/internal/translog"
	anomv1 "anom/proto/anom/v1"
)

// logStorage keeps the transparency log in the store's log "translog":
// translog index i is store sequence i+1.
type logStorage struct{ st store.Store }

func (l logStorage) Append(ctx context.Context, start uint64, entries [][]byte) error {
	for len(entries) > 0 {
		n := min(len(entries), store.MaxAppendCount)
		if _, err := l.st.AppendIf(ctx, logTranslog, start, entries[:n]...); err != nil {
			var ce *store.ConflictError
			if errors.As(err, &ce) {
				return fmt.Errorf("appending to transparency log: %w: %w", translog.ErrStorageIndex, err)
			}
			return fmt.Errorf("appending to transparency log: %w", err)
		}
		start += uint64(n)
		entries = entries[n:]
	}
	return nil
}

func (l logStorage) Load(ctx context.Context, start, end uint64, fn func(uint64, []byte) error) error {
	if start >= end {
		return nil
	}
	from := start + 1 // store sequence of index start
	for from <= end {
		es, err := l.st.Read(ctx, logTranslog, from, 0)
		if err != nil {
			return fmt.Errorf("loading transparency log: %w", err)
		}
		if len(es) == 0 {
			return nil
		}
		for _, e := range es {
			if e.Seq-1 >= end {
				return nil
			}
			if err := fn(e.Seq-1, e.Data); err != nil {
				return err
			}
			from = e.Seq + 1
		}
	}
	return nil
}

// finishActivations logs the certificates of activations interrupted
// between their commit and their log append.
func (s *Server) finishActivations(ctx context.Context) error {
	for {
		page, _, err := s.st.List(ctx, bucketPending, store.ListOptions{})
		if err != nil {
			return fmt.Errorf("listing pending activations: %w", err)
		}
		if len(page) == 0 {
			return nil
		}
		for _, p := range page {
			cert, err := s.deviceCert(ctx, p.Key)
			if err != nil {
				return err
			}
			if _, err := s.appendCertificate(ctx, cert); err != nil {
				return err
			}
			s.log.Info("finished interrupted activation", "device", p.Key)
		}
	}
}

// deviceCert loads a device's certificate.
func (s *Server) deviceCert(ctx context.Context, devHex string) (*identity.DeviceCertificate, error) {
	rec, _, err := s.deviceRecord(ctx, devHex)
	if err != nil {
		return nil, err
	}
	cert, err := identity.DecodeDeviceCertificate(rec.Cert)
	if err != nil {
		return nil, fmt.Errorf("loading device %s: %w: %w", devHex, store.ErrCorrupt, err)
	}
	return cert, nil
}

func (s *Server) deviceRecord(ctx context.Context, devHex string) (deviceRecord, uint64, error) {
	var rec deviceRecord
	e, err := s.st.Get(ctx, bucketDevices, devHex)
	if err != nil {
		return rec, 0, fmt.Errorf("loading device %s: %w", devHex, err)
	}
	return rec, e.Revision, decodeRecord(e, &rec)
}

// loadRevoked calls fn with every device revoked in the store.
func (s *Server) loadRevoked(ctx context.Context, fn func(identity.DeviceID)) error {
	after := ""
	for {
		page, more, err := s.st.List(ctx, bucketRevoked, store.ListOptions{After: after})
		if err != nil {
			return fmt.Errorf("loading revocations: %w", err)
		}
		for _, e := range page {
			id, err := identity.ParseDeviceID(e.Key)
			if err != nil {
				return fmt.Errorf("loading revocations: %w: %w", store.ErrCorrupt, err)
			}
			fn(id)
		}
		if !more || len(page) == 0 {
			return nil
		}
		after = page[len(page)-1].Key
	}
}

// isRevoked reports whether a device is revoked.
func (s *Server) isRevoked(id identity.DeviceID) bool {
	s.revokedMu.RLock()
	defer s.revokedMu.RUnlock()
	return s.revoked[id]
}

// signedHead returns the current signed tree head.
func (s *Server) signedHead() (translog.SignedTreeHead, []byte, error) {
	sth, err := s.tlog.SignedTreeHead()
	if err != nil {
		return sth, nil, fmt.Errorf("signing tree head: %w", err)
	}
	b, err := sth.MarshalBinary()
	if err != nil {
		return sth, nil, fmt.Errorf("encoding tree head: %w", err)
	}
	return sth, b, nil
}

// lookup answers a directory lookup: every device of the username with
// its certificate and an inclusion proof against one signed tree head.
func (s *Server) lookup(ctx context.Context, req *anomv1.Lookup) (*anomv1.Directory, error) {
	name, err := identity.CanonicalUsername(req.GetUsername())
	if err != nil {
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_USERNAME, err, "lookup")
	}
	e, err := s.st.Get(ctx, bucketUsers, name)
	if err != nil {
		return nil, storeError(err, "user "+name)
	}
	var u userRecord
	if err := decodeRecord(e, &u); err != nil {
		return nil, err
	}
	recs := make([]deviceRecord, len(u.Devices))
	for i, d := range u.Devices {
		rec, _, err := s.deviceRecord(ctx, d)
		if err != nil {
			return nil, err
		}
		if rec.Logged {
			// Logged perhaps by another server: catch up with it.
			if err := s.syncTransparencyLog(ctx, rec.LogIndex); err != nil {
				return nil, err
			}
		}
		recs[i] = rec
	}
	sth, head, err := s.signedHead()
	if err != nil {
		return nil, err
	}
	dir := &anomv1.Directory{Username: name, TreeHead: head}
	for i, d := range u.Devices {
		rec := recs[i]
		if !rec.Logged || rec.LogIndex >= sth.Size {
			continue // not yet in the log: not shown until it is
		}
		proof, err := s.tlog.InclusionProof(rec.LogIndex, sth.Size)
		if err != nil {
			return nil, fmt.Errorf("proving inclusion of %s: %w", d, err)
		}
		pb, err := proof.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encoding inclusion proof: %w", err)
		}
		id, err := identity.ParseDeviceID(d)
		if err != nil {
			return nil, fmt.Errorf("device %s: %w", d, store.ErrCorrupt)
		}
		entry, err := s.tlog.Entries(ctx, rec.LogIndex, rec.LogIndex+1)
		if err != nil || len(entry) != 1 {
			return nil, fmt.Errorf("reading log entry %d of %s: %w", rec.LogIndex, d, err)
		}
		dir.Devices = append(dir.Devices, &anomv1.DeviceEntry{Certificate: rec.Cert, LogIndex: rec.LogIndex, InclusionProof: pb, Revoked: s.isRevoked(id), LogEntry: entry[0]})
	}
	return dir, nil
}

// treeHead answers GetTreeHead.
func (s *Server) treeHead(ctx context.Context, req *anomv1.GetTreeHead) (*anomv1.TreeHead, error) {
	sth, head, err := s.signedHead()
	if err != nil {
		return nil, err
	}
	out := &anomv1.TreeHead{TreeHead: head}
	if from := req.GetFromSize(); from > sth.Size {
		// The client saw a head of another server of the cluster.
		if err := s.syncTransparencyLog(ctx, from-1); err != nil {
			return nil, err
		}
		if sth, head, err = s.signedHead(); err != nil {
			return nil, err
		}
		out.TreeHead = head
	}
	if from := req.GetFromSize(); from > 0 {
		if from > sth.Size {
			return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "size %d beyond the log's %d", from, sth.Size)
		}
		p, err := s.tlog.ConsistencyProof(from, sth.Size)
		if err != nil {
			return nil, fmt.Errorf("proving consistency: %w", err)
		}
		if out.ConsistencyProof, err = p.MarshalBinary(); err != nil {
			return nil, fmt.Errorf("encoding consistency proof: %w", err)
		}
	}
	return out, nil
}

// logEntries answers GetLogEntries.
func (s *Server) logEntries(ctx context.Context, req *anomv1.GetLogEntries) (*anomv1.LogEntries, error) {
	start, end := req.GetStart(), req.GetEnd()
	if end > 0 {
		if err := s.syncTransparencyLog(ctx, end-1); err != nil {
			return nil, err
		}
	}
	size := s.tlog.Size()
	if start > end || end > size {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "range [%d, %d) outside the log of %d", start, end, size)
	}
	end = min(end, start+uint64(s.limits.MaxLogEntries))
	es, err := s.tlog.Entries(ctx, start, end)
	if err != nil {
		return nil, fmt.Errorf("reading log entries: %w", err)
	}
	return &anomv1.LogEntries{Start: start, Entries: es}, nil
}
