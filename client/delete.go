package client

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotOwnMessage is returned for deleting a message this device did not
// send: members honour a deletion only from the message's sender.
var ErrNotOwnMessage = errors.New("client: only the device that sent a message can delete it")

// DeleteMessage deletes a message this device sent to a group (id is its
// Content.ID) for every member: a KindDelete message goes out (with
// SendOrQueue, so it waits in the outbox while the device is not
// connected; pending reports that), and History leaves the message out on
// every device from then on. A message still waiting in the outbox is
// taken out of it instead, and nothing is sent. Only text, files and
// voice notes can be deleted; ErrNotFound means the group's history has no
// such message.
func (c *Client) DeleteMessage(ctx context.Context, groupID []byte, id MessageID) (pending bool, err error) {
	hist, err := c.History(groupID)
	if err != nil {
		return false, fmt.Errorf("deleting a message: %w", err)
	}
	var m *Message
	for _, h := range hist {
		if h.Content.ID == id {
			m = h
		}
	}
	if m == nil {
		return false, fmt.Errorf("deleting message %s: %w", id, ErrNotFound)
	}
	if !m.Content.Readable() {
		return false, fmt.Errorf("deleting message %s: a %s message cannot be deleted", id, m.Content.Kind)
	}
	if m.Pending {
		gone, err := c.unqueue(id)
		if err != nil || gone {
			return false, err
		}
		// Sent meanwhile: delete it as sent.
	}
	self, err := c.Identity()
	if err != nil {
		return false, err
	}
	if !m.Outgoing || m.From != self.DeviceID {
		return false, fmt.Errorf("deleting message %s: %w", id, ErrNotOwnMessage)
	}
	return c.SendOrQueue(ctx, groupID, &Content{Kind: KindDelete, Target: id})
}

// unqueue takes a message out of the outbox; gone reports that it was
// there.
func (c *Client) unqueue(id MessageID) (gone bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return false, ErrWiped
	}
	es, err := c.readOutbox()
	if err != nil {
		return false, err
	}
	for i, e := range es {
		ct, err := UnmarshalContent(e.content)
		if err != nil || ct.ID != id {
			continue
		}
		if e.sealed != ([32]byte{}) {
			return false, nil // it may have reached the server: delete it as sent
		}
		return true, c.writeOutbox(append(es[:i:i], es[i+1:]...))
	}
	return false, nil
}
