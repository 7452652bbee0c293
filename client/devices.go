package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"anom/identity"
	"anom/internal/translog"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// Several devices per user. A new device of an existing user calls
// PublishPairing (pairing.go) before Activate and shows the short code and
// fingerprint of its pairing request; one of the user's devices fetches
// the request by that code (LookupPairing), the user compares the
// fingerprints, and ApproveDevice signs the approval and hands it to the
// server. (Without the server's help, BeginPairing gives the request's
// long code, which identity.ParsePairingCode reads on the approving
// device.) The new device then activates with its own activation code
// under the same username.
//
// Every device watches the transparency log for devices under its user's
// name (EventNewOwnDevice, with the approval found in the log). A new
// device approved by one of the user's devices is added to every group
// the device is in; one approved by the admin only (or without any
// approval found) is not, since the user may not know it: AddOwnDevices
// adds it once the user confirms.

// recPairing holds a not yet activated device's pairing: its key seed and
// its request.
const recPairing = "pairing"

// ErrPairing is returned when a pairing does not fit the activation or
// the approving device.
var ErrPairing = errors.New("client: pairing mismatch")

func encodePairing(seed []byte, req *identity.PairingRequest) []byte {
	b := []byte{recordVersion}
	b = appendVec32(b, seed)
	return appendStr8(b, req.Code())
}

func decodePairing(b []byte) ([]byte, *identity.PairingRequest, error) {
	d := decoder{b: b, bad: ErrCorrupt}
	if v := d.u8(); d.err == nil && v != recordVersion {
		d.fail("pairing record version %d", v)
	}
	seed := d.vec32(ed25519.SeedSize)
	code := d.str8()
	if err := d.done(); err != nil {
		return nil, nil, fmt.Errorf("decoding pairing record: %w", err)
	}
	req, err := identity.ParsePairingCode(code)
	if err != nil || len(seed) != ed25519.SeedSize || !bytes.Equal(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey), req.Key) {
		return nil, nil, fmt.Errorf("decoding pairing record: %w", ErrCorrupt)
	}
	return seed, req, nil
}

// BeginPairing prepares a device that is not yet activated to become a
// further device of username: it makes the device's signature key and
// returns the pairing request, whose Code and Fingerprint the device
// shows. Activate then uses this key and must be for the same username.
// Calling it again replaces the pairing.
func (c *Client) BeginPairing(username string) (*identity.PairingRequest, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return nil, ErrWiped
	}
	if c.dev != nil {
		return nil, errors.New("pairing: device already activated")
	}
	seed, pub, err := c.suite().GenerateSignatureKey(c.rand)
	if err != nil {
		return nil, fmt.Errorf("pairing: %w", err)
	}
	req, err := identity.NewPairingRequest(username, ed25519.PublicKey(pub), c.rand)
	if err != nil {
		return nil, err
	}
	if err := c.v.put(recPairing, encodePairing(seed, req)); err != nil {
		return nil, fmt.Errorf("pairing: %w", err)
	}
	return req, nil
}

// activationKey returns the signature key for activating as username: the
// pairing's if BeginPairing was called, else a new one.
func (c *Client) activationKey(username string) (seed, pub []byte, err error) {
	raw, err := c.v.get(recPairing)
	if errors.Is(err, ErrNotFound) {
		return c.suite().GenerateSignatureKey(c.rand)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("loading pairing: %w", err)
	}
	seed, req, err := decodePairing(raw)
	if err != nil {
		return nil, nil, err
	}
	name, err := identity.CanonicalUsername(username)
	if err != nil {
		return nil, nil, err
	}
	if name != req.Username {
		return nil, nil, fmt.Errorf("activating as %q: %w: the pairing is for %q", name, ErrPairing, req.Username)
	}
	return seed, req.Key, nil
}

