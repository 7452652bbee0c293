package client

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Read marks: for each group, the position in the group's log (a message's
// Seq) up to which the user has seen the messages on this device. They are
// records of the device's encrypted state, so they outlive a restart (or a
// page reload) and belong to the device: another device of the same user
// keeps its own.
//
//	u8 version (1) || u64 seq

// recReadPrefix + hex group ID: the group's read mark.
const recReadPrefix = "ui/read/"

func readRecName(id []byte) string { return recReadPrefix + hex.EncodeToString(id) }

// MarkRead records that the messages of a group up to seq (a Message's
// Seq) have been seen on this device. A mark only moves forward: a seq at
// or below the recorded one changes nothing, so a late call from an older
// screen cannot bring messages back as unread.
func (c *Client) MarkRead(groupID []byte, seq uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return ErrWiped
	}
	if _, ok := c.groups[string(groupID)]; !ok {
		return fmt.Errorf("marking read: group %x: %w", groupID, ErrNoGroup)
	}
	cur, err := c.readMarkLocked(groupID)
	if err != nil {
		return err
	}
	if seq <= cur {
		return nil
	}
	b := binary.BigEndian.AppendUint64([]byte{recordVersion}, seq)
	if err := c.v.put(readRecName(groupID), b); err != nil {
		return fmt.Errorf("marking read: %w", err)
	}
	return nil
}

// ReadMark returns the position MarkRead last recorded for a group: 0
// when the device has seen none of its messages.
func (c *Client) ReadMark(groupID []byte) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return 0, ErrWiped
	}
	return c.readMarkLocked(groupID)
}

func (c *Client) readMarkLocked(groupID []byte) (uint64, error) {
	raw, err := c.v.get(readRecName(groupID))
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the read mark: %w", err)
	}
	d := decoder{b: raw, bad: ErrCorrupt}
	if v := d.u8(); d.err == nil && v != recordVersion {
		d.fail("read mark record version %d", v)
	}
	seq := d.u64()
	if err := d.done(); err != nil {
		return 0, fmt.Errorf("reading the read mark: %w", err)
	}
	return seq, nil
}

// Unread counts the messages of a history (as History returns it) that
// are unread under the read mark upTo: the ones other devices sent after
// it that a person reads (texts, photos, files, voice notes), not the
// thumbnails of the older two-message photo form, nor deletions, timer
// changes or group names.
func Unread(hist []*Message, upTo uint64) int {
	n := 0
	for _, m := range hist {
		if m.Outgoing || m.Seq <= upTo || m.Content == nil || !m.Content.Readable() {
			continue
		}
		if _, ok := LegacyThumbnailFor(m.Content); ok {
			continue
		}
		n++
	}
	return n
}

// UnreadCount returns the number of a group's unread messages on this
// device (see Unread) and its read mark.
func (c *Client) UnreadCount(groupID []byte) (n int, upTo uint64, err error) {
	hist, err := c.History(groupID)
	if err != nil {
		return 0, 0, err
	}
	if upTo, err = c.ReadMark(groupID); err != nil {
		return 0, 0, err
	}
	return Unread(hist, upTo), upTo, nil
}

// LastSeq returns the largest Seq of a history (0 for none): what to give
// MarkRead once all of it is on screen.
func LastSeq(hist []*Message) uint64 {
	var last uint64
	for _, m := range hist {
		last = max(last, m.Seq)
	}
	return last
}
