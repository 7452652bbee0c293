package server

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"anom/identity"
	"anom/internal/store"
	"anom/internal/translog"
)

// Online keys. The server holds no root key: it runs with a directory key
// and an escrow countersigning key, each certified by the (offline) root.
// At start it checks each certificate against the root and appends it to
// the transparency log unless it is there already; tree heads then carry
// the directory key's certificate entry and its inclusion proof, so
// clients, custodians and the archive accept only logged directory keys.

// bucketOnlineKeys maps "<role>/<serial>/<key hex>" to the log index (8
// bytes) of an online key certificate.
const bucketOnlineKeys = "online-keys"

func onlineKeyName(c *identity.OnlineKeyCertificate) string {
	return fmt.Sprintf("%d/%016x/%s", uint8(c.Role), c.Serial, hex.EncodeToString(c.Key))
}

// logOnlineKey appends an online key certificate to the transparency log
// unless it is there, and returns its index. The certificate must chain to
// the root with role and be valid now.
func (s *Server) logOnlineKey(ctx context.Context, c *identity.OnlineKeyCertificate, role identity.KeyRole) (uint64, error) {
	if err := c.Verify(s.rootPub, role, s.now()); err != nil {
		return 0, fmt.Errorf("loading %v key: %w", role, err)
	}
	key := onlineKeyName(c)
	s.tlogMu.Lock()
	defer s.tlogMu.Unlock()
	e, err := s.st.Get(ctx, bucketOnlineKeys, key)
	switch {
	case err == nil && len(e.Value) == 8:
		idx := binary.BigEndian.Uint64(e.Value)
		return idx, s.syncTransparencyLog(ctx, idx) // logged perhaps by another server
	case err == nil:
		return 0, fmt.Errorf("loading %v key: %w: log index of %d bytes", role, store.ErrCorrupt, len(e.Value))
	case !errors.Is(err, store.ErrNotFound):
		return 0, fmt.Errorf("loading %v key: %w", role, err)
	}
	idx, err := s.tlog.Append(ctx, translog.Entry{Kind: translog.KindOnlineKey, Payload: c.Encode()})
	if err != nil {
		return 0, fmt.Errorf("logging %v key certificate: %w", role, err)
	}
	if _, err := s.st.Create(ctx, bucketOnlineKeys, key, binary.BigEndian.AppendUint64(nil, idx)); err != nil {
		if !errors.Is(err, store.ErrExists) {
			return 0, fmt.Errorf("recording log index of %v key certificate: %w", role, err)
		}
		// Another server of the store logged it at the same time: its
		// entry is the one every server names (ours stays, a duplicate).
		e, err := s.st.Get(ctx, bucketOnlineKeys, key)
		if err != nil {
			return 0, fmt.Errorf("loading %v key: %w", role, err)
		}
		if len(e.Value) != 8 {
			return 0, fmt.Errorf("loading %v key: %w: log index of %d bytes", role, store.ErrCorrupt, len(e.Value))
		}
		idx = binary.BigEndian.Uint64(e.Value)
		if err := s.syncTransparencyLog(ctx, idx); err != nil {
			return 0, err
		}
		return idx, nil
	}
	s.log.Info("online key certificate appended to the transparency log", "role", role.String(), "serial", c.Serial,
		"key", hex.EncodeToString(c.Key), "not_after", c.NotAfter, "index", idx)
	return idx, nil
}

// initDirectoryKey logs the directory key's certificate and makes the key
// sign tree heads.
func (s *Server) initDirectoryKey(ctx context.Context) error {
	idx, err := s.logOnlineKey(ctx, s.dir.Certificate(), identity.RoleDirectory)
	if err != nil {
		return err
	}
	if err := s.tlog.SetSigner(ctx, s.dir.Key().Signer(), idx); err != nil {
		return err
	}
	s.dirIdx = idx
	return nil
}

// logEntry reads the encoded log entry at index (appended perhaps by
// another server of the store).
func (s *Server) logEntry(ctx context.Context, index uint64) ([]byte, error) {
	if err := s.syncTransparencyLog(ctx, index); err != nil {
		return nil, err
	}
	raw, err := s.tlog.Entries(ctx, index, index+1)
	if err != nil {
		return nil, err
	}
	return raw[0], nil
}

// EscrowServerID is the server id of countersignatures made with the key
// of c: "<name>/<serial>", so custodians and the archive find the
// certificate (and so the key) of every countersignature.
func EscrowServerID(c *identity.OnlineKeyCertificate) string {
	return fmt.Sprintf("%s/%d", c.Name, c.Serial)
}