// ApproveDevice approves a new device of this user, from the pairing
// request its screen shows (identity.ParsePairingCode); the user should
// first compare req.Fingerprint with the new device's. The server keeps
// the approval until the new device activates, within a day.
func (c *Client) ApproveDevice(ctx context.Context, req *identity.PairingRequest) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn, err := c.ready()
	if err != nil {
		return err
	}
	if req.Username != c.dev.username {
		return fmt.Errorf("approving a device of %q: %w: this device is %q's", req.Username, ErrPairing, c.dev.username)
	}
	cert, err := identity.DecodeDeviceCertificate(c.dev.cert)
	if err != nil {
		return fmt.Errorf("%w: own certificate: %w", ErrCorrupt, err)
	}
	a, err := identity.ApproveDevice(ed25519.NewKeyFromSeed(c.sigPriv), cert, req, c.now())
	if err != nil {
		return err
	}
	if _, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_ApproveDevice{ApproveDevice: &anomv1.ApproveDevice{Approval: a.Encode()}}}); err != nil {
		return fmt.Errorf("approving device: %w", err)
	}
	c.log.Info("approved a new device", "fingerprint", req.Fingerprint())
	return nil
}

// ownDevice is a device found in the log under this user's name.
type ownDevice struct {
	cert     *identity.DeviceCertificate
	approval *identity.DeviceApproval // nil if none was logged
}

// logSubjectFor is the monitor's Subject for the network of root: it also
// checks every logged online key certificate (directory, countersigning,
// admin keys) against the root, so a log that carries an online key the
// root did not certify fails the scan and the device stops trusting it.
func logSubjectFor(root identity.RootPublicKey) func(translog.Entry) (string, error) {
	return func(e translog.Entry) (string, error) {
		if e.Kind == translog.KindOnlineKey {
			oc, err := identity.OnlineKeyOfEntry(e)
			if err != nil {
				return "", err
			}
			if err := oc.Verify(root, oc.Role, oc.NotBefore); err != nil {
				return "", fmt.Errorf("a logged online key does not chain to the network root: %w", err)
			}
			return "", nil
		}
		return logSubjectAll(e)
	}
}

// logSubjectAll names the user a transparency-log entry concerns:
// certificates and approvals.
func logSubjectAll(e translog.Entry) (string, error) {
	if e.Kind == translog.KindDeviceApproval {
		a, err := identity.DecodeDeviceApproval(e.Payload)
		if err != nil {
			return "", err
		}
		return a.Username, nil
	}
	return logSubject(e)
}

// newOwnDevices turns the log matches of this user into the devices they
// add, with their approvals, and alerts the user of each. Devices logged
// before this device are not alerted: they were there when it joined.
func (c *Client) newOwnDevices(matches []translog.Match) []ownDevice {
	approvals := map[string]*identity.DeviceApproval{}
	var out []ownDevice
	for _, m := range matches {
		switch m.Entry.Kind {
		case translog.KindDeviceApproval:
			if a, err := identity.DecodeDeviceApproval(m.Entry.Payload); err == nil {
				approvals[string(a.Key)] = a
			}
		case translog.KindDeviceCertificate:
			cert, err := identity.DecodeDeviceCertificate(m.Entry.Payload)
			if err != nil || cert.DeviceID == c.dev.id || m.Index < c.dev.logIndex {
				continue
			}
			d := ownDevice{cert: cert, approval: approvals[string(cert.Key)]}
			how := "without an approval in the log"
			switch {
			case d.approval == nil:
			case d.approval.Kind == identity.ApproverRoot:
				how = "approved by the network admin"
			case d.approval.Approver == c.dev.id:
				how = "approved by this device"
			default:
				how = "approved by device " + d.approval.Approver.String()
			}
			c.log.Warn("a new device under this user's name", "device", cert.DeviceID, "log_index", m.Index, "approval", how)
			c.emit(Event{Type: EventNewOwnDevice, Device: cert, Approval: d.approval,
				Text: fmt.Sprintf("device %s was added under %s, %s", cert.DeviceID, cert.Username, how)})
			out = append(out, d)
		}
	}
	return out
}

