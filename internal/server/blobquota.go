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

// Blob storage per device, and which devices may still use blobs.
//
// Every upload grant and every stored blob counts against the quota of
// the device it was granted to: an entry "<device hex>/<blob id>" in
// bucketBlobUsage holds its size and until when it counts (a grant: the
// end of its upload window; a blob: its expiry). A grant is refused when
// the device's live entries would exceed Config.BlobQuota bytes or
// Config.MaxBlobsPerDevice entries. The check and the new entry are made
// atomic per device by bumping the device's entry in bucketBlobLocks in
// the same transaction (a concurrent grant fails that condition and
// retries), so the quota holds across sessions and servers sharing the
// store. Entries past their time are deleted by later grants of the
// device and by the sweep.

const (
	bucketBlobUsage = "blobusage" // device hex "/" blob id -> blobUsage
	bucketBlobLocks = "bloblocks" // device hex -> {} (rewritten by every grant: a revision to condition on)
)

// blobUsage is one grant or blob of a device.
type blobUsage struct {
	Size     int64 `json:"size"`
	Until    int64 `json:"until"` // Unix ms: it no longer counts from then
	Uploaded bool  `json:"uploaded,omitempty"`
}

// Defaults of the blob limits in Config.
const (
	DefaultBlobQuota         = 1 << 30
	DefaultMaxBlobsPerDevice = 10000
	DefaultBlobUploadWindow  = time.Hour
)

// grantAttempts bounds the retries of a grant that raced with another of
// the same device.
const grantAttempts = 8

// reserveBlob records a grant of size bytes for blob id to device dev,
// until the end of the upload window, if the device's quota allows it.
func (s *Server) reserveBlob(ctx context.Context, dev identity.DeviceID, id string, size int64, until time.Time) error {
	// Grants of one device on this server wait for each other; the
	// store's condition is for servers sharing the store.
	mu := &s.grantMu[dev[0]%byte(len(s.grantMu))]
	mu.Lock()
	defer mu.Unlock()
	return s.reserveBlobLocked(ctx, dev.String(), id, size, until)
}

func (s *Server) reserveBlobLocked(ctx context.Context, dev, id string, size int64, until time.Time) error {
	for range grantAttempts {
		lock, lockErr := s.st.Get(ctx, bucketBlobLocks, dev)
		if lockErr != nil && !errors.Is(lockErr, store.ErrNotFound) {
			return fmt.Errorf("reserving blob space: %w", lockErr)
		}
		used, count, expired, err := s.blobUsage(ctx, dev)
		if err != nil {
			return err
		}
		if used+size > s.cfg.BlobQuota {
			return errorf(anomv1.ErrorCode_ERROR_CODE_LIMIT_EXCEEDED, "storage quota: %d of %d bytes in use or granted; %d more asked", used, s.cfg.BlobQuota, size)
		}
		if count+1 > s.cfg.MaxBlobsPerDevice {
			return errorf(anomv1.ErrorCode_ERROR_CODE_LIMIT_EXCEEDED, "storage quota: %d blobs and grants, limit %d", count, s.cfg.MaxBlobsPerDevice)
		}
		// Writing the lock entry changes its revision: a grant that read
		// the usage before this one commits fails its condition.
		lockOp := store.CreateOp(bucketBlobLocks, dev, []byte("{}"))
		if lockErr == nil {
			lockOp = store.UpdateOp(bucketBlobLocks, dev, []byte("{}"), lock.Revision)
		}
		ops := []store.Op{lockOp, store.CreateOp(bucketBlobUsage, dev+"/"+id, encodeRecord(blobUsage{Size: size, Until: until.UnixMilli()}))}
		for _, e := range expired[:min(len(expired), store.MaxTxnOps-len(ops))] {
			ops = append(ops, store.DeleteOp(bucketBlobUsage, e.Key, e.Revision))
		}
		_, err = s.st.Txn(ctx, ops...)
		var te *store.TxnError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &te) && te.Index != 1:
			continue // another grant of the device came first, or an expired entry changed
		default:
			return fmt.Errorf("reserving blob space: %w", err)
		}
	}
	return errorf(anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "too many concurrent upload grants; retry")
}

