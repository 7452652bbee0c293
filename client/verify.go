package client

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Contacts' devices. The device keeps, for each user it shares a group
// with, the devices (ID and signature key) it last saw of that user and
// which of them its user marked verified (after comparing safety
// numbers). NoteContactDevices compares what the groups show now with
// that record, so the interface can alert on a change; a verified device
// that is gone or has another key is reported apart, to be shown loudly.

// recContactPrefix + username holds the contact's known devices.
const recContactPrefix = "contact/"

// maxContactDevices bounds a contact record.
const maxContactDevices = 1024

// ContactDevice is a device of a contact as this device knows it.
type ContactDevice struct {
	DeviceID     string
	SignatureKey []byte
	// Verified is set once the user marked it verified (VerifyDevice).
	Verified bool
}

// DeviceChange is how a contact's devices differ from the last time.
type DeviceChange struct {
	Username string
	// First is set when the contact was not known before: nothing is
	// compared, the devices are recorded.
	First bool
	// Added and Removed are device IDs.
	Added, Removed []string
	// Rekeyed are device IDs seen again with another signature key.
	Rekeyed []string
	// VerifiedLost are the verified devices among Removed and Rekeyed:
	// the device the user checked is no longer the one the groups hold.
	VerifiedLost []string
}

// Changed reports whether there is anything to tell.
func (d *DeviceChange) Changed() bool {
	return !d.First && (len(d.Added) > 0 || len(d.Removed) > 0 || len(d.Rekeyed) > 0)
}

func encodeContact(devs []ContactDevice) []byte {
	b := []byte{recordVersion}
	b = append(b, byte(len(devs)>>8), byte(len(devs)))
	for _, d := range devs {
		b = appendStr8(b, d.DeviceID)
		b = appendStr8(b, string(d.SignatureKey))
		v := byte(0)
		if d.Verified {
			v = 1
		}
		b = append(b, v)
	}
	return b
}

func decodeContact(b []byte) ([]ContactDevice, error) {
	d := decoder{b: b, bad: ErrCorrupt}
	if v := d.u8(); d.err == nil && v != recordVersion {
		d.fail("contact record version %d", v)
	}
	n := int(d.u16())
	if d.err == nil && n > maxContactDevices {
		d.fail("%d devices", n)
	}
	var out []ContactDevice
	for i := 0; i < n && d.err == nil; i++ {
		cd := ContactDevice{DeviceID: d.str8(), SignatureKey: []byte(d.str8())}
		switch v := d.u8(); v {
		case 0:
		case 1:
			cd.Verified = true
		default:
			d.fail("verified flag %d", v)
		}
		out = append(out, cd)
	}
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("decoding contact record: %w", err)
	}
	return out, nil
}

func (c *Client) contactLocked(username string) ([]ContactDevice, bool, error) {
	raw, err := c.v.get(recContactPrefix + username)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s's devices: %w", username, err)
	}
	devs, err := decodeContact(raw)
	return devs, err == nil, err
}

// ContactDevices returns the devices of username this device knows, with
// their verified marks, sorted by ID.
func (c *Client) ContactDevices(username string) ([]ContactDevice, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return nil, ErrWiped
	}
	devs, _, err := c.contactLocked(username)
	return devs, err
}

// NoteContactDevices records the devices username has now in this
// device's groups (members of any username are ignored but username's;
// the union over every group is what to pass) and returns how they differ
// from those recorded before. Verified marks stay with devices whose key
// is unchanged.
func (c *Client) NoteContactDevices(username string, members []Member) (*DeviceChange, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return nil, ErrWiped
	}
	old, known, err := c.contactLocked(username)
	if err != nil {
		return nil, err
	}
	ch := &DeviceChange{Username: username, First: !known}
	byID := map[string]ContactDevice{}
	for _, d := range old {
		byID[d.DeviceID] = d
	}
	var now []ContactDevice
	seen := map[string]bool{}
	for _, m := range members {
		if m.Err != nil || m.Username != username || seen[m.DeviceID] {
			continue
		}
		seen[m.DeviceID] = true
		nd := ContactDevice{DeviceID: m.DeviceID, SignatureKey: bytes.Clone(m.SignatureKey)}
		switch od, ok := byID[m.DeviceID]; {
		case !ok:
			ch.Added = append(ch.Added, m.DeviceID)
		case !bytes.Equal(od.SignatureKey, m.SignatureKey):
			ch.Rekeyed = append(ch.Rekeyed, m.DeviceID)
			if od.Verified {
				ch.VerifiedLost = append(ch.VerifiedLost, m.DeviceID)
			}
		default:
			nd.Verified = od.Verified
		}
		now = append(now, nd)
	}
	if len(now) > maxContactDevices {
		return nil, fmt.Errorf("recording %s's devices: more than %d", username, maxContactDevices)
	}
	for _, od := range old {
		if !seen[od.DeviceID] {
			ch.Removed = append(ch.Removed, od.DeviceID)
			if od.Verified {
				ch.VerifiedLost = append(ch.VerifiedLost, od.DeviceID)
			}
		}
	}
	if known && !ch.Changed() {
		return ch, nil
	}
	slices.SortFunc(now, func(a, b ContactDevice) int { return strings.Compare(a.DeviceID, b.DeviceID) })
	slices.Sort(ch.VerifiedLost)
	if err := c.v.put(recContactPrefix+username, encodeContact(now)); err != nil {
		return nil, fmt.Errorf("recording %s's devices: %w", username, err)
	}
	return ch, nil
}

// ErrUnknownDevice is returned when verifying a device this device has
// not seen in its groups.
var ErrUnknownDevice = errors.New("client: unknown device")

// VerifyDevice marks a device of username verified, after the user
// compared its safety number (SafetyNumber) with the other side's. key is
// the signature key whose number was compared: the mark is refused if the
// device now has another, and dropped if it later changes. prefix may be
// the start of the device ID (at least 4 characters) when it names one
// device; the device's full ID is returned.
func (c *Client) VerifyDevice(username, prefix string, key []byte) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return "", ErrWiped
	}
	devs, _, err := c.contactLocked(username)
	if err != nil {
		return "", err
	}
	idx := -1
	for i, d := range devs {
		if d.DeviceID == prefix || (len(prefix) >= 4 && strings.HasPrefix(d.DeviceID, prefix)) {
			if idx >= 0 {
				return "", fmt.Errorf("verifying %s: %q names several devices of %s", prefix, prefix, username)
			}
			idx = i
		}
	}
	if idx < 0 {
		return "", fmt.Errorf("verifying %s of %s: %w (not in a chat with this device)", prefix, username, ErrUnknownDevice)
	}
	if key != nil && !bytes.Equal(devs[idx].SignatureKey, key) {
		return "", fmt.Errorf("verifying %s of %s: the key compared is not the one in the chats", devs[idx].DeviceID, username)
	}
	devs[idx].Verified = true
	if err := c.v.put(recContactPrefix+username, encodeContact(devs)); err != nil {
		return "", fmt.Errorf("verifying %s of %s: %w", devs[idx].DeviceID, username, err)
	}
	return devs[idx].DeviceID, nil
}