// welcomeOwnDevices adds the new devices approved by one of the user's
// devices to every group this device is in.
func (c *Client) welcomeOwnDevices(ctx context.Context, cn *conn, news []ownDevice) error {
	if len(news) == 0 {
		return nil
	}
	own, err := c.lookup(ctx, cn, c.dev.username)
	if err != nil {
		return err
	}
	self, err := identity.DecodeDeviceCertificate(c.dev.cert)
	if err != nil {
		return fmt.Errorf("%w: own certificate: %w", ErrCorrupt, err)
	}
	byID := map[identity.DeviceID]*identity.DeviceCertificate{self.DeviceID: self}
	for _, d := range own {
		byID[d.DeviceID] = d
	}
	var add []*identity.DeviceCertificate
	for _, n := range news {
		a := n.approval
		if a == nil || a.Kind != identity.ApproverDevice || !bytes.Equal(a.Key, n.cert.Key) {
			continue
		}
		approver, ok := byID[a.Approver]
		if !ok || a.Verify(c.dev.net.Root, approver) != nil {
			c.log.Warn("not adding a device whose approval does not verify", "device", n.cert.DeviceID)
			continue
		}
		if cur, ok := byID[n.cert.DeviceID]; ok && bytes.Equal(cur.Encode(), n.cert.Encode()) {
			add = append(add, cur) // checked in the log, valid, not revoked
		}
	}
	return c.addDevicesToGroups(ctx, cn, add)
}

// AddOwnDevices adds every current device of this user (checked in the
// transparency log) to every group this device is in where it is
// missing; for a device the user confirmed after an EventNewOwnDevice
// that was not added by itself.
func (c *Client) AddOwnDevices(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn, err := c.ready()
	if err != nil {
		return err
	}
	own, err := c.lookup(ctx, cn, c.dev.username)
	if err != nil {
		return err
	}
	return c.addDevicesToGroups(ctx, cn, own)
}

// addDevicesToGroups adds the devices to every active group that lacks
// them. Another device of the user may add them at the same time: a
// failed commit is forgiven when the devices turn out to be in.
func (c *Client) addDevicesToGroups(ctx context.Context, cn *conn, devs []*identity.DeviceCertificate) error {
	var errs []error
	for _, gs := range c.groups {
		if !gs.g.Active() {
			continue
		}
		if err := c.fetchGroup(ctx, cn, gs.g.GroupID(), gs.cursor+1); err != nil {
			errs = append(errs, err)
			continue
		}
		missing := c.missing(gs, devs)
		if len(missing) == 0 {
			continue
		}
		var kps []*mls.KeyPackage
		for _, d := range missing {
			kp, err := c.claim(ctx, cn, d)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			kps = append(kps, kp)
		}
		if len(kps) == 0 {
			continue
		}
		err := c.commit(ctx, cn, gs, func() mls.CommitOptions { return mls.CommitOptions{Add: kps} })
		if err != nil {
			if ferr := c.fetchGroup(ctx, cn, gs.g.GroupID(), gs.cursor+1); ferr == nil && len(c.missing(gs, devs)) == 0 {
				continue // another device of the user added them first
			}
			errs = append(errs, fmt.Errorf("adding own devices to group %x: %w", gs.g.GroupID(), err))
		} else if err := c.resendGroupName(ctx, cn, gs); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// missing returns the devices not in the group (this device aside).
func (c *Client) missing(gs *groupState, devs []*identity.DeviceCertificate) []*identity.DeviceCertificate {
	present := map[string]bool{}
	for _, m := range MembersOf(gs.g, c.decoder()) {
		present[m.DeviceID] = true
	}
	var out []*identity.DeviceCertificate
	for _, d := range devs {
		if d.DeviceID != c.dev.id && !present[d.DeviceID.String()] {
			out = append(out, d)
		}
	}
	return out
}

// deviceAdded handles the server's push that a device was added under
// this user's name: the log is checked (and the user alerted), then the
// device is added to the groups if one of the user's devices approved it.
func (c *Client) deviceAdded(ctx context.Context, cn *conn) error {
	news, err := c.watchLog(ctx, cn)
	if err != nil {
		return err
	}
	return c.welcomeOwnDevices(ctx, cn, news)
}
