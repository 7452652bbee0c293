package client

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"anom/identity"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// Send encrypts content for a group and sends it; it returns once the
// server has stored the message durably. ID and SentAt are filled in when
// zero.
func (c *Client) Send(ctx context.Context, groupID []byte, content *Content) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn, gs, err := c.readyGroup(groupID)
	if err != nil {
		return err
	}
	pt, err := c.prepareContent(content)
	if err != nil {
		return err
	}
	_, err = c.sendLocked(ctx, cn, gs, content, pt, nil)
	return err
}

// send is Send with c.mu held, the connection and the group at hand.
func (c *Client) send(ctx context.Context, cn *conn, gs *groupState, content *Content) error {
	pt, err := c.prepareContent(content)
	if err != nil {
		return err
	}
	_, err = c.sendLocked(ctx, cn, gs, content, pt, nil)
	return err
}

// prepareContent fills in a content's ID and SentAt when zero and encodes
// it.
func (c *Client) prepareContent(content *Content) ([]byte, error) {
	if content.ID == (MessageID{}) {
		if _, err := io.ReadFull(c.rand, content.ID[:]); err != nil {
			return nil, fmt.Errorf("sending: %w", err)
		}
	}
	if content.SentAt.IsZero() {
		content.SentAt = time.UnixMilli(c.now().UnixMilli())
	}
	pt, err := content.Marshal()
	if err != nil {
		return nil, fmt.Errorf("sending: %w", err)
	}
	return pt, nil
}

// sendLocked encrypts the encoded content pt for the group and sends it,
// records it in the history and returns its sequence number. onSealed, if
// set, is given each MLS message before it leaves.
func (c *Client) sendLocked(ctx context.Context, cn *conn, gs *groupState, content *Content, pt []byte, onSealed func(msg []byte) error) (uint64, error) {
	groupID := gs.g.GroupID()
	if c.escrowPol == nil {
		return 0, fmt.Errorf("sending: %w", ErrEscrowPolicy)
	}
	for attempt := 0; ; attempt++ {
		// The record is sealed from the epoch's exporter, kept before
		// the message can be sent.
		if err := c.noteEpochSecret(gs); err != nil {
			return 0, err
		}
		msg, gen, err := gs.g.EncryptWithGeneration(pt, nil)
		if err != nil {
			return 0, fmt.Errorf("sending: %w", err)
		}
		// The ratchet moved: save before the message leaves, so a crash
		// never reuses a key.
		if err := c.saveGroup(gs); err != nil {
			return 0, err
		}
		rec, err := c.sealRecord(gs, gen, content, pt)
		if err != nil {
			return 0, fmt.Errorf("sending: %w", err)
		}
		enc := msg.Encode()
		if onSealed != nil {
			if err := onSealed(enc); err != nil {
				return 0, err
			}
		}
		resp, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_Send{Send: &anomv1.Send{GroupId: groupID, Message: enc, EscrowRecord: rec}}})
		if IsCode(err, CodeEscrowRecord) && attempt < 2 {
			// The policy may have changed since the last sync: verify
			// it again and seal a new message.
			if err := c.syncEscrowPolicy(ctx, cn); err != nil {
				return 0, err
			}
			if c.escrowPol == nil {
				return 0, fmt.Errorf("sending: %w", ErrEscrowPolicy)
			}
			continue
		}
		if (IsCode(err, CodeEpochConflict) || IsCode(err, CodeInvalidMessage)) && attempt < 2 {
			// The group moved on; catch up and encrypt in the new epoch.
			if err := c.fetchGroup(ctx, cn, groupID, gs.cursor+1); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("sending: %w", err)
		}
		h := &historyEntry{seq: resp.GetSent().GetSeq(), sender: c.dev.id, username: c.dev.username, received: c.now().UnixMilli(), outgoing: true, content: pt}
		if err := c.v.appendLog(historyName(groupID), h.encode()); err != nil {
			return 0, fmt.Errorf("recording sent message: %w", err)
		}
		if content.Kind == KindGroupName {
			if err := c.putGroupName(groupID, content.Text); err != nil {
				return 0, err
			}
		}
		if content.Kind == KindTimer {
			gs.timer = uint32(content.Timer / time.Second)
			if err := c.saveGroup(gs); err != nil {
				return 0, err
			}
			// The server cannot read the timer: tell it, so its copy of
			// the group's messages after this one disappears too.
			if _, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_SetGroupTimer{SetGroupTimer: &anomv1.SetGroupTimer{GroupId: groupID, Seconds: gs.timer, Seq: h.seq}}}); err != nil {
				return 0, fmt.Errorf("setting the group's timer on the server: %w", err)
			}
		}
		return h.seq, nil
	}
}