// blobUsage sums a device's live grants and blobs at the server's time
// and returns the entries past their time.
func (s *Server) blobUsage(ctx context.Context, dev string) (used int64, count int, expired []store.Entry, err error) {
	now := s.now().UnixMilli()
	after := ""
	for {
		page, more, err := s.st.List(ctx, bucketBlobUsage, store.ListOptions{Prefix: dev + "/", After: after})
		if err != nil {
			return 0, 0, nil, fmt.Errorf("reading blob usage of %s: %w", dev, err)
		}
		for _, e := range page {
			var u blobUsage
			if err := decodeRecord(e, &u); err != nil {
				return 0, 0, nil, err
			}
			if u.Until <= now {
				expired = append(expired, e)
				continue
			}
			used += u.Size
			count++
		}
		if !more || len(page) == 0 {
			return used, count, expired, nil
		}
		after = page[len(page)-1].Key
	}
}

// recordBlob replaces the grant of blob id by the blob stored: size bytes
// until it expires.
func (s *Server) recordBlob(ctx context.Context, dev, id string, size int64, expires time.Time) error {
	if _, err := s.st.Put(ctx, bucketBlobUsage, dev+"/"+id, encodeRecord(blobUsage{Size: size, Until: expires.UnixMilli(), Uploaded: true})); err != nil {
		return fmt.Errorf("recording blob usage: %w", err)
	}
	return nil
}

// sweepBlobUsage deletes the usage entries past their time.
func (s *Server) sweepBlobUsage(ctx context.Context) error {
	now := s.now().UnixMilli()
	after := ""
	for {
		page, more, err := s.st.List(ctx, bucketBlobUsage, store.ListOptions{After: after})
		if err != nil {
			return fmt.Errorf("sweeping blob usage: %w", err)
		}
		for _, e := range page {
			var u blobUsage
			if err := decodeRecord(e, &u); err != nil || u.Until <= now {
				if err := s.st.Delete(ctx, bucketBlobUsage, e.Key, e.Revision); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrRevisionMismatch) {
					return fmt.Errorf("sweeping blob usage: %w", err)
				}
			}
		}
		if !more || len(page) == 0 {
			return nil
		}
		after = page[len(page)-1].Key
	}
}

// Why a device may not use blobs.
var (
	errBlobDeviceRevoked = errors.New("device revoked")
	errBlobDeviceWiped   = errors.New("device wiped")
	errBlobDeviceExpired = errors.New("device certificate expired")
	errBlobDeviceUnknown = errors.New("unknown device")
)

// blobDevice returns the certificate of a device that may still use
// blobs: known, not revoked, not ordered wiped, its certificate not
// expired. It is checked on every upload and download, so a token stops
// working the moment its device does.
func (s *Server) blobDevice(ctx context.Context, id identity.DeviceID) (*identity.DeviceCertificate, error) {
	if s.isRevoked(id) {
		return nil, errBlobDeviceRevoked
	}
	devHex := id.String()
	rec, _, err := s.deviceRecord(ctx, devHex)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errBlobDeviceUnknown
	}
	if err != nil {
		return nil, err
	}
	cert, err := identity.DecodeDeviceCertificate(rec.Cert)
	if err != nil {
		return nil, fmt.Errorf("stored certificate of %s: %w: %w", devHex, store.ErrCorrupt, err)
	}
	if !s.now().Before(cert.NotAfter) {
		return nil, errBlobDeviceExpired
	}
	if _, err := s.st.Get(ctx, bucketWipes, devHex); err == nil {
		return nil, errBlobDeviceWiped
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("checking pending wipe of %s: %w", devHex, err)
	}
	return cert, nil
}

// deviceRefused says whether err is a device that may not use blobs
// (rather than the server failing).
func deviceRefused(err error) bool {
	for _, e := range []error{errBlobDeviceRevoked, errBlobDeviceWiped, errBlobDeviceExpired, errBlobDeviceUnknown} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
