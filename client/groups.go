package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"anom/identity"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// ErrNoGroup is returned for a group the device is not in.
var ErrNoGroup = errors.New("client: not in this group")

// ErrNotMember is returned for removing a device that is not in the group.
var ErrNotMember = errors.New("client: the device is not in this group")

// ErrSelfRemove is returned for removing this device itself: another
// member removes it.
var ErrSelfRemove = errors.New("client: a device cannot remove itself; another member can")

// CreateGroup makes a new group with every device of the given users and
// this user's other devices, each checked in the transparency log, and
// returns its ID. A 1:1 chat is a group with one other user.
func (c *Client) CreateGroup(ctx context.Context, usernames ...string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn, err := c.ready()
	if err != nil {
		return nil, err
	}
	id := make([]byte, 16)
	if _, err := io.ReadFull(c.rand, id); err != nil {
		return nil, fmt.Errorf("creating group: %w", err)
	}
	cert, err := identity.DecodeDeviceCertificate(c.dev.cert)
	if err != nil {
		return nil, fmt.Errorf("%w: own certificate: %w", ErrCorrupt, err)
	}
	self, err := mls.NewKeyPackage(c.suite(), cert.Credential(), c.sigPriv, mls.KeyPackageOptions{Lifetime: c.kpLifetime(cert)}, c.rand, c.now())
	if err != nil {
		return nil, fmt.Errorf("creating group: %w", err)
	}
	g, err := mls.CreateGroup(c.mlsConfig(), id, self, mls.GroupOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating group: %w", err)
	}
	if _, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_CreateGroup{CreateGroup: &anomv1.CreateGroup{GroupId: id}}}); err != nil {
		return nil, fmt.Errorf("creating group: %w", err)
	}
	gs := &groupState{g: g}
	if err := c.saveGroup(gs); err != nil {
		return nil, err
	}
	c.groups[string(id)] = gs
	if err := c.addUsers(ctx, cn, gs, append([]string{c.dev.username}, usernames...), usernames); err != nil {
		return id, err
	}
	return id, nil
}

// AddMembers adds every device of the given users to a group.
func (c *Client) AddMembers(ctx context.Context, groupID []byte, usernames ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn, gs, err := c.readyGroup(groupID)
	if err != nil {
		return err
	}
	return c.addUsers(ctx, cn, gs, usernames, usernames)
}

// RemoveMembers removes every device of the given users from a group.
func (c *Client) RemoveMembers(ctx context.Context, groupID []byte, usernames ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn, gs, err := c.readyGroup(groupID)
	if err != nil {
		return err
	}
	if err := c.fetchGroup(ctx, cn, groupID, gs.cursor+1); err != nil {
		return err
	}
	return c.commit(ctx, cn, gs, func() mls.CommitOptions {
		var leaves []mls.LeafIndex
		for _, m := range MembersOf(gs.g, c.decoder()) {
			for _, u := range usernames {
				if m.Err == nil && m.Username == u && !m.Self {
					leaves = append(leaves, m.Leaf)
				}
			}
		}
		return mls.CommitOptions{Remove: leaves}
	})
}

// RemoveDevice removes one device (of any user but this device itself)
// from a group, leaving the user's other devices in it.
func (c *Client) RemoveDevice(ctx context.Context, groupID []byte, device identity.DeviceID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn, gs, err := c.readyGroup(groupID)
	if err != nil {
		return err
	}
	if device == c.dev.id {
		return fmt.Errorf("removing device %s: %w", device, ErrSelfRemove)
	}
	if err := c.fetchGroup(ctx, cn, groupID, gs.cursor+1); err != nil {
		return err
	}
	leaves := func() []mls.LeafIndex {
		var out []mls.LeafIndex
		for _, m := range MembersOf(gs.g, c.decoder()) {
			if m.Err == nil && m.DeviceID == device.String() && !m.Self {
				out = append(out, m.Leaf)
			}
		}
		return out
	}
	if len(leaves()) == 0 {
		return fmt.Errorf("removing device %s: %w", device, ErrNotMember)
	}
	return c.commit(ctx, cn, gs, func() mls.CommitOptions { return mls.CommitOptions{Remove: leaves()} })
}

// addUsers adds the devices of users not yet in the group; each user in
// required must have at least one.
func (c *Client) addUsers(ctx context.Context, cn *conn, gs *groupState, users, required []string) error {
	present := map[string]bool{}
	for _, m := range MembersOf(gs.g, c.decoder()) {
		present[m.DeviceID] = true
	}
	var kps []*mls.KeyPackage
	for _, u := range users {
		devs, err := c.lookup(ctx, cn, u)
		if err != nil {
			return err
		}
		n := 0
		for _, d := range devs {
			if d.DeviceID == c.dev.id || present[d.DeviceID.String()] {
				n++
				continue
			}
			kp, err := c.claim(ctx, cn, d)
			if err != nil {
				return err
			}
			kps = append(kps, kp)
			n++
		}
		for _, r := range required {
			if r == u && n == 0 {
				return fmt.Errorf("adding %s: %w", u, ErrNoDevices)
			}
		}
	}
	if len(kps) == 0 {
		return nil
	}
	if err := c.fetchGroup(ctx, cn, gs.g.GroupID(), gs.cursor+1); err != nil {
		return err
	}
	if err := c.commit(ctx, cn, gs, func() mls.CommitOptions { return mls.CommitOptions{Add: kps} }); err != nil {
		return err
	}
	return c.resendGroupName(ctx, cn, gs)
}

