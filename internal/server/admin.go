package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"anom/internal/identity"
	"anom/internal/store"
	"anom/internal/translog"
	anomv1 "anom/proto/anom/v1"
)

// Revoke revokes a device with a revocation signed by the network root:
// it is recorded, appended to the transparency log, and every session of
// the device is cut at once. Revoking twice is harmless.
func (s *Server) Revoke(ctx context.Context, r *identity.Revocation) error {
	return s.revoke(ctx, r, nil)
}

// revoke is Revoke; the session spare, if not nil, is left to close
// itself after its answer.
func (s *Server) revoke(ctx context.Context, r *identity.Revocation, spare *session) error {
	if err := r.Verify(s.rootPub); err != nil {
		return fmt.Errorf("revoking: %w", err)
	}
	key := r.DeviceID.String()
	if _, err := s.st.Get(ctx, bucketDevices, key); err != nil {
		return fmt.Errorf("revoking %s: %w", key, err)
	}
	if _, err := s.st.Create(ctx, bucketRevoked, key, r.Encode()); err != nil {
		if errors.Is(err, store.ErrExists) {
			s.setRevoked(r.DeviceID, spare)
			return nil
		}
		return fmt.Errorf("revoking %s: %w", key, err)
	}
	s.setRevoked(r.DeviceID, spare)
	s.tlogMu.Lock()
	_, err := s.tlog.Append(ctx, translog.Entry{Kind: translog.KindRevocation, Payload: r.Encode()})
	s.tlogMu.Unlock()
	if err != nil {
		return fmt.Errorf("logging revocation of %s: %w", key, err)
	}
	s.log.Info("device revoked", "device", key)
	return nil
}

func (s *Server) setRevoked(id identity.DeviceID, spare *session) {
	s.revokedMu.Lock()
	s.revoked[id] = true
	s.revokedMu.Unlock()
	for _, c := range s.hub.of(id) {
		if c != spare {
			go c.kick(anomv1.ErrorCode_ERROR_CODE_REVOKED, "device revoked")
		}
	}
}

// Wipe records a root-signed wipe command and pushes it to the device's
// sessions; a device that is offline gets it when it next connects.
func (s *Server) Wipe(ctx context.Context, w *identity.WipeCommand) error {
	if err := w.Verify(s.rootPub, w.DeviceID); err != nil {
		return fmt.Errorf("wiping: %w", err)
	}
	key := w.DeviceID.String()
	if _, err := s.st.Get(ctx, bucketDevices, key); err != nil {
		return fmt.Errorf("wiping %s: %w", key, err)
	}
	if _, err := s.st.Put(ctx, bucketWipes, key, w.Encode()); err != nil {
		return fmt.Errorf("wiping %s: %w", key, err)
	}
	b, err := marshalPush(&anomv1.Frame{Body: &anomv1.Frame_PushWipe{PushWipe: &anomv1.Wipe{Command: w.Encode()}}})
	if err != nil {
		return fmt.Errorf("wiping %s: %w", key, err)
	}
	for _, c := range s.hub.of(w.DeviceID) {
		c.push(b)
	}
	s.log.Info("wipe command issued", "device", key)
	return nil
}

// wipeConfirm records a device's confirmation that it wiped itself; the
// device is then revoked.
func (s *Server) wipeConfirm(ctx context.Context, c *session, req *anomv1.WipeConfirm) (*anomv1.Ok, error) {
	e, err := s.st.Get(ctx, bucketWipes, c.devHex)
	if err != nil {
		return nil, storeError(err, "pending wipe")
	}
	cmd, err := identity.DecodeWipeCommand(e.Value)
	if err != nil {
		return nil, fmt.Errorf("stored wipe command: %w: %w", store.ErrCorrupt, err)
	}
	conf := &identity.WipeConfirmation{Command: req.GetCommand(), Signature: req.GetSignature()}
	if err := conf.Verify(c.cert, cmd); err != nil {
		return nil, wrapErr(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err, "wipe confirmation")
	}
	if err := s.st.Delete(ctx, bucketWipes, c.devHex, e.Revision); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("recording wipe confirmation: %w", err)
	}
	s.log.Info("wipe confirmed", "device", c.devHex)
	if err := s.revoke(ctx, s.dir.SignRevocation(c.device, s.now()), c); err != nil {
		return nil, err
	}
	c.closeAfterAnswer = true
	return &anomv1.Ok{}, nil
}

// AddDistributor records a root-signed distributor certificate. A
// distributor added again gets its new certificate and quota, keeping its
// count of issued codes.
func (s *Server) AddDistributor(ctx context.Context, c *identity.DistributorCertificate) error {
	if err := c.Verify(s.rootPub); err != nil {
		return fmt.Errorf("adding distributor: %w", err)
	}
	for {
		e, err := s.st.Get(ctx, bucketDistributors, c.Name)
		if errors.Is(err, store.ErrNotFound) {
			_, err = s.st.Create(ctx, bucketDistributors, c.Name, encodeRecord(distributorRecord{Cert: c.Encode()}))
			if errors.Is(err, store.ErrExists) {
				continue
			}
			return err
		}
		if err != nil {
			return fmt.Errorf("adding distributor %q: %w", c.Name, err)
		}
		var rec distributorRecord
		if err := decodeRecord(e, &rec); err != nil {
			return err
		}
		rec.Cert = c.Encode()
		_, err = s.st.Update(ctx, bucketDistributors, c.Name, encodeRecord(rec), e.Revision)
		if errors.Is(err, store.ErrRevisionMismatch) {
			continue
		}
		return err
	}
}

// ErrQuota is returned by ImportCodes when a batch exceeds the
// distributor's quota.
var ErrQuota = errors.New("server: distributor quota exceeded")

