package chatui

import (
	"context"
	"errors"
	"fmt"
	"time"

	"anom/client"
	"anom/internal/identity"
)

// newOwnDevice tells the user about a device under their name: a notice
// when one of their devices approved it, an alert otherwise.
func (s *Session) newOwnDevice(e client.Event) {
	dev := "an unknown device"
	if e.Device != nil {
		dev = "device " + e.Device.DeviceID.String()
	}
	id, _ := s.c.Identity()
	a := e.Approval
	switch {
	case a != nil && a.Kind == identity.ApproverDevice && a.Approver == id.DeviceID:
		s.printf("* your new %s is active (you approved it from this device)", dev)
	case a != nil && a.Kind == identity.ApproverDevice:
		s.printf("* a new %s was added under your name %s, approved by your device %s", dev, s.self, a.Approver)
	case a != nil && a.Kind == identity.ApproverRoot:
		s.alert("ALERT: %s was added under your name %s by the network administrator. If you asked for it, /add-own-devices adds it to your chats; if not, tell your administrator", dev, s.self)
	default:
		s.alert("ALERT: %s was added under your name %s with no approval in the log. If you did not add it, someone else can read your new chats: tell your administrator", dev, s.self)
	}
}

// devices lists the user's devices.
func (s *Session) devices(ctx context.Context) error {
	devs, err := s.c.Devices(ctx, s.self)
	if err != nil {
		return err
	}
	id, err := s.c.Identity()
	if err != nil {
		return err
	}
	s.printf("Your devices (%s):", s.self)
	for _, d := range devs {
		this := ""
		if d.DeviceID == id.DeviceID {
			this = " (this device)"
		}
		s.printf("  device %s%s, until %s", d.DeviceID, this, d.NotAfter.Format(time.DateOnly))
	}
	return nil
}

// approve shows a new device's pairing request, then approves it once the
// user confirms the fingerprints match.
func (s *Session) approve(ctx context.Context, cmd Command) error {
	if !cmd.Confirm {
		req, err := identity.ParsePairingCode(cmd.Arg)
		if err != nil {
			return fmt.Errorf("not a pairing code: %w", err)
		}
		if req.Username != s.self {
			return fmt.Errorf("this pairing code is for %s; only %s's devices can approve it", sanitize(req.Username), sanitize(req.Username))
		}
		s.mu.Lock()
		s.pairing = req
		s.mu.Unlock()
		s.printf("A new device asks to become yours (%s). Its screen must show this fingerprint:", s.self)
		s.printf("    Fingerprint: %s", req.Fingerprint())
		s.printf("If it does, type /approve confirm; if not, do nothing.")
		return nil
	}
	s.mu.Lock()
	req := s.pairing
	s.pairing = nil
	s.mu.Unlock()
	if req == nil {
		return errors.New("nothing to confirm: /approve CODE first")
	}
	if err := s.c.ApproveDevice(ctx, req); err != nil {
		return fmt.Errorf("approving the device: %w", err)
	}
	s.printf("* approved: the new device can now activate as %s (within a day)", s.self)
	return nil
}
