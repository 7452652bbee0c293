package loadgen

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// Group is a group set up on the server: its ID, the epoch application
// messages are for, and its members (the first made it) with their leaf
// indexes in the group's ratchet tree.
type Group struct {
	ID      []byte
	Epoch   uint64
	Members []*Device
	Leaves  []uint32
}

// maxAdds is the members one commit adds (the server's default limit is
// 50).
const maxAdds = 40

// SetupGroup makes an MLS group on the server with the given members:
// members[0], connected on c, creates it and adds the others with MLS
// commits carrying key packages made for them (signed with their keys)
// and Welcomes, which the server validates and follows.
func SetupGroup(ctx context.Context, c *Conn, id []byte, members []*Device) (*Group, error) {
	suite, err := mls.Suite(1)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	kp := func(d *Device) (*mls.KeyPackageBundle, error) {
		return mls.NewKeyPackage(suite, d.Cert.Credential(), mls.SignaturePrivateKey(d.Key.Seed()), mls.KeyPackageOptions{}, rand.Reader, now)
	}
	self, err := kp(members[0])
	if err != nil {
		return nil, fmt.Errorf("making key package: %w", err)
	}
	// The creator does not check its own key packages' credentials (nil
	// validator); the server validates every added key package.
	g, err := mls.CreateGroup(mls.Config{}, id, self, mls.GroupOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating MLS group: %w", err)
	}
	if _, err := c.Call(ctx, &anomv1.Frame{Body: &anomv1.Frame_CreateGroup{CreateGroup: &anomv1.CreateGroup{GroupId: id}}}); err != nil {
		return nil, fmt.Errorf("creating group: %w", err)
	}
	rest := members[1:]
	for len(rest) > 0 {
		n := min(len(rest), maxAdds)
		var adds []*mls.KeyPackage
		for _, d := range rest[:n] {
			b, err := kp(d)
			if err != nil {
				return nil, fmt.Errorf("making key package: %w", err)
			}
			adds = append(adds, b.KeyPackage)
		}
		pc, err := g.Commit(mls.CommitOptions{Add: adds, NoPath: true})
		if err != nil {
			return nil, fmt.Errorf("committing adds: %w", err)
		}
		_, err = c.Call(ctx, &anomv1.Frame{Body: &anomv1.Frame_Send{Send: &anomv1.Send{GroupId: id, Message: pc.Commit.Encode(), Welcome: pc.Welcome.Encode()}}})
		if err != nil {
			return nil, fmt.Errorf("sending commit: %w", err)
		}
		if err := g.ApplyCommit(pc); err != nil {
			return nil, fmt.Errorf("applying commit: %w", err)
		}
		rest = rest[n:]
	}
	leaves, err := leavesOf(g, members)
	if err != nil {
		return nil, err
	}
	return &Group{ID: id, Epoch: g.Epoch(), Members: members, Leaves: leaves}, nil
}

// leavesOf finds each member's leaf in g by its signature key.
func leavesOf(g *mls.Group, members []*Device) ([]uint32, error) {
	byKey := map[string]uint32{}
	for _, m := range g.Members() {
		byKey[string(m.SignatureKey)] = uint32(m.Leaf)
	}
	leaves := make([]uint32, len(members))
	for i, d := range members {
		l, ok := byKey[string(d.Key.Public().(ed25519.PublicKey))]
		if !ok {
			return nil, fmt.Errorf("member %s has no leaf in the group", d.Cert.DeviceID)
		}
		leaves[i] = l
	}
	return leaves, nil
}

// GroupID makes the ID of group i of a run.
func GroupID(run string, i int) []byte {
	return fmt.Appendf(nil, "%-16s", fmt.Sprintf("%s-%d", run, i))
}
