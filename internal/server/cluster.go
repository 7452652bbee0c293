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

// Several servers may share one store (a cluster). What one of them
// decides, the store decides: conditional appends to the group logs
// (groups.go, grouplog.go), each commit appended with its entry in the
// group's commit log, so that a server finds the commits it missed
// without reading the messages around them, and the group's writers on
// different servers take turns (waitTurn); revision-checked updates of the escrow
// sequence, slot claims by key creation (escrow.go), conditional appends
// to the transparency log, which every server catches up with
// (translog.Log.Sync). What one server learns, the others learn through
// the store: revocations (below) and pushes (fanout.go).

// logRevocations carries, in order, the device IDs (hex) revoked: each
// server waits on it, marks the device revoked and closes its sessions.
// The revocation itself is the key in bucketRevoked, written first; a
// crash in between is made good by the next revocation of the device,
// by the sweep (which reloads bucketRevoked) and at every
// authentication, which reads bucketRevoked.
const logRevocations = "revocations"

// announceRevocation tells every server of the store that a device is
// revoked.
func (s *Server) announceRevocation(ctx context.Context, id identity.DeviceID) {
	if _, err := s.st.Append(ctx, logRevocations, []byte(id.String())); err != nil {
		s.log.Warn("announcing a revocation to the cluster", "device", id.String(), "err", err)
	}
}

// watchRevocations applies the revocations any server announces after
// sequence after, until ctx ends.
func (s *Server) watchRevocations(ctx context.Context, after uint64) {
	for ctx.Err() == nil {
		es, err := s.st.Read(ctx, logRevocations, after+1, 0)
		if err == nil && len(es) == 0 {
			_, err = s.st.Wait(ctx, logRevocations, after)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("watching revocations", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		for _, e := range es {
			after = e.Seq
			id, err := identity.ParseDeviceID(string(e.Data))
			if err != nil {
				s.log.Warn("announced revocation", "seq", e.Seq, "err", fmt.Errorf("%w: %w", store.ErrCorrupt, err))
				continue
			}
			if !s.isRevoked(id) { // else this server revoked it, or learnt it already
				s.setRevoked(id, nil)
			}
		}
	}
}

// revokedInStore reports whether the store has a revocation of the
// device (made by any server); one found is applied here too.
func (s *Server) revokedInStore(ctx context.Context, id identity.DeviceID) (bool, error) {
	if s.isRevoked(id) {
		return true, nil
	}
	_, err := s.st.Get(ctx, bucketRevoked, id.String())
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, storeError(err, "revocation of "+id.String())
	}
	s.setRevoked(id, nil)
	return true, nil
}

// revocationsKeep is how long announcements stay in logRevocations: a
// server that was away longer loaded every revocation from bucketRevoked
// when it started.
const revocationsKeep = 24 * time.Hour

// sweepRevocations applies every stored revocation (in case an
// announcement was lost), closing the sessions of revoked devices, and
// trims old announcements.
func (s *Server) sweepRevocations(ctx context.Context) error {
	err := s.loadRevoked(ctx, func(id identity.DeviceID) {
		if !s.isRevoked(id) {
			s.setRevoked(id, nil)
		}
	})
	if err != nil {
		return err
	}
	if err := s.st.TrimBefore(ctx, logRevocations, s.now().Add(-revocationsKeep)); err != nil {
		return fmt.Errorf("trimming revocation announcements: %w", err)
	}
	return nil
}

// watchTransparencyLog keeps this server's transparency log up to date
// with the entries other servers append, so its tree heads and proofs
// cover them.
func (s *Server) watchTransparencyLog(ctx context.Context) {
	for ctx.Err() == nil {
		_, err := s.st.Wait(ctx, logTranslog, s.tlog.Size())
		if err == nil {
			_, err = s.tlog.Sync(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("following the transparency log", "err", err)
			sleepCtx(ctx, time.Second)
		}
	}
}

// syncTransparencyLog catches up with other servers' appends when a
// request names an index beyond this server's log.
func (s *Server) syncTransparencyLog(ctx context.Context, index uint64) error {
	if index < s.tlog.Size() {
		return nil
	}
	if _, err := s.tlog.Sync(ctx); err != nil {
		return fmt.Errorf("catching up with the transparency log: %w", err)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// refuseRevoked is the answer to a revoked device.
func refuseRevoked(id identity.DeviceID) error {
	return errorf(anomv1.ErrorCode_ERROR_CODE_REVOKED, "device %s is revoked", id)
}
