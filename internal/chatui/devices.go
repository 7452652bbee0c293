package chatui

import (
	"context"
	"errors"
	"fmt"
	"time"

	"anom/client"
	"anom/identity"
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
// user confirms the fingerprints match. The code is the short one the new
// device shows (its request is fetched from the server and checked
// against it) or the long one.
func (s *Session) approve(ctx context.Context, cmd Command) error {
	if !cmd.Confirm {
		req, err := s.pairingRequest(ctx, cmd.Arg)
		if err != nil {
			return err
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

// pairingRequest reads a pairing code: a short one is looked up on the
// server, a long one is the request itself.
func (s *Session) pairingRequest(ctx context.Context, code string) (*identity.PairingRequest, error) {
	short, serr := identity.ParseShortCode(code)
	if serr != nil {
		req, err := identity.ParsePairingCode(code)
		if err != nil {
			return nil, fmt.Errorf("not a pairing code: the new device shows ten characters such as 7KQ2-M9XD-4T (%v)", serr)
		}
		return req, nil
	}
	req, err := s.c.LookupPairing(ctx, short)
	switch {
	case errors.Is(err, client.ErrPairingCode):
		return nil, fmt.Errorf("no pairing request under %s: check the code on the new device (codes last ten minutes; past that, start its pairing again) (%w)", short, err)
	case errors.Is(err, client.ErrPairing):
		return nil, fmt.Errorf("the pairing request under %s is not one of yours or not the code's: do not approve; %w", short, err)
	case err != nil:
		return nil, fmt.Errorf("looking up the pairing code: %w", err)
	}
	return req, nil
}
