package client

import (
	"errors"
	"fmt"
)

// recCurrentChat holds the ID of the group the user last had on screen,
// so that a restarted interface opens it again.
const recCurrentChat = "ui/current"

// maxGroupIDLen bounds a stored group ID.
const maxGroupIDLen = 255

// SetCurrentChat records the group the user has on screen (nil: none);
// CurrentChat returns it after a restart.
func (c *Client) SetCurrentChat(groupID []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return ErrWiped
	}
	if len(groupID) > maxGroupIDLen {
		return fmt.Errorf("recording the current chat: group ID of %d bytes", len(groupID))
	}
	b := appendStr8([]byte{recordVersion}, string(groupID))
	if err := c.v.put(recCurrentChat, b); err != nil {
		return fmt.Errorf("recording the current chat: %w", err)
	}
	return nil
}

// CurrentChat returns the group SetCurrentChat last recorded, or nil.
func (c *Client) CurrentChat() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return nil, ErrWiped
	}
	raw, err := c.v.get(recCurrentChat)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the current chat: %w", err)
	}
	d := decoder{b: raw, bad: ErrCorrupt}
	if v := d.u8(); d.err == nil && v != recordVersion {
		d.fail("current chat record version %d", v)
	}
	id := d.str8()
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("reading the current chat: %w", err)
	}
	if id == "" {
		return nil, nil
	}
	return []byte(id), nil
}