// SetTimer sets a group's disappearing-message timer (0 turns it off) for
// every member and on the server.
func (c *Client) SetTimer(ctx context.Context, groupID []byte, d time.Duration) error {
	return c.Send(ctx, groupID, &Content{Kind: KindTimer, Timer: d})
}

// SendText sends a text message.
func (c *Client) SendText(ctx context.Context, groupID []byte, text string) error {
	return c.Send(ctx, groupID, &Content{Kind: KindText, Text: text})
}

// catchUp reads every group's log from the device's cursor, and joins the
// groups it was added to while away.
func (c *Client) catchUp(ctx context.Context, cn *conn) error {
	resp, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_ListGroups{ListGroups: &anomv1.ListGroups{}}})
	if err != nil {
		return fmt.Errorf("listing groups: %w", err)
	}
	for _, st := range resp.GetGroups().GetGroups() {
		gs, ok := c.groups[string(st.GetGroupId())]
		from := st.GetJoined()
		if ok {
			if !gs.g.Active() && st.GetRemoved() > 0 {
				// Removed, and the removal processed: let the server
				// forget the membership.
				if _, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_Ack{Ack: &anomv1.Ack{GroupId: st.GetGroupId(), Seq: st.GetRemoved()}}}); err != nil {
					return fmt.Errorf("acknowledging a removal: %w", err)
				}
				continue
			}
			switch {
			case !gs.g.Active() && st.GetJoined() > gs.cursor:
				// Removed, then added back: read from the commit
				// that added this device again.
			case !gs.g.Active() || st.GetLast() <= gs.cursor:
				continue
			default:
				from = gs.cursor + 1
			}
		}
		if err := c.fetchGroup(ctx, cn, st.GetGroupId(), from); err != nil {
			return err
		}
	}
	return nil
}

// fetchGroup reads a group's log from a sequence number to its end.
func (c *Client) fetchGroup(ctx context.Context, cn *conn, groupID []byte, from uint64) error {
	for {
		resp, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_Fetch{Fetch: &anomv1.Fetch{GroupId: groupID, From: from}}})
		if err != nil {
			return fmt.Errorf("fetching group %x: %w", groupID, err)
		}
		msgs := resp.GetMessages()
		if msgs == nil {
			return fmt.Errorf("fetching group %x: %w: no messages", groupID, ErrProtocol)
		}
		if err := c.process(ctx, cn, msgs); err != nil {
			return err
		}
		ms := msgs.GetMessages()
		if len(ms) == 0 || ms[len(ms)-1].GetSeq() >= msgs.GetLast() {
			return nil
		}
		from = ms[len(ms)-1].GetSeq() + 1
	}
}

// receive handles pushed messages: a gap before them is fetched first.
func (c *Client) receive(ctx context.Context, cn *conn, msgs *anomv1.Messages) error {
	ms := msgs.GetMessages()
	if len(ms) == 0 {
		return nil
	}
	if gs, ok := c.groups[string(msgs.GetGroupId())]; ok && gs.g.Active() && ms[0].GetSeq() > gs.cursor+1 {
		return c.fetchGroup(ctx, cn, msgs.GetGroupId(), gs.cursor+1)
	}
	return c.process(ctx, cn, msgs)
}

// process handles messages of one group in order and acknowledges them.
func (c *Client) process(ctx context.Context, cn *conn, msgs *anomv1.Messages) error {
	gid := msgs.GetGroupId()
	for _, m := range msgs.GetMessages() {
		gs, ok := c.groups[string(gid)]
		// A welcome for this device in a group it already knows means it
		// was removed and added back (the server may skip the removal
		// for a device offline meanwhile): it joins the new epoch.
		if !ok || (m.GetSeq() > gs.cursor && addsDevice(m, c.dev.id)) {
			if err := c.join(ctx, cn, gid, m); err != nil {
				c.emit(Event{Type: EventError, Group: gid, Err: err})
				c.log.Warn("joining group", "group", fmt.Sprintf("%x", gid), "err", err)
			}
			continue
		}
		if m.GetSeq() <= gs.cursor || !gs.g.Active() {
			continue
		}
		timer := gs.timer
		if err := c.handle(gs, m); err != nil {
			c.emit(Event{Type: EventError, Group: gid, Err: err})
			c.log.Warn("handling message", "group", fmt.Sprintf("%x", gid), "seq", m.GetSeq(), "err", err)
		}
		// A message that cannot be processed never will be: move on.
		gs.cursor = m.GetSeq()
		if err := c.saveGroup(gs); err != nil {
			return err
		}
		if gs.timer != timer && bytes.Equal(m.GetSenderDevice(), c.dev.id[:]) {
			// This device's own timer message, met in the log because
			// the answer to sending it was lost: the server has not been
			// told, so its copy would keep the messages after it.
			c.tellTimer(ctx, cn, gid, gs.timer, m.GetSeq())
		}
	}
	if len(c.mismatches) > 0 {
		c.reportMismatches(ctx, cn, gid)
	}
	if gs, ok := c.groups[string(gid)]; ok && len(msgs.GetMessages()) > 0 {
		if _, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_Ack{Ack: &anomv1.Ack{GroupId: gid, Seq: gs.cursor}}}); err != nil {
			return fmt.Errorf("acknowledging: %w", err)
		}
	}
	return nil
}

