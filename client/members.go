package client

import (
	"cmp"
	"slices"
	"time"

	"anom/mls"
)

// DeviceInfo is what a member's credential says about its device.
type DeviceInfo struct {
	// DeviceID is the fixed device ID, in its printed form.
	DeviceID string
	// Username is the user the device belongs to.
	Username string
	// Expires is when the device's certificate expires.
	Expires time.Time
}

// CredentialDecoder turns an MLS credential (and the leaf's signature key)
// into the device it certifies, verifying it. anom's decoder checks device
// certificates against the network root.
type CredentialDecoder interface {
	DecodeCredential(cred *mls.Credential, signatureKey []byte) (DeviceInfo, error)
}

// Member is one device in a group.
type Member struct {
	DeviceInfo
	Leaf         mls.LeafIndex
	SignatureKey []byte
	// Self is set for this device's own leaf.
	Self bool
	// Err is set when the credential did not decode or verify; the other
	// fields but Leaf, SignatureKey and Self are then empty.
	Err error
}

// MembersOf lists a group's devices, sorted by username then device ID
// (members whose credential failed come last, by leaf).
func MembersOf(g *mls.Group, dec CredentialDecoder) []Member {
	var out []Member
	for _, m := range g.Members() {
		mm := Member{Leaf: m.Leaf, SignatureKey: m.SignatureKey, Self: m.Self}
		cred := m.Credential
		if info, err := dec.DecodeCredential(&cred, m.SignatureKey); err != nil {
			mm.Err = err
		} else {
			mm.DeviceInfo = info
		}
		out = append(out, mm)
	}
	slices.SortFunc(out, func(a, b Member) int {
		if (a.Err == nil) != (b.Err == nil) {
			if a.Err == nil {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.Username, b.Username), cmp.Compare(a.DeviceID, b.DeviceID), cmp.Compare(a.Leaf, b.Leaf))
	})
	return out
}

// User is a username with its devices in a group.
type User struct {
	Username string
	Devices  []Member
}

// UsersOf groups members (as MembersOf returns them) by username, leaving
// out members whose credential failed.
func UsersOf(members []Member) []User {
	var out []User
	for _, m := range members {
		if m.Err != nil {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Username == m.Username {
			out[n-1].Devices = append(out[n-1].Devices, m)
			continue
		}
		out = append(out, User{Username: m.Username, Devices: []Member{m}})
	}
	return out
}
