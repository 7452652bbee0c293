package client

import (
	"context"
	"errors"
	"fmt"

	"anom/identity"
	"anom/internal/translog"
	"anom/mls"
)

// A device that is revoked (by the administrator, or after it confirmed
// a remote wipe) or whose certificate has expired can no longer reach the
// server, but it stays in the tree of its groups (and is listed as a
// member) until a member removes it. Every member can check either fact
// itself, trusting no one: the expiry is in the certificate, and a
// revocation is signed by the directory key under the network root and
// read from the transparency log (whose entries the monitor checks
// against the signed head). The first member online after it removes the
// device from each group, and the members are alerted
// (EventDeviceRemoved).

// recRevoked holds the IDs of the devices revoked in the network, as read
// from the transparency log: device IDs one after the other.
const recRevoked = "revoked-devices"

// removedDevice is a device removed from a group by another member.
type removedDevice struct {
	group  []byte
	member Member
}

// maxUnexplained bounds the removals kept in memory until their reason is
// read from the log.
const maxUnexplained = 1024

// goneMember is a member to remove, with why.
type goneMember struct {
	Member
	why string
}

// revokedDevices returns the devices this device knows to be revoked.
func (c *Client) revokedDevices() (map[string]bool, error) {
	raw, err := c.v.get(recRevoked)
	if errors.Is(err, ErrNotFound) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading revoked devices: %w", err)
	}
	if len(raw)%identity.DeviceIDSize != 0 {
		return nil, fmt.Errorf("%w: revoked devices record of %d bytes", ErrCorrupt, len(raw))
	}
	out := make(map[string]bool, len(raw)/identity.DeviceIDSize)
	for i := 0; i < len(raw); i += identity.DeviceIDSize {
		var id identity.DeviceID
		copy(id[:], raw[i:])
		out[id.String()] = true
	}
	return out, nil
}

// noteRevocations keeps the devices revoked by the revocations among new
// transparency-log entries (already checked against the signed head);
// each revocation must verify under the network root.
func (c *Client) noteRevocations(entries [][]byte) error {
	var add []byte
	for _, raw := range entries {
		e, err := translog.DecodeEntry(raw)
		if err != nil || e.Kind != translog.KindRevocation {
			continue
		}
		r, err := identity.DecodeRevocation(e.Payload)
		if err != nil {
			c.log.Warn("a logged revocation does not decode", "err", err)
			continue
		}
		if err := r.Verify(c.dev.net.Root); err != nil {
			c.log.Warn("a logged revocation does not verify", "device", r.DeviceID, "err", err)
			continue
		}
		add = append(add, r.DeviceID[:]...)
		if u, ok := c.unexplained[r.DeviceID.String()]; ok {
			delete(c.unexplained, r.DeviceID.String())
			c.alertRemoved(u.group, goneMember{Member: u.member, why: "it was revoked"})
		}
	}
	if len(add) == 0 {
		return nil
	}
	raw, err := c.v.get(recRevoked)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("reading revoked devices: %w", err)
	}
	if err := c.v.put(recRevoked, append(raw, add...)); err != nil {
		return fmt.Errorf("keeping revoked devices: %w", err)
	}
	return nil
}

// goneMembers lists the members of a group, other than this device, that
// are revoked or expired.
func (c *Client) goneMembers(gs *groupState, revoked map[string]bool) []goneMember {
	var out []goneMember
	for _, m := range MembersOf(gs.g, c.decoder()) {
		if m.Err != nil || m.Self {
			continue
		}
		if why := c.goneWhy(m, revoked); why != "" {
			out = append(out, goneMember{Member: m, why: why})
		}
	}
	return out
}

func (c *Client) goneWhy(m Member, revoked map[string]bool) string {
	switch {
	case revoked[m.DeviceID]:
		return "it was revoked"
	case !c.now().Before(m.Expires):
		return "its certificate expired on " + m.Expires.UTC().Format("2006-01-02")
	}
	return ""
}

// removeGone removes the revoked and expired devices from every group of
// this device.
func (c *Client) removeGone(ctx context.Context, cn *conn) error {
	revoked, err := c.revokedDevices()
	if err != nil {
		return err
	}
	for _, gs := range c.groups {
		if !gs.g.Active() || len(c.goneMembers(gs, revoked)) == 0 {
			continue
		}
		gid := gs.g.GroupID()
		if err := c.fetchGroup(ctx, cn, gid, gs.cursor+1); err != nil {
			return err
		}
		if !gs.g.Active() {
			continue
		}
		// Another member may have removed them meanwhile (before or
		// during an epoch conflict): only those still there are removed,
		// and alerted of here.
		var gone []goneMember
		err := c.commit(ctx, cn, gs, func() mls.CommitOptions {
			gone = c.goneMembers(gs, revoked)
			var leaves []mls.LeafIndex
			for _, m := range gone {
				leaves = append(leaves, m.Leaf)
			}
			return mls.CommitOptions{Remove: leaves}
		})
		if err != nil {
			return fmt.Errorf("removing revoked and expired devices from group %x: %w", gid, err)
		}
		for _, m := range gone {
			c.alertRemoved(gid, m)
		}
	}
	return nil
}

// membersBefore returns a group's members before a message is handled if
// the message is a commit (to tell what it removed), else nil.
func (c *Client) membersBefore(gs *groupState, msg *mls.MLSMessage) []Member {
	if msg.WireFormat != mls.WirePublicMessage || msg.Public.Content.ContentType != mls.ContentCommit {
		return nil
	}
	return MembersOf(gs.g, c.decoder())
}

// alertRemovedGone alerts of the revoked and expired devices a commit of
// another member removed.
func (c *Client) alertRemovedGone(gid []byte, before []Member, info *mls.CommitInfo) {
	if info == nil || len(info.Removed) == 0 {
		return
	}
	revoked, err := c.revokedDevices()
	if err != nil {
		c.log.Warn("reading revoked devices", "err", err)
		return
	}
	for _, l := range info.Removed {
		for _, m := range before {
			if m.Leaf != l || m.Err != nil || m.Self {
				continue
			}
			if why := c.goneWhy(m, revoked); why != "" {
				c.alertRemoved(gid, goneMember{Member: m, why: why})
				continue
			}
			// Its revocation may not have been read here yet: the
			// alert comes when it is (noteRevocations).
			if c.unexplained == nil {
				c.unexplained = map[string]removedDevice{}
			}
			if len(c.unexplained) < maxUnexplained {
				c.unexplained[m.DeviceID] = removedDevice{group: gid, member: m}
			}
		}
	}
}

func (c *Client) alertRemoved(gid []byte, m goneMember) {
	c.emit(Event{Type: EventDeviceRemoved, Group: gid,
		Text: fmt.Sprintf("device %s of %s was removed: %s", m.DeviceID, m.Username, m.why)})
}
