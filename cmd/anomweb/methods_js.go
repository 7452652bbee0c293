//go:build js

package main

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall/js"
	"time"

	"anom/client"
	"anom/identity"
)

// The messenger's methods; each needs an unlocked, activated device.

func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

func canonicalUsers(names []string) ([]string, error) {
	out := make([]string, len(names))
	for i, n := range names {
		u, err := identity.CanonicalUsername(strings.TrimSpace(n))
		if err != nil {
			return nil, coded(codeBadArgument, "username %q: %v", n, err)
		}
		out[i] = u
	}
	return out, nil
}

// checkContacts compares each contact's devices in the chats (all chats
// together) with what the device recorded last, and tells the page what
// changed as "contact-devices" events (a contact seen for the first time
// is recorded without one). VerifyDevice needs the contact recorded.
func (a *app) checkContacts(c *client.Client) {
	id, err := c.Identity()
	if err != nil {
		return
	}
	a.contactsMu.Lock()
	defer a.contactsMu.Unlock()
	byUser := map[string][]client.Member{}
	for _, g := range c.Groups() {
		for _, m := range g.Members {
			if m.Err == nil && m.Username != id.Username {
				byUser[m.Username] = append(byUser[m.Username], m)
			}
		}
	}
	users := make([]string, 0, len(byUser))
	for u := range byUser {
		users = append(users, u)
	}
	slices.Sort(users)
	for _, u := range users {
		ch, err := c.NoteContactDevices(u, byUser[u])
		if err != nil {
			a.events.push(eventJSON{Type: "error", Username: u, Error: fmt.Sprintf("recording %s's devices: %v", u, err)})
			continue
		}
		if ch.Changed() {
			a.events.push(contactEvent(ch))
		}
	}
}

