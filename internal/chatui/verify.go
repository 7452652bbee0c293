package chatui

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"anom/client"
)

// checkDevices compares each contact's devices in this device's chats
// (all chats together) with what the client recorded last, and prints
// what changed: a new or gone device as an alert, a verified device that
// is gone or has another key as a warning. A contact seen for the first
// time is recorded without a word.
func (s *Session) checkDevices() {
	byUser := map[string][]client.Member{}
	for _, g := range s.c.Groups() {
		for _, m := range g.Members {
			if m.Err == nil && m.Username != s.self {
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
		ch, err := s.c.NoteContactDevices(u, byUser[u])
		if err != nil {
			s.printf("! checking %s's devices: %s", u, oneLine(describe(err)))
			continue
		}
		for _, line := range s.deviceChangeText(ch) {
			s.printf("%s", line)
		}
	}
}

// deviceChangeText is what a change of a contact's devices shows.
func (s *Session) deviceChangeText(ch *client.DeviceChange) []string {
	if !ch.Changed() {
		return nil
	}
	u := sanitize(ch.Username)
	lost := map[string]bool{}
	for _, id := range ch.VerifiedLost {
		lost[id] = true
	}
	var out []string
	for _, id := range ch.Rekeyed {
		if lost[id] {
			out = append(out, fmt.Sprintf("!!! WARNING: %s's VERIFIED device %s HAS A NEW KEY: it is not the device you verified; compare safety numbers again (/safety %s) !!!", u, id, u))
		} else {
			out = append(out, fmt.Sprintf("!!! %s's device %s has a new key: compare its safety number (/safety %s) !!!", u, id, u))
		}
	}
	for _, id := range ch.Removed {
		if lost[id] {
			out = append(out, fmt.Sprintf("!!! WARNING: %s's VERIFIED device %s is no longer in your chats with %s !!!", u, id, u))
		} else {
			out = append(out, fmt.Sprintf("* %s's device %s is no longer in your chats", u, id))
		}
	}
	for _, id := range ch.Added {
		out = append(out, fmt.Sprintf("!!! %s has a new device %s: compare its safety number (/safety %s) !!!", u, id, u))
	}
	return out
}

// verify marks a device of user verified, after its safety number was
// compared: the key is the directory's, the one /safety showed the
// number of, and must be the one in the chats.
func (s *Session) verify(ctx context.Context, user, prefix string) error {
	devs, err := s.c.Devices(ctx, user)
	if err != nil {
		return err
	}
	var match []string
	var key []byte
	for _, d := range devs {
		if id := d.DeviceID.String(); strings.HasPrefix(id, prefix) {
			match = append(match, id)
			key = d.Key
		}
	}
	switch len(match) {
	case 0:
		return fmt.Errorf("%s has no active device %s (see /safety %s)", user, prefix, user)
	case 1:
	default:
		return fmt.Errorf("%s names %d devices of %s; give more of the ID", prefix, len(match), user)
	}
	s.refresh()
	id, err := s.c.VerifyDevice(user, match[0], key)
	if err != nil {
		return err
	}
	s.printf("* %s's device %s is now marked verified on this device; a change of it will be shown loudly", user, id)
	return nil
}
