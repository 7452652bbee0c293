package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
)

// Group names. A name is an application message of the group
// (KindGroupName), so the server sees nothing of it and every member
// reads the same name; the last one received wins. A member added later
// cannot read earlier messages, so whoever adds devices sends the name
// again right after the commit that added them. Each device keeps the
// name in its state.

// recGroupNamePrefix + hex group ID holds the group's name.
const recGroupNamePrefix = "groupname/"

func groupNameRec(id []byte) string { return recGroupNamePrefix + hex.EncodeToString(id) }

// SetGroupName names a group for every member (CheckGroupName says which
// names are allowed); members added later are sent it when they are.
func (c *Client) SetGroupName(ctx context.Context, groupID []byte, name string) error {
	if err := CheckGroupName(name); err != nil {
		return fmt.Errorf("naming the group: %w", err)
	}
	return c.Send(ctx, groupID, &Content{Kind: KindGroupName, Text: name})
}

// GroupName returns a group's name, or "" when it has none.
func (c *Client) GroupName(groupID []byte) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return "", ErrWiped
	}
	return c.groupName(groupID)
}

func (c *Client) groupName(groupID []byte) (string, error) {
	raw, err := c.v.get(groupNameRec(groupID))
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the group's name: %w", err)
	}
	d := decoder{b: raw, bad: ErrCorrupt}
	if v := d.u8(); d.err == nil && v != recordVersion {
		d.fail("group name record version %d", v)
	}
	name := d.str8()
	if err := d.done(); err != nil {
		return "", fmt.Errorf("reading the group's name: %w", err)
	}
	if err := CheckGroupName(name); err != nil {
		return "", fmt.Errorf("reading the group's name: %w: %w", ErrCorrupt, err)
	}
	return name, nil
}

// putGroupName keeps a group's name, sent or received.
func (c *Client) putGroupName(groupID []byte, name string) error {
	if err := c.v.put(groupNameRec(groupID), appendStr8([]byte{recordVersion}, name)); err != nil {
		return fmt.Errorf("recording the group's name: %w", err)
	}
	return nil
}

// resendGroupName sends a named group's name again, for the devices the
// last commit added; c.mu is held.
func (c *Client) resendGroupName(ctx context.Context, cn *conn, gs *groupState) error {
	name, err := c.groupName(gs.g.GroupID())
	if err != nil || name == "" {
		return err
	}
	if err := c.send(ctx, cn, gs, &Content{Kind: KindGroupName, Text: name}); err != nil {
		return fmt.Errorf("sending the group's name to the new members: %w", err)
	}
	return nil
}