// claim takes one key package of a device and checks that it is the
// device's: valid, with the certificate the directory showed.
func (c *Client) claim(ctx context.Context, cn *conn, d *identity.DeviceCertificate) (*mls.KeyPackage, error) {
	resp, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_ClaimKeyPackage{ClaimKeyPackage: &anomv1.ClaimKeyPackage{DeviceId: d.DeviceID[:]}}})
	if err != nil {
		return nil, fmt.Errorf("claiming a key package of %s: %w", d.DeviceID, err)
	}
	msg, err := mls.DecodeMLSMessage(resp.GetKeyPackage().GetKeyPackage())
	if err != nil || msg.WireFormat != mls.WireKeyPackage || msg.KeyPackage == nil {
		return nil, fmt.Errorf("claiming a key package of %s: %w: not a key package", d.DeviceID, ErrProtocol)
	}
	kp := msg.KeyPackage
	if err := mls.ValidateKeyPackage(c.suite(), kp, c.now(), c.mlsConfig().ValidateCredential); err != nil {
		return nil, fmt.Errorf("key package of %s: %w", d.DeviceID, err)
	}
	if !bytes.Equal(kp.LeafNode.Credential.Identity, d.Encode()) {
		return nil, fmt.Errorf("key package of %s: %w: credential is not the logged certificate", d.DeviceID, ErrProtocol)
	}
	return kp, nil
}

// commit makes a commit, sends it, and applies it once the server has
// accepted it. On an epoch conflict it catches up and tries again. A
// commit of an earlier call whose answer was lost is settled first.
func (c *Client) commit(ctx context.Context, cn *conn, gs *groupState, opts func() mls.CommitOptions) error {
	if err := c.settlePending(ctx, cn, gs); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		o := opts()
		if len(o.Add) == 0 && len(o.Remove) == 0 && o.Extensions == nil && len(o.ExternalPSKs) == 0 {
			return nil // nothing (left) to do: another member's commit did it
		}
		pc, err := gs.g.Commit(o)
		if err != nil {
			return fmt.Errorf("making commit: %w", err)
		}
		err = c.sendCommit(ctx, cn, gs, pc)
		if IsCode(err, CodeEpochConflict) && attempt < 3 {
			if err := c.fetchGroup(ctx, cn, gs.g.GroupID(), gs.cursor+1); err != nil {
				return err
			}
			continue
		}
		return err
	}
}

// testHookCommitSending, set by tests only, runs just before a commit
// leaves.
var testHookCommitSending func()

// sendCommit keeps a commit durably as the group's pending commit, sends
// it and applies it once the server has accepted it. If the answer is
// lost the commit stays pending: the server may have stored it, and the
// device then applies it when it meets it in the group's log (see
// ownMessage). An epoch conflict is returned as it is.
func (c *Client) sendCommit(ctx context.Context, cn *conn, gs *groupState, pc *mls.PendingCommit) error {
	raw, err := pc.Save()
	if err != nil {
		return fmt.Errorf("keeping commit: %w", err)
	}
	if err := c.v.put(pendingRecName(gs.g.GroupID()), raw); err != nil {
		return fmt.Errorf("keeping commit: %w", err)
	}
	send := &anomv1.Send{GroupId: gs.g.GroupID(), Message: pc.Commit.Encode()}
	if pc.Welcome != nil {
		send.Welcome = pc.Welcome.Encode()
	}
	if testHookCommitSending != nil {
		testHookCommitSending()
	}
	_, err = cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_Send{Send: send}})
	if IsCode(err, CodeEpochConflict) {
		return err
	}
	if refused(err) {
		// The server answered that it did not take the commit.
		if derr := c.v.del(pendingRecName(gs.g.GroupID())); derr != nil {
			return fmt.Errorf("dropping a refused commit: %w", derr)
		}
		return fmt.Errorf("sending commit: %w", err)
	}
	if err != nil {
		return fmt.Errorf("sending commit (kept until the group's log shows whether the server has it): %w", err)
	}
	return c.applyPending(gs, pc)
}

// refused reports whether the server answered that a message was refused
// before being stored (as opposed to a lost answer or a failure that may
// have come after storing it).
func refused(err error) bool {
	for _, code := range []ErrorCode{CodeForbidden, CodeInvalidMessage,
		CodeInvalidArgument, CodeTooLarge, CodeBadFrame} {
		if IsCode(err, code) {
			return true
		}
	}
	return false
}

