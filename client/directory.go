package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"anom/identity"
	"anom/internal/translog"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// ErrNoDevices is returned when a user has no device that can be added.
var ErrNoDevices = errors.New("client: user has no usable device")

// ErrNotInLog is returned when a peer's certificate is not proven to be in
// the transparency log.
var ErrNotInLog = errors.New("client: device not proven in the transparency log")

// lookup returns the valid, unrevoked devices of username, each checked
// against the root and proven to be in the transparency log at the
// monitor's verified head.
func (c *Client) lookup(ctx context.Context, cn *conn, username string) ([]*identity.DeviceCertificate, error) {
	for attempt := 0; ; attempt++ {
		resp, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_Lookup{Lookup: &anomv1.Lookup{Username: username}}})
		if err != nil {
			return nil, fmt.Errorf("looking up %s: %w", username, err)
		}
		dir := resp.GetDirectory()
		if dir == nil {
			return nil, fmt.Errorf("looking up %s: %w: no directory", username, ErrProtocol)
		}
		var sth translog.SignedTreeHead
		if err := sth.UnmarshalBinary(dir.GetTreeHead()); err != nil {
			return nil, fmt.Errorf("looking up %s: %w", username, err)
		}
		if sth.Size != c.monitor.Head().Size {
			if err := c.updateHead(ctx, cn); err != nil {
				return nil, err
			}
			if sth.Size != c.monitor.Head().Size {
				if attempt >= 3 {
					return nil, fmt.Errorf("looking up %s: %w: the log keeps moving", username, ErrNotInLog)
				}
				continue // the log grew in between: ask again
			}
		}
		var out []*identity.DeviceCertificate
		for _, d := range dir.GetDevices() {
			if d.GetRevoked() {
				continue
			}
			cert, err := c.checkDevice(ctx, cn, username, d)
			if err != nil {
				return nil, err
			}
			if cert != nil {
				out = append(out, cert)
			}
		}
		return out, nil
	}
}

// checkDevice verifies one directory entry; an expired certificate is
// skipped (nil, nil).
func (c *Client) checkDevice(ctx context.Context, cn *conn, username string, d *anomv1.DeviceEntry) (*identity.DeviceCertificate, error) {
	cert, err := identity.DecodeDeviceCertificate(d.GetCertificate())
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", username, err)
	}
	if err := cert.VerifySignature(c.dev.net.Root); err != nil {
		return nil, fmt.Errorf("looking up %s: device %s: %w", username, cert.DeviceID, err)
	}
	if err := cert.Verify(c.dev.net.Root, c.now()); err != nil {
		c.log.Info("skipping an invalid device", "username", username, "device", cert.DeviceID, "err", err)
		return nil, nil
	}
	if cert.Username != username {
		return nil, fmt.Errorf("looking up %s: %w: directory returned a device of %s", username, ErrProtocol, cert.Username)
	}
	if err := c.proveInLog(ctx, cn, d.GetCertificate(), d.GetLogIndex(), d.GetInclusionProof(), d.GetLogEntry()); err != nil {
		return nil, fmt.Errorf("device %s of %s: %w", cert.DeviceID, username, err)
	}
	return cert, nil
}

// proveInLog checks that the log entry at index is the certificate and
// that the inclusion proof holds against the monitor's verified head. The
// entry is the one the directory sent (raw); a server that sends none is
// asked for it.
func (c *Client) proveInLog(ctx context.Context, cn *conn, cert []byte, index uint64, rawProof, raw []byte) error {
	var proof translog.InclusionProof
	if err := proof.UnmarshalBinary(rawProof); err != nil {
		return fmt.Errorf("%w: %w", ErrNotInLog, err)
	}
	if proof.Index != index {
		return fmt.Errorf("%w: proof for entry %d, directory says %d", ErrNotInLog, proof.Index, index)
	}
	if len(raw) == 0 {
		resp, err := cn.call(ctx, logEntriesRequest(index, index+1))
		if err != nil {
			return fmt.Errorf("reading log entry %d: %w", index, err)
		}
		le := logEntriesOf(resp)
		if le == nil || le.GetStart() != index || len(le.GetEntries()) != 1 {
			return fmt.Errorf("reading log entry %d: %w", index, ErrProtocol)
		}
		raw = le.GetEntries()[0]
	}
	e, err := translog.DecodeEntry(raw)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotInLog, err)
	}
	if e.Kind != translog.KindDeviceCertificate || !bytes.Equal(e.Payload, cert) {
		return fmt.Errorf("%w: entry %d is not this certificate", ErrNotInLog, index)
	}
	if err := c.monitor.VerifyInclusion(raw, proof); err != nil {
		return fmt.Errorf("%w: %w", ErrNotInLog, err)
	}
	return nil
}

// Devices returns the checked devices of a user (see lookup). It needs a
// connection.
func (c *Client) Devices(ctx context.Context, username string) ([]*identity.DeviceCertificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dev == nil {
		return nil, ErrNotActivated
	}
	cn, err := c.current()
	if err != nil {
		return nil, err
	}
	return c.lookup(ctx, cn, username)
}

// certDecoder is the CredentialDecoder of anom: a credential is a device
// certificate signed by the network root, valid now, for the leaf's key.
type certDecoder struct {
	root identity.RootPublicKey
	now  func() time.Time
}

func (d certDecoder) DecodeCredential(cred *mls.Credential, key []byte) (DeviceInfo, error) {
	cert, err := identity.CertificateFromCredential(cred)
	if err != nil {
		return DeviceInfo{}, err
	}
	if err := cert.VerifySignature(d.root); err != nil {
		return DeviceInfo{}, err
	}
	if !bytes.Equal(cert.Key, key) {
		return DeviceInfo{}, fmt.Errorf("%w: certificate for another key", identity.ErrInvalidCredential)
	}
	return DeviceInfo{DeviceID: cert.DeviceID.String(), Username: cert.Username, Expires: cert.NotAfter}, nil
}

// SafetyNumber returns the safety number between this device and another
// device's certificate.
func (c *Client) SafetyNumber(peer *identity.DeviceCertificate) (SafetyNumber, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dev == nil {
		return SafetyNumber{}, ErrNotActivated
	}
	return ComputeSafetyNumber(c.sigPriv.PublicKey(), peer.Key), nil
}
