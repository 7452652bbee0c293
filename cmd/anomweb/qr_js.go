//go:build js

package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall/js"

	"anom/client"
	"anom/internal/qr"
)

// QR codes: the page draws codes from a module matrix and hands camera
// frames (a canvas's RGBA pixels) to the reader; what a code carries is
// parsed here, in Go (client.ParseInvite, client.ParseSafetyCode).

// qrEncode(text) resolves to {size, modules}: the QR code of text, size
// modules a side, modules a Uint8Array of size×size values (1 dark, 0
// light) row after row, without the quiet zone.
func (a *app) qrEncode(args []js.Value) (any, error) {
	text, err := argString(args, 0, "text")
	if err != nil {
		return nil, err
	}
	m, err := qr.Encode(text)
	if err != nil {
		return nil, coded(codeBadArgument, "%v", err)
	}
	u := js.Global().Get("Uint8Array").New(len(m.Dark))
	js.CopyBytesToJS(u, m.Dark)
	o := js.Global().Get("Object").New()
	o.Set("size", m.Size)
	o.Set("modules", u)
	return o, nil
}

// qrDecode(pixels, width, height) resolves to {text} of the QR code in
// an RGBA image (a canvas's ImageData.data, a Uint8ClampedArray or
// Uint8Array); it rejects with code no-qr when the image shows none.
func (a *app) qrDecode(args []js.Value) (any, error) {
	if len(args) < 3 || !(args[0].InstanceOf(js.Global().Get("Uint8ClampedArray")) || args[0].InstanceOf(js.Global().Get("Uint8Array"))) {
		return nil, coded(codeBadArgument, "pixels: want a Uint8ClampedArray (ImageData.data)")
	}
	if args[1].Type() != js.TypeNumber || args[2].Type() != js.TypeNumber {
		return nil, coded(codeBadArgument, "width, height: want numbers")
	}
	w, h := args[1].Int(), args[2].Int()
	if w <= 0 || h <= 0 || w*h > qr.MaxPixels || args[0].Length() != 4*w*h {
		return nil, coded(codeBadArgument, "an RGBA image of %d bytes for %d×%d pixels (at most %d pixels)", args[0].Length(), w, h, qr.MaxPixels)
	}
	pix := make([]byte, args[0].Length())
	js.CopyBytesToGo(pix, args[0])
	text, err := qr.Decode(pix, w, h)
	if errors.Is(err, qr.ErrNotFound) {
		return nil, &codedError{code: codeNoQR, err: err}
	}
	if err != nil {
		return nil, coded(codeBadArgument, "%v", err)
	}
	return map[string]any{"text": text}, nil
}

// verifyScanned(username, text) checks a safety code scanned from the
// screen of one of username's devices (client.SafetyCode: that device,
// this one, and the number it computed) against the number this device
// computes with that device's key from the directory, and marks the
// device verified if they are equal. It rejects with code
// safety-mismatch (loud: someone may be in between) if not, and with
// not-safety-code for a QR code that is no safety code.
func (a *app) verifyScanned(args []js.Value) (any, error) {
	c, id, err := a.activated()
	if err != nil {
		return nil, err
	}
	s, err := argString(args, 0, "username")
	if err != nil {
		return nil, err
	}
	text, err := argString(args, 1, "text")
	if err != nil {
		return nil, err
	}
	users, err := canonicalUsers([]string{s})
	if err != nil {
		return nil, err
	}
	code, err := client.ParseSafetyCode(strings.TrimSpace(text))
	if err != nil {
		return nil, &codedError{code: codeNotSafetyCode, err: err}
	}
	a.checkContacts(c)
	ctx, cancel := opContext()
	defer cancel()
	devs, err := c.Devices(ctx, users[0])
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if d.DeviceID != code.Shower {
			continue
		}
		mine, err := c.SafetyCode(d)
		if err != nil {
			return nil, err
		}
		if err := code.Check(id.DeviceID, d.DeviceID, mine.Number); err != nil {
			return nil, &codedError{code: codeSafetyDiffers, err: err}
		}
		full, err := c.VerifyDevice(users[0], d.DeviceID.String(), d.Key)
		if err != nil {
			return nil, err
		}
		return map[string]any{"deviceId": full, "verified": true}, nil
	}
	return nil, &codedError{code: codeSafetyDiffers, err: fmt.Errorf("%w: the code is of device %s, which is not one of %s's active devices", client.ErrSafetyMismatch, code.Shower, users[0])}
}

// invite() resolves to {invite}: the device's network as an invite
// (anom://…), for a further device to scan on its first run.
func (a *app) invite([]js.Value) (any, error) {
	_, id, err := a.activated()
	if err != nil {
		return nil, err
	}
	return map[string]any{"invite": id.Network.Invite()}, nil
}