// handle processes one message of a known group.
func (c *Client) handle(gs *groupState, m *anomv1.GroupMessage) error {
	if bytes.Equal(m.GetSenderDevice(), c.dev.id[:]) {
		// Own message: applied or recorded when sent; or a commit whose
		// answer was lost (pending), or a message sent from the outbox
		// with its answer lost.
		if err := c.ownMessage(gs, m); err != nil {
			return err
		}
		return c.outboxDelivered(gs, m)
	}
	msg, err := mls.DecodeMLSMessage(m.GetMessage())
	if err != nil {
		return fmt.Errorf("decoding message %d: %w", m.GetSeq(), err)
	}
	before := c.membersBefore(gs, msg)
	rec, err := gs.g.Handle(msg)
	if err != nil {
		return fmt.Errorf("message %d: %w", m.GetSeq(), err)
	}
	gid := gs.g.GroupID()
	switch rec.Type {
	case mls.ContentCommit:
		c.alertRemovedGone(gid, before, rec.Commit)
		if rec.Commit != nil && rec.Commit.RemovedSelf {
			c.emit(Event{Type: EventRemoved, Group: gid})
		} else {
			c.emit(Event{Type: EventMembers, Group: gid})
		}
	case mls.ContentApplication:
		content, err := UnmarshalContent(rec.Application)
		if err != nil {
			return fmt.Errorf("message %d: %w", m.GetSeq(), err)
		}
		sender, username := identity.DeviceID{}, ""
		var senderCert *identity.DeviceCertificate
		if rec.SenderCredential != nil {
			if cert, err := identity.CertificateFromCredential(rec.SenderCredential); err == nil {
				sender, username, senderCert = cert.DeviceID, cert.Username, cert
			}
		}
		if !bytes.Equal(sender[:], m.GetSenderDevice()) {
			return fmt.Errorf("message %d: %w: sealed by %s, delivered as from %x", m.GetSeq(), ErrProtocol, sender, m.GetSenderDevice())
		}
		h := &historyEntry{seq: m.GetSeq(), sender: sender, username: username, received: c.now().UnixMilli(), content: rec.Application}
		if err := c.v.appendLog(historyName(gid), h.encode()); err != nil {
			return fmt.Errorf("recording message: %w", err)
		}
		if content.Kind == KindTimer {
			gs.timer = uint32(content.Timer / time.Second)
		}
		if content.Kind == KindGroupName {
			if err := c.putGroupName(gid, content.Text); err != nil {
				return fmt.Errorf("message %d: %w", m.GetSeq(), err)
			}
		}
		c.emit(Event{Type: EventMessage, Group: gid, Message: h.message(gid, content)})
		if mm := c.checkRecord(gs, m, rec, content, senderCert); mm != nil {
			c.log.Warn("a false escrow record", "group", fmt.Sprintf("%x", gid), "seq", mm.Seq, "sender", mm.Sender, "field", mm.Field)
			c.mismatches = append(c.mismatches, *mm)
			c.emit(Event{Type: EventEscrowMismatch, Group: gid, Message: h.message(gid, content), Mismatch: mm,
				Text: fmt.Sprintf("%s (%s) sent a false escrow copy of message %d (%s differs); reported to the server", username, sender, mm.Seq, mm.Field)})
		}
	}
	return nil
}

// join enters a group from the Welcome of the commit that added this
// device.
func (c *Client) join(ctx context.Context, cn *conn, gid []byte, m *anomv1.GroupMessage) error {
	if len(m.GetWelcome()) == 0 {
		return nil
	}
	if !addsDevice(m, c.dev.id) {
		return nil
	}
	w, err := mls.DecodeMLSMessage(m.GetWelcome())
	if err != nil || w.WireFormat != mls.WireWelcome || w.Welcome == nil {
		return fmt.Errorf("joining: %w: not a welcome", ErrProtocol)
	}
	var bundle *mls.KeyPackageBundle
	var used string
	for _, s := range w.Welcome.Secrets {
		raw, err := c.v.get(kpRecName(s.NewMember))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("joining: %w", err)
		}
		if bundle, err = mls.DecodeKeyPackageBundle(raw); err != nil {
			return fmt.Errorf("%w: key package: %w", ErrCorrupt, err)
		}
		used = kpRecName(s.NewMember)
		break
	}
	if bundle == nil {
		return fmt.Errorf("joining: no key package of this device in the welcome")
	}
	g, err := mls.Join(c.mlsConfig(), w, bundle, nil)
	if err != nil {
		return fmt.Errorf("joining: %w", err)
	}
	if !bytes.Equal(g.GroupID(), gid) {
		return fmt.Errorf("joining: %w: welcome for another group", ErrProtocol)
	}
	gs := &groupState{g: g, cursor: m.GetSeq()}
	if err := c.saveGroup(gs); err != nil {
		return err
	}
	c.groups[string(gid)] = gs
	// The key package's private keys are used up: delete them (forward
	// secrecy) and replace it on the server.
	if err := c.v.del(used); err != nil {
		return err
	}
	if c.dev.kpOnServer > 0 {
		c.dev.kpOnServer--
	}
	c.emit(Event{Type: EventJoined, Group: gid})
	return c.refillKeyPackages(ctx, cn, false)
}

