package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	anomv1 "anom/proto/anom/v1"
)

// The outbox: messages written while the device cannot reach the server
// (or while earlier ones still wait) are kept durably in the vault, in
// order, and sent when it connects again. Each entry notes the SHA-256 of
// the MLS message last sent for it before it leaves: when the connection
// drops after the server stored the message but before its answer came,
// the device recognises its own message in the group's log (catch-up, or
// a fetch before sending again) and does not send it twice.

// logOutbox is the vault log of the messages waiting to be sent.
const logOutbox = "outbox"

// outboxEntry is one message waiting to be sent.
type outboxEntry struct {
	group   []byte
	content []byte   // Content encoding, ID and SentAt set
	sealed  [32]byte // SHA-256 of the MLS message last sent; zero before
	queued  int64    // Unix milliseconds, this device's clock
}

func (e *outboxEntry) encode() []byte {
	b := []byte{recordVersion}
	b = appendVec32(b, e.group)
	b = appendVec32(b, e.content)
	b = append(b, e.sealed[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(e.queued))
}

func decodeOutboxEntry(b []byte) (*outboxEntry, error) {
	d := decoder{b: b, bad: ErrCorrupt}
	if v := d.u8(); d.err == nil && v != recordVersion {
		d.fail("outbox entry version %d", v)
	}
	e := &outboxEntry{group: d.vec32(255), content: d.vec32(MaxTextLen + 1024)}
	copy(e.sealed[:], d.bytes(32))
	e.queued = int64(d.u64())
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("decoding outbox entry: %w", err)
	}
	return e, nil
}

// readOutbox returns the waiting messages, oldest first.
func (c *Client) readOutbox() ([]*outboxEntry, error) {
	var out []*outboxEntry
	err := c.v.readLog(logOutbox, func(_ uint64, raw []byte) error {
		e, err := decodeOutboxEntry(raw)
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the outbox: %w", err)
	}
	return out, nil
}

func (c *Client) writeOutbox(es []*outboxEntry) error {
	raw := make([][]byte, len(es))
	for i, e := range es {
		raw[i] = e.encode()
	}
	if err := c.v.rewriteLog(logOutbox, raw); err != nil {
		return fmt.Errorf("saving the outbox: %w", err)
	}
	return nil
}

// SendOrQueue sends content to a group like Send when the device is
// connected and nothing waits before it; otherwise, or when the
// connection fails on the way, the message is kept in the outbox and sent
// in order on reconnecting (EventSent tells when). pending reports that
// it is waiting. An error means the message was not kept: the content or
// group is unusable, the server refused it, or the device cannot store.
func (c *Client) SendOrQueue(ctx context.Context, groupID []byte, content *Content) (pending bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return false, ErrWiped
	}
	if c.dev == nil {
		return false, ErrNotActivated
	}
	if _, err := c.group(groupID); err != nil {
		return false, err
	}
	pt, err := c.prepareContent(content)
	if err != nil {
		return false, err
	}
	e := &outboxEntry{group: bytes.Clone(groupID), content: pt, queued: c.now().UnixMilli()}
	if err := c.v.appendLog(logOutbox, e.encode()); err != nil {
		return false, fmt.Errorf("queueing the message: %w", err)
	}
	cn, err := c.current()
	if err != nil {
		return true, nil
	}
	failed, err := c.flushOutbox(ctx, cn)
	if err != nil {
		return true, nil // kept; the next connection sends it
	}
	if ferr, ok := failed[content.ID]; ok {
		return false, ferr
	}
	return c.isQueued(content.ID)
}

// isQueued reports whether the message with this ID is in the outbox.
func (c *Client) isQueued(id MessageID) (bool, error) {
	es, err := c.readOutbox()
	if err != nil {
		return false, err
	}
	for _, e := range es {
		if ct, err := UnmarshalContent(e.content); err == nil && ct.ID == id {
			return true, nil
		}
	}
	return false, nil
}

// transient reports whether a send failed for want of the server (the
// message waits) rather than for the message itself.
func transient(err error) bool {
	return errors.Is(err, ErrNotConnected) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, ErrEscrowPolicy) || errors.Is(err, ErrProtocol) ||
		IsCode(err, CodeUnavailable) || IsCode(err, CodeRateLimited) || IsCode(err, CodeStorageFull)
}

// ErrServerFull is the Err of EventSendHeld when the server is out of
// storage.
var ErrServerFull = errors.New("the server is out of storage; your message is kept and will be sent later")