// ImportCodes records a distributor's signed batch of activation codes,
// within its quota. Importing the same batch again adds nothing.
func (s *Server) ImportCodes(ctx context.Context, b *identity.CodeBatch) error {
	rec, rev, err := s.distributor(ctx, b.Distributor)
	if err != nil {
		return err
	}
	cert, err := identity.DecodeDistributorCertificate(rec.Cert)
	if err != nil {
		return fmt.Errorf("importing codes: %w: %w", store.ErrCorrupt, err)
	}
	if err := b.Verify(s.rootPub, cert); err != nil {
		return fmt.Errorf("importing codes: %w", err)
	}
	value := encodeRecord(codeRecord{Distributor: b.Distributor, Months: int(b.Months), Expires: b.Expires.Unix()})
	for i := 0; i < len(b.Hashes); {
		var ops []store.Op
		j := i
		for ; j < len(b.Hashes) && len(ops) < store.MaxTxnOps-1; j++ {
			key := hex.EncodeToString(b.Hashes[j][:])
			if _, err := s.st.Get(ctx, bucketCodes, key); err == nil {
				continue // imported before
			} else if !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("importing codes: %w", err)
			}
			ops = append(ops, store.CreateOp(bucketCodes, key, value))
		}
		if len(ops) > 0 {
			if rec.Issued+uint32(len(ops)) > cert.Quota {
				return fmt.Errorf("importing codes of %q: %w: %d issued, %d more, quota %d", b.Distributor, ErrQuota, rec.Issued, len(ops), cert.Quota)
			}
			rec.Issued += uint32(len(ops))
			revs, err := s.st.Txn(ctx, append([]store.Op{store.UpdateOp(bucketDistributors, b.Distributor, encodeRecord(rec), rev)}, ops...)...)
			if err != nil {
				return fmt.Errorf("importing codes: %w", err)
			}
			rev = revs[0]
		}
		i = j
	}
	s.log.Info("activation codes imported", "distributor", b.Distributor, "count", len(b.Hashes), "months", b.Months)
	return nil
}

func (s *Server) distributor(ctx context.Context, name string) (distributorRecord, uint64, error) {
	var rec distributorRecord
	e, err := s.st.Get(ctx, bucketDistributors, name)
	if err != nil {
		return rec, 0, fmt.Errorf("loading distributor %q: %w", name, err)
	}
	return rec, e.Revision, decodeRecord(e, &rec)
}

// SpoolKind says what a spool file holds.
type SpoolKind byte

// Spool file kinds; each file is the kind byte followed by the encoded,
// signed object.
const (
	SpoolDistributor SpoolKind = 1 // identity.DistributorCertificate
	SpoolCodes       SpoolKind = 2 // identity.CodeBatch
	SpoolRevocation  SpoolKind = 3 // identity.Revocation
	SpoolWipe        SpoolKind = 4 // identity.WipeCommand
	SpoolApproval    SpoolKind = 5 // identity.DeviceApproval by the root
)

const spoolSuffix = ".req"

// WriteSpool writes an admin request for a server using dir as its
// SpoolDir (atomically, mode 0600). Requests are signed objects, checked
// by the server against the root key, and applied in name order.
func WriteSpool(dir string, kind SpoolKind, payload []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("writing spool request: %w", err)
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("writing spool request: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("writing spool request: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append([]byte{byte(kind)}, payload...)); err != nil {
		tmp.Close()
		return fmt.Errorf("writing spool request: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing spool request: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing spool request: %w", err)
	}
	name := fmt.Sprintf("%020d-%s%s", nowNano(), hex.EncodeToString(rnd[:]), spoolSuffix)
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("writing spool request: %w", err)
	}
	return nil
}

// ProcessSpool applies the requests waiting in SpoolDir and removes them;
// a request that fails verification is renamed to .failed.
func (s *Server) ProcessSpool(ctx context.Context) error {
	if s.cfg.SpoolDir == "" {
		return nil
	}
	ents, err := os.ReadDir(s.cfg.SpoolDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("reading spool: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), spoolSuffix) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(s.cfg.SpoolDir, n)
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("reading spool request %s: %w", n, err)
		}
		if err := s.applySpool(ctx, b); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Error("admin request failed", "file", n, "err", err)
			if err := os.Rename(p, p+".failed"); err != nil {
				return fmt.Errorf("setting aside spool request %s: %w", n, err)
			}
			continue
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("removing spool request %s: %w", n, err)
		}
	}
	return nil
}

func (s *Server) applySpool(ctx context.Context, b []byte) error {
	if len(b) < 1 {
		return errors.New("empty request")
	}
	payload := b[1:]
	switch SpoolKind(b[0]) {
	case SpoolDistributor:
		c, err := identity.DecodeDistributorCertificate(payload)
		if err != nil {
			return err
		}
		return s.AddDistributor(ctx, c)
	case SpoolCodes:
		batch, err := identity.DecodeCodeBatch(payload)
		if err != nil {
			return err
		}
		return s.ImportCodes(ctx, batch)
	case SpoolRevocation:
		r, err := identity.DecodeRevocation(payload)
		if err != nil {
			return err
		}
		return s.Revoke(ctx, r)
	case SpoolWipe:
		w, err := identity.DecodeWipeCommand(payload)
		if err != nil {
			return err
		}
		return s.Wipe(ctx, w)
	case SpoolApproval:
		a, err := identity.DecodeDeviceApproval(payload)
		if err != nil {
			return err
		}
		return s.ApproveDevice(ctx, a)
	}
	return fmt.Errorf("unknown request kind %d", b[0])
}

func nowNano() int64 { return timeNow().UnixNano() }

var timeNow = time.Now