// applyPending moves the group to the epoch of its pending commit.
func (c *Client) applyPending(gs *groupState, pc *mls.PendingCommit) error {
	if err := gs.g.ApplyCommit(pc); err != nil {
		return fmt.Errorf("applying own commit: %w", err)
	}
	if err := c.saveGroup(gs); err != nil {
		return err
	}
	if err := c.v.del(pendingRecName(gs.g.GroupID())); err != nil {
		return fmt.Errorf("applying own commit: %w", err)
	}
	c.emit(Event{Type: EventMembers, Group: gs.g.GroupID()})
	return nil
}

// pending returns the group's pending commit, or nil if it has none for
// its current epoch (one of an earlier epoch lost to another member's
// commit is dropped).
func (c *Client) pending(gs *groupState) (*mls.PendingCommit, error) {
	name := pendingRecName(gs.g.GroupID())
	raw, err := c.v.get(name)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading pending commit: %w", err)
	}
	pc, err := mls.LoadPendingCommit(c.mlsConfig(), raw)
	if err != nil {
		return nil, fmt.Errorf("%w: pending commit: %w", ErrCorrupt, err)
	}
	if pc.Epoch() != gs.g.Epoch() || !gs.g.Active() {
		if err := c.v.del(name); err != nil {
			return nil, fmt.Errorf("dropping a stale pending commit: %w", err)
		}
		return nil, nil
	}
	return pc, nil
}

// settlePending sends the group's pending commit again, as it was, if the
// group's log (read to its end by the caller) did not have it: the server
// either stores it now, or has just stored it from the lost call, or
// refuses it for another member's commit; the log then tells which.
func (c *Client) settlePending(ctx context.Context, cn *conn, gs *groupState) error {
	pc, err := c.pending(gs)
	if err != nil || pc == nil {
		return err
	}
	err = c.sendCommit(ctx, cn, gs, pc)
	if !IsCode(err, CodeEpochConflict) {
		return err
	}
	if err := c.fetchGroup(ctx, cn, gs.g.GroupID(), gs.cursor+1); err != nil {
		return err
	}
	if pc, err := c.pending(gs); err != nil || pc != nil {
		return cmp.Or(err, fmt.Errorf("settling a pending commit: %w: epoch conflict, and the log does not move the group", ErrProtocol))
	}
	return nil
}

// ownMessage handles a message of this device met in the group's log:
// sent ones were recorded when sent, but a commit whose answer was lost is
// applied now, from the pending commit.
func (c *Client) ownMessage(gs *groupState, m *anomv1.GroupMessage) error {
	pc, err := c.pending(gs)
	if err != nil || pc == nil {
		return err
	}
	if !bytes.Equal(pc.Commit.Encode(), m.GetMessage()) {
		return nil
	}
	return c.applyPending(gs, pc)
}

func pendingRecName(id []byte) string { return recPendingPref + hex.EncodeToString(id) }

// recPendingPref + hex group ID: the group's pending commit.
const recPendingPref = "pending/"

// ready returns the connection of an activated, connected device.
func (c *Client) ready() (*conn, error) {
	if c.wiped {
		return nil, ErrWiped
	}
	if c.dev == nil {
		return nil, ErrNotActivated
	}
	return c.current()
}

// readyGroup returns the connection of a ready device and one of its
// active groups.
func (c *Client) readyGroup(id []byte) (*conn, *groupState, error) {
	cn, err := c.ready()
	if err != nil {
		return nil, nil, err
	}
	gs, err := c.group(id)
	if err != nil {
		return nil, nil, err
	}
	return cn, gs, nil
}

func (c *Client) group(id []byte) (*groupState, error) {
	gs, ok := c.groups[string(id)]
	if !ok || !gs.g.Active() {
		return nil, fmt.Errorf("group %x: %w", id, ErrNoGroup)
	}
	return gs, nil
}

func (c *Client) saveGroup(gs *groupState) error {
	st, err := gs.g.Save()
	if err != nil {
		return fmt.Errorf("saving group: %w", err)
	}
	rec := &groupRecord{state: st, cursor: gs.cursor, timer: gs.timer}
	if err := c.v.put(groupRecName(gs.g.GroupID()), rec.encode()); err != nil {
		return fmt.Errorf("saving group: %w", err)
	}
	return c.noteEpochSecret(gs)
}

func (c *Client) decoder() CredentialDecoder {
	return certDecoder{root: c.dev.net.Root, now: c.now}
}

// GroupSummary describes a group the device is in.
type GroupSummary struct {
	ID      []byte
	Epoch   uint64
	Members []Member
	// Timer is the disappearing-message timer; 0 is off.
	Timer uint32
}

// Groups lists the device's groups.
func (c *Client) Groups() []GroupSummary {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []GroupSummary
	for _, gs := range c.groups {
		if !gs.g.Active() {
			continue
		}
		out = append(out, GroupSummary{ID: gs.g.GroupID(), Epoch: gs.g.Epoch(), Members: MembersOf(gs.g, c.decoder()), Timer: gs.timer})
	}
	return out
}

// Members lists the devices of a group.
func (c *Client) Members(groupID []byte) ([]Member, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, err := c.group(groupID)
	if err != nil {
		return nil, err
	}
	return MembersOf(gs.g, c.decoder()), nil
}