// flushOutbox sends the waiting messages in order over cn. It stops at the
// first that fails for want of the server (returning that error); one the
// server refuses is dropped from the outbox, reported with EventError and
// returned in failed.
func (c *Client) flushOutbox(ctx context.Context, cn *conn) (failed map[MessageID]error, err error) {
	es, err := c.readOutbox()
	if err != nil || len(es) == 0 {
		return nil, err
	}
	// A message sent before whose answer was lost may be in its group's
	// log: read the logs first, which takes it out of the outbox.
	fetched := map[string]bool{}
	for _, e := range es {
		gs, ok := c.groups[string(e.group)]
		if e.sealed == ([32]byte{}) || fetched[string(e.group)] || !ok || !gs.g.Active() {
			continue
		}
		fetched[string(e.group)] = true
		if err := c.fetchGroup(ctx, cn, e.group, gs.cursor+1); err != nil {
			return nil, err
		}
	}
	failed = map[MessageID]error{}
	for {
		if es, err = c.readOutbox(); err != nil || len(es) == 0 {
			return failed, err
		}
		e := es[0]
		content, err := UnmarshalContent(e.content)
		if err != nil {
			return failed, c.dropQueued(es, fmt.Errorf("%w: queued message: %w", ErrCorrupt, err), nil, failed)
		}
		gs, err := c.group(e.group)
		if err != nil {
			return failed, c.dropQueued(es, err, content, failed)
		}
		onSealed := func(msg []byte) error {
			e.sealed = sha256.Sum256(msg)
			return c.writeOutbox(es)
		}
		seq, err := c.sendLocked(ctx, cn, gs, content, e.content, onSealed)
		if err != nil && IsCode(err, CodeStorageFull) {
			// The user is told why it waits; Run's periodic sync and
			// the next send try again.
			c.emit(Event{Type: EventSendHeld, Group: e.group, Err: fmt.Errorf("%w: %w", ErrServerFull, err)})
		}
		if err != nil && transient(err) {
			return failed, err
		}
		if err != nil {
			if err := c.dropQueued(es, err, content, failed); err != nil {
				return failed, err
			}
			continue
		}
		if err := c.writeOutbox(es[1:]); err != nil {
			return failed, err
		}
		c.emitSent(e, seq, content)
	}
}

// dropQueued takes the first waiting message out of the outbox because it
// cannot be sent, and tells the user.
func (c *Client) dropQueued(es []*outboxEntry, why error, content *Content, failed map[MessageID]error) error {
	if err := c.writeOutbox(es[1:]); err != nil {
		return err
	}
	err := fmt.Errorf("a queued message was not sent: %w", why)
	if content != nil {
		failed[content.ID] = why
	}
	c.emit(Event{Type: EventError, Group: es[0].group, Err: err})
	c.log.Warn("dropping a queued message", "err", why)
	return nil
}

func (c *Client) emitSent(e *outboxEntry, seq uint64, content *Content) {
	c.emit(Event{Type: EventSent, Group: e.group, Message: &Message{Group: e.group, Seq: seq, From: c.dev.id, Username: c.dev.username,
		Received: time.UnixMilli(e.queued), Outgoing: true, Content: content}})
}

// outboxDelivered is called with each of the device's own messages in a
// group's log: one whose answer was lost is recorded as sent and leaves
// the outbox.
func (c *Client) outboxDelivered(gs *groupState, m *anomv1.GroupMessage) error {
	es, err := c.readOutbox()
	if err != nil || len(es) == 0 {
		return err
	}
	sum := sha256.Sum256(m.GetMessage())
	for i, e := range es {
		if e.sealed != sum || !bytes.Equal(e.group, gs.g.GroupID()) {
			continue
		}
		content, err := UnmarshalContent(e.content)
		if err != nil {
			return fmt.Errorf("%w: queued message: %w", ErrCorrupt, err)
		}
		h := &historyEntry{seq: m.GetSeq(), sender: c.dev.id, username: c.dev.username, received: c.now().UnixMilli(), outgoing: true, content: e.content}
		if err := c.v.appendLog(historyName(e.group), h.encode()); err != nil {
			return fmt.Errorf("recording sent message: %w", err)
		}
		if err := c.writeOutbox(append(es[:i:i], es[i+1:]...)); err != nil {
			return err
		}
		if content.Kind == KindTimer {
			gs.timer = uint32(content.Timer / time.Second)
		}
		if content.Kind == KindGroupName {
			if err := c.putGroupName(e.group, content.Text); err != nil {
				return err
			}
		}
		c.emitSent(e, m.GetSeq(), content)
		return nil
	}
	return nil
}

// pendingMessages returns a group's waiting messages, marked Pending.
func (c *Client) pendingMessages(groupID []byte) ([]*Message, error) {
	es, err := c.readOutbox()
	if err != nil {
		return nil, err
	}
	var out []*Message
	for _, e := range es {
		if !bytes.Equal(e.group, groupID) {
			continue
		}
		content, err := UnmarshalContent(e.content)
		if err != nil {
			return nil, fmt.Errorf("%w: queued message: %w", ErrCorrupt, err)
		}
		out = append(out, &Message{Group: groupID, From: c.dev.id, Username: c.dev.username, Received: time.UnixMilli(e.queued),
			Outgoing: true, Pending: true, Content: content})
	}
	return out, nil
}

// flushAfterSync sends what waits once the device is in sync; a failure
// leaves it waiting for the next connection.
func (c *Client) flushAfterSync(ctx context.Context, cn *conn) {
	if _, err := c.flushOutbox(ctx, cn); err != nil {
		c.log.Warn("sending queued messages", "err", err)
	}
}
