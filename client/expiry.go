package client

import (
	"context"
	"fmt"

	"anom/mls"
)

// A device whose certificate has expired can no longer reach the server,
// but it stays in the tree of its groups (and is listed as a member)
// until a member removes it. Every member can see the expiry in the
// certificate itself, so no one needs to be trusted for it: the first
// member to come online after it removes the device from each group, and
// every member is alerted (EventDeviceRemoved).

// expiredMembers lists the members of a group, other than this device,
// whose certificate has expired.
func (c *Client) expiredMembers(gs *groupState) []Member {
	now := c.now()
	var out []Member
	for _, m := range MembersOf(gs.g, c.decoder()) {
		if m.Err == nil && !m.Self && !now.Before(m.Expires) {
			out = append(out, m)
		}
	}
	return out
}

// removeExpired removes the expired devices from every group of this
// device.
func (c *Client) removeExpired(ctx context.Context, cn *conn) error {
	for _, gs := range c.groups {
		if !gs.g.Active() || len(c.expiredMembers(gs)) == 0 {
			continue
		}
		gid := gs.g.GroupID()
		if err := c.fetchGroup(ctx, cn, gid, gs.cursor+1); err != nil {
			return err
		}
		// Another member may have removed them meanwhile.
		expired := c.expiredMembers(gs)
		if !gs.g.Active() || len(expired) == 0 {
			continue
		}
		err := c.commit(ctx, cn, gs, func() mls.CommitOptions {
			var leaves []mls.LeafIndex
			for _, m := range c.expiredMembers(gs) {
				leaves = append(leaves, m.Leaf)
			}
			return mls.CommitOptions{Remove: leaves}
		})
		if err != nil {
			return fmt.Errorf("removing expired devices from group %x: %w", gid, err)
		}
		for _, m := range expired {
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

// alertRemovedExpired alerts of the expired devices a commit removed.
func (c *Client) alertRemovedExpired(gid []byte, before []Member, info *mls.CommitInfo) {
	if info == nil {
		return
	}
	now := c.now()
	for _, l := range info.Removed {
		for _, m := range before {
			if m.Leaf == l && m.Err == nil && !m.Self && !now.Before(m.Expires) {
				c.alertRemoved(gid, m)
			}
		}
	}
}

func (c *Client) alertRemoved(gid []byte, m Member) {
	c.emit(Event{Type: EventDeviceRemoved, Group: gid,
		Text: fmt.Sprintf("device %s of %s was removed (its certificate expired on %s)", m.DeviceID, m.Username, m.Expires.UTC().Format("2006-01-02"))})
}