// chats() lists the chats, the one with the latest message first.
func (a *app) chats([]js.Value) (any, error) {
	c, _, err := a.activated()
	if err != nil {
		return nil, err
	}
	a.checkContacts(c)
	out := []chatJSON{}
	for _, g := range c.Groups() {
		ch, err := chatOf(c, g.ID, g.Members, g.Timer)
		if err != nil {
			return nil, err
		}
		out = append(out, ch)
	}
	last := func(ch chatJSON) int64 {
		if ch.Last == nil {
			return 0
		}
		return ch.Last.Received
	}
	slices.SortStableFunc(out, func(x, y chatJSON) int {
		if c := cmp.Compare(last(y), last(x)); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out, nil
}

func chatOf(c *client.Client, gid []byte, ms []client.Member, timer uint32) (chatJSON, error) {
	name, err := c.GroupName(gid)
	if err != nil && !errors.Is(err, client.ErrNotFound) {
		return chatJSON{}, err
	}
	members, users := membersOf(ms)
	notice, err := c.EscrowNotice(gid)
	if err != nil {
		return chatJSON{}, err
	}
	ch := chatJSON{ID: hex.EncodeToString(gid), Name: name, Users: users, Members: members, TimerSeconds: timer, Escrow: notice}
	hist, err := c.History(gid)
	if err != nil {
		return chatJSON{}, err
	}
	for i := len(hist) - 1; i >= 0; i-- {
		if k := hist[i].Content; k != nil && k.Readable() {
			ch.Last = messageOf(hist[i])
			break
		}
	}
	if ch.ReadSeq, err = c.ReadMark(gid); err != nil {
		return chatJSON{}, err
	}
	ch.Unread = client.Unread(hist, ch.ReadSeq)
	return ch, nil
}

// markRead(groupId, seq?) records on the device that the chat's messages
// up to seq (a message's seq; without it, the chat's latest) were seen:
// chats() counts only later ones as unread, after a reload too. It
// resolves to {readSeq}.
func (a *app) markRead(args []js.Value) (any, error) {
	c, _, err := a.activated()
	if err != nil {
		return nil, err
	}
	gid, err := argGroupID(args, 0)
	if err != nil {
		return nil, err
	}
	var seq uint64
	if len(args) > 1 && !args[1].IsUndefined() && !args[1].IsNull() {
		if args[1].Type() != js.TypeNumber || args[1].Float() < 0 || args[1].Float() != float64(uint64(args[1].Float())) {
			return nil, coded(codeBadArgument, "seq: want a whole number")
		}
		seq = uint64(args[1].Float())
	} else {
		hist, err := c.History(gid)
		if err != nil {
			return nil, err
		}
		seq = client.LastSeq(hist)
	}
	if err := c.MarkRead(gid, seq); err != nil {
		return nil, err
	}
	mark, err := c.ReadMark(gid)
	if err != nil {
		return nil, err
	}
	return map[string]any{"readSeq": mark}, nil
}

// history(groupId) returns a chat's messages, oldest first.
func (a *app) history(args []js.Value) (any, error) {
	c, _, err := a.activated()
	if err != nil {
		return nil, err
	}
	gid, err := argGroupID(args, 0)
	if err != nil {
		return nil, err
	}
	hist, err := c.History(gid)
	if err != nil {
		return nil, err
	}
	out := make([]*messageJSON, 0, len(hist))
	for _, m := range hist {
		out = append(out, messageOf(m))
	}
	return out, nil
}

// send(groupId, text) sends a text, or keeps it in the outbox while the
// device is offline (pending; the "sent" event tells when it left).
func (a *app) send(args []js.Value) (any, error) {
	c, _, err := a.activated()
	if err != nil {
		return nil, err
	}
	s, err := argString(args, 0, "groupId")
	if err != nil {
		return nil, err
	}
	text, err := argString(args, 1, "text")
	if err != nil {
		return nil, err
	}
	gid, err := parseGroupID(s)
	if err != nil {
		return nil, err
	}
	content := &client.Content{Kind: client.KindText, Text: text}
	ctx, cancel := opContext()
	defer cancel()
	pending, err := c.SendOrQueue(ctx, gid, content)
	if err != nil {
		return nil, err
	}
	return map[string]any{"id": content.ID.String(), "sentAt": content.SentAt.UnixMilli(), "pending": pending}, nil
}

// startChat(username) returns the 1:1 chat with username, making it if
// there is none.
func (a *app) startChat(args []js.Value) (any, error) {
	c, id, err := a.activated()
	if err != nil {
		return nil, err
	}
	s, err := argString(args, 0, "username")
	if err != nil {
		return nil, err
	}
	users, err := canonicalUsers([]string{s})
	if err != nil {
		return nil, err
	}
	user := users[0]
	if user == id.Username {
		return nil, coded(codeBadArgument, "that is you: a chat needs another user's name")
	}
	for _, g := range c.Groups() {
		_, others := membersOf(g.Members)
		if len(others) != 1 || others[0] != user {
			continue
		}
		if name, err := c.GroupName(g.ID); err == nil && name != "" {
			continue // a named group that happens to have two members
		}
		return map[string]any{"groupId": hex.EncodeToString(g.ID), "created": false}, nil
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := checkUsers(ctx, c, user); err != nil {
		return nil, err
	}
	gid, err := c.CreateGroup(ctx, user)
	if err != nil {
		if gid != nil {
			return nil, fmt.Errorf("chat made, but %s could not be added: %w", user, err)
		}
		return nil, fmt.Errorf("starting a chat with %s: %w", user, err)
	}
	return map[string]any{"groupId": hex.EncodeToString(gid), "created": true}, nil
}

// checkUsers makes sure each user has an active device, so that a
// mistyped name does not leave a half-made chat.
func checkUsers(ctx context.Context, c *client.Client, users ...string) error {
	for _, u := range users {
		devs, err := c.Devices(ctx, u)
		if errorCode(err) == codeNotFound {
			return coded(codeNotFound, "there is no user %s on this network", u)
		}
		if err != nil {
			return fmt.Errorf("looking up %s: %w", u, err)
		}
		if len(devs) == 0 {
			return coded(codeNotFound, "%s has no active device on this network", u)
		}
	}
	return nil
}

// createGroup(name, usernames) makes a named group. If it was made but
// not everyone could be added, it resolves with the group and a warning.
func (a *app) createGroup(args []js.Value) (any, error) {
	c, id, err := a.activated()
	if err != nil {
		return nil, err
	}
	name, err := argString(args, 0, "name")
	if err != nil {
		return nil, err
	}
	names, err := argStrings(args, 1, "usernames")
	if err != nil {
		return nil, err
	}
	users, err := canonicalUsers(names)
	if err != nil {
		return nil, err
	}
	users = slices.DeleteFunc(users, func(u string) bool { return u == id.Username })
	slices.Sort(users)
	users = slices.Compact(users)
	if len(users) == 0 {
		return nil, coded(codeBadArgument, "a group needs at least one other user")
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := checkUsers(ctx, c, users...); err != nil {
		return nil, err
	}
	gid, err := c.CreateGroup(ctx, users...)
	if gid == nil {
		return nil, fmt.Errorf("making group %s: %w", name, err)
	}
	out := map[string]any{"groupId": hex.EncodeToString(gid)}
	if nerr := c.SetGroupName(ctx, gid, name); nerr != nil && err == nil {
		err = fmt.Errorf("naming it: %w", nerr)
	}
	if err != nil {
		out["warning"] = fmt.Sprintf("group made, but not everyone could be added: %v", err)
	}
	return out, nil
}

// groupAndUsers reads (groupId, usernames).
func groupAndUsers(args []js.Value) ([]byte, []string, error) {
	gid, err := argGroupID(args, 0)
	if err != nil {
		return nil, nil, err
	}
	names, err := argStrings(args, 1, "usernames")
	if err != nil {
		return nil, nil, err
	}
	users, err := canonicalUsers(names)
	if err != nil {
		return nil, nil, err
	}
	if len(users) == 0 {
		return nil, nil, coded(codeBadArgument, "no usernames")
	}
	return gid, users, nil
}

// addMembers(groupId, usernames) adds users (all their devices) to a
// group.
func (a *app) addMembers(args []js.Value) (any, error) {
	c, _, err := a.activated()
	if err != nil {
		return nil, err
	}
	gid, users, err := groupAndUsers(args)
	if err != nil {
		return nil, err
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := checkUsers(ctx, c, users...); err != nil {
		return nil, err
	}
	if err := c.AddMembers(ctx, gid, users...); err != nil {
		return nil, err
	}
	return map[string]any{"added": users}, nil
}

// removeMembers(groupId, usernames) removes users from a group.
func (a *app) removeMembers(args []js.Value) (any, error) {
	c, _, err := a.activated()
	if err != nil {
		return nil, err
	}
	gid, users, err := groupAndUsers(args)
	if err != nil {
		return nil, err
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := c.RemoveMembers(ctx, gid, users...); err != nil {
		return nil, err
	}
	return map[string]any{"removed": users}, nil
}

// setGroupName(groupId, name) sets the group's shared name.
func (a *app) setGroupName(args []js.Value) (any, error) {
	c, _, err := a.activated()
	if err != nil {
		return nil, err
	}
	s, err := argString(args, 0, "groupId")
	if err != nil {
		return nil, err
	}
	name, err := argString(args, 1, "name")
	if err != nil {
		return nil, err
	}
	gid, err := parseGroupID(s)
	if err != nil {
		return nil, err
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := c.SetGroupName(ctx, gid, name); err != nil {
		return nil, err
	}
	return map[string]any{"name": name}, nil
}

// setTimer(groupId, seconds) sets the disappearing-message timer (0 off).
func (a *app) setTimer(args []js.Value) (any, error) {
	c, _, err := a.activated()
	if err != nil {
		return nil, err
	}
	gid, err := argGroupID(args, 0)
	if err != nil {
		return nil, err
	}
	if len(args) < 2 || args[1].Type() != js.TypeNumber {
		return nil, coded(codeBadArgument, "seconds: want a number")
	}
	secs := args[1].Int()
	if secs < 0 || secs > client.MaxTimer {
		return nil, coded(codeBadArgument, "seconds: 0 to %d", client.MaxTimer)
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := c.SetTimer(ctx, gid, time.Duration(secs)*time.Second); err != nil {
		return nil, err
	}
	return map[string]any{"timerSeconds": secs}, nil
}

// escrowPolicy() describes the escrow policy the device verified.
func (a *app) escrowPolicy([]js.Value) (any, error) {
	c, _, err := a.activated()
	if err != nil {
		return nil, err
	}
	info, err := c.Escrow()
	if errors.Is(err, client.ErrEscrowPolicy) {
		return map[string]any{"verified": false,
			"notice": "escrow policy not verified: messages cannot be sent until it is"}, nil
	}
	if err != nil {
		return nil, err
	}
	if info.Policy == nil {
		return map[string]any{"verified": true, "none": true, "logIndex": info.LogIndex,
			"notice": "no escrow: this network has no escrow policy"}, nil
	}
	p := info.Policy
	custodians := make([]string, len(p.Custodians))
	for i, cu := range p.Custodians {
		custodians[i] = cu.Name
	}
	issuers := make([]string, len(p.Issuers))
	for i, is := range p.Issuers {
		issuers[i] = is.Name
	}
	return map[string]any{
		"verified": true, "none": false, "summary": p.Summary(), "version": p.Version,
		"threshold": p.Threshold, "custodians": custodians, "issuers": issuers,
		"created": p.Created.UnixMilli(), "logIndex": info.LogIndex, "serverKeyId": info.ServerKeyID,
		"notice": fmt.Sprintf("every message is also sealed to the network's escrow key; %s (transparency log entry %d)", p.Summary(), info.LogIndex),
	}, nil
}

type safetyJSON struct {
	DeviceID string `json:"deviceId"`
	// Number is the safety number: 12 groups of 5 digits.
	Number   []string `json:"number"`
	Verified bool     `json:"verified"`
	Expires  int64    `json:"expires"`
	// Code is the text of the number's QR code (client.SafetyCode).
	Code string `json:"code"`
}

// safety(username) gives the safety numbers with each of username's
// active devices (other than this one), with their verified marks.
func (a *app) safety(args []js.Value) (any, error) {
	c, id, err := a.activated()
	if err != nil {
		return nil, err
	}
	s, err := argString(args, 0, "username")
	if err != nil {
		return nil, err
	}
	users, err := canonicalUsers([]string{s})
	if err != nil {
		return nil, err
	}
	a.checkContacts(c)
	ctx, cancel := opContext()
	defer cancel()
	devs, err := c.Devices(ctx, users[0])
	if err != nil {
		return nil, err
	}
	known, err := c.ContactDevices(users[0])
	if err != nil {
		return nil, err
	}
	verified := map[string][]byte{}
	for _, k := range known {
		if k.Verified {
			verified[k.DeviceID] = k.SignatureKey
		}
	}
	out := []safetyJSON{}
	for _, d := range devs {
		if d.DeviceID == id.DeviceID {
			continue
		}
		sn, err := c.SafetyNumber(d)
		if err != nil {
			return nil, err
		}
		groups := make([]string, len(sn))
		for i, g := range sn {
			groups[i] = fmt.Sprintf("%05d", g)
		}
		k, ok := verified[d.DeviceID.String()]
		out = append(out, safetyJSON{DeviceID: d.DeviceID.String(), Number: groups,
			Verified: ok && string(k) == string(d.Key), Expires: d.NotAfter.UnixMilli(),
			Code: client.SafetyCode{Shower: id.DeviceID, Other: d.DeviceID, Number: sn}.String()})
	}
	return out, nil
}

// verify(username, deviceId) marks a device verified, after its safety
// number was compared. The key marked is the directory's, the one
// safety() showed the number of.
func (a *app) verify(args []js.Value) (any, error) {
	c, _, err := a.activated()
	if err != nil {
		return nil, err
	}
	s, err := argString(args, 0, "username")
	if err != nil {
		return nil, err
	}
	dev, err := argString(args, 1, "deviceId")
	if err != nil {
		return nil, err
	}
	users, err := canonicalUsers([]string{s})
	if err != nil {
		return nil, err
	}
	a.checkContacts(c)
	ctx, cancel := opContext()
	defer cancel()
	devs, err := c.Devices(ctx, users[0])
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if d.DeviceID.String() == dev {
			full, err := c.VerifyDevice(users[0], dev, d.Key)
			if err != nil {
				return nil, err
			}
			return map[string]any{"deviceId": full, "verified": true}, nil
		}
	}
	return nil, coded(codeNotFound, "%s has no active device %s", users[0], dev)
}

type deviceJSON struct {
	DeviceID string `json:"deviceId"`
	Self     bool   `json:"self"`
	Expires  int64  `json:"expires"`
}

// devices() lists the user's own active devices.
func (a *app) devices([]js.Value) (any, error) {
	c, id, err := a.activated()
	if err != nil {
		return nil, err
	}
	ctx, cancel := opContext()
	defer cancel()
	devs, err := c.Devices(ctx, id.Username)
	if err != nil {
		return nil, err
	}
	out := []deviceJSON{}
	for _, d := range devs {
		out = append(out, deviceJSON{DeviceID: d.DeviceID.String(), Self: d.DeviceID == id.DeviceID, Expires: d.NotAfter.UnixMilli()})
	}
	return out, nil
}

// deleteMessage(groupId, messageId) deletes one of this device's
// messages for everyone in the chat (their clients drop it from the
// history); offline it waits in the outbox like a text.
func (a *app) deleteMessage(args []js.Value) (any, error) {
	c, _, err := a.activated()
	if err != nil {
		return nil, err
	}
	gid, err := argGroupID(args, 0)
	if err != nil {
		return nil, err
	}
	ids, err := argString(args, 1, "messageId")
	if err != nil {
		return nil, err
	}
	raw, err := hex.DecodeString(ids)
	var target client.MessageID
	if err != nil || len(raw) != len(target) {
		return nil, coded(codeBadArgument, "messageId %q: want %d hex digits", ids, 2*len(target))
	}
	copy(target[:], raw)
	content := &client.Content{Kind: client.KindDelete, Target: target}
	ctx, cancel := opContext()
	defer cancel()
	pending, err := c.SendOrQueue(ctx, gid, content)
	if err != nil {
		return nil, err
	}
	return map[string]any{"id": content.ID.String(), "pending": pending}, nil
}