// addsDevice reports whether a group message is a commit with a welcome
// that adds the device.
func addsDevice(m *anomv1.GroupMessage, id identity.DeviceID) bool {
	if len(m.GetWelcome()) == 0 {
		return false
	}
	for _, d := range m.GetAddedDevices() {
		if bytes.Equal(d, id[:]) {
			return true
		}
	}
	return false
}

func (h *historyEntry) message(gid []byte, content *Content) *Message {
	return &Message{Group: gid, Seq: h.seq, From: h.sender, Username: h.username,
		Received: time.UnixMilli(h.received), Outgoing: h.outgoing, Content: content}
}

// History returns a group's messages, oldest first (the ones waiting in
// the outbox last, marked Pending), without the ones deleted by their
// senders or expired under the disappearing-message timer (those are
// also dropped from the device).
func (c *Client) History(groupID []byte) ([]*Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return nil, ErrWiped
	}
	_, ok := c.groups[string(groupID)]
	if !ok {
		return nil, fmt.Errorf("group %x: %w", groupID, ErrNoGroup)
	}
	type item struct {
		raw []byte
		msg *Message
	}
	var items []item
	deleted := map[MessageID]identity.DeviceID{}
	dropped := false
	err := c.v.readLog(historyName(groupID), func(_ uint64, raw []byte) error {
		h, err := decodeHistoryEntry(raw)
		if err != nil {
			return err
		}
		content, err := UnmarshalContent(h.content)
		if err != nil {
			return fmt.Errorf("%w: stored message: %w", ErrCorrupt, err)
		}
		if content.Kind == KindDelete {
			deleted[content.Target] = h.sender
		}
		items = append(items, item{raw: raw, msg: h.message(groupID, content)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading history: %w", err)
	}
	// The device records messages as it gets them; the group's order is
	// the server's log order (a message received while this device was
	// sending may have come first). Entries without a sequence number
	// keep their place after the ones with.
	slices.SortStableFunc(items, func(a, b item) int {
		return cmp.Compare(seqOrder(a.msg.Seq), seqOrder(b.msg.Seq))
	})
	now := c.now()
	var keep [][]byte
	var out []*Message
	// A timer applies to the messages after it in the group's log: the
	// timer in force is that of the last timer message before (none
	// before the first).
	var timer time.Duration
	for _, it := range items {
		m := it.msg
		if m.Content.Kind == KindTimer {
			timer = m.Content.Timer
		}
		if by, ok := deleted[m.Content.ID]; ok && by == m.From {
			dropped = true
			continue
		}
		if timer > 0 && m.Content.Kind != KindTimer && now.Sub(m.Received) >= timer {
			dropped = true
			continue
		}
		keep = append(keep, it.raw)
		out = append(out, m)
	}
	if dropped {
		if err := c.v.rewriteLog(historyName(groupID), keep); err != nil {
			return nil, err
		}
	}
	pending, err := c.pendingMessages(groupID)
	if err != nil {
		return nil, err
	}
	return append(out, pending...), nil
}

// seqOrder is the place of a history entry: its sequence number, or after
// every numbered one without.
func seqOrder(seq uint64) uint64 {
	if seq == 0 {
		return math.MaxUint64
	}
	return seq
}

// tellTimer tells the server a group's timer, in force from this device's
// timer message seq, for a timer met in the log rather than answered; a
// failure is logged (the server then keeps those messages longer, never
// shorter).
func (c *Client) tellTimer(ctx context.Context, cn *conn, groupID []byte, seconds uint32, seq uint64) {
	if _, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_SetGroupTimer{SetGroupTimer: &anomv1.SetGroupTimer{GroupId: groupID, Seconds: seconds, Seq: seq}}}); err != nil {
		c.log.Warn("telling the server the group's timer", "group", fmt.Sprintf("%x", groupID), "seq", seq, "err", err)
		c.emit(Event{Type: EventError, Group: groupID, Err: fmt.Errorf("setting the group's timer on the server: %w", err)})
	}
}
