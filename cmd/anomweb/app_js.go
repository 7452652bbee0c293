//go:build js

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall/js"
	"time"

	"anom/client"
	"anom/client/idbstorage"
	"anom/identity"
)

// dbName is the IndexedDB database of the device.
const dbName = "anom-device"

// opTimeout bounds one call's network round trips.
const opTimeout = time.Minute

// app is the state behind the anom object: at most one device, unlocked
// or not.
type app struct {
	mu     sync.Mutex
	st     *idbstorage.Storage
	sess   *session // the unlocked device; nil when locked
	wiped  bool     // the device was wiped while the page was open
	events *eventQueue
	// contactsMu serialises checkContacts, so that a change is told once.
	contactsMu sync.Mutex
	// release is the app release the page runs, checked in the invite's
	// network before activation.
	release *appRelease
}

// session is one unlocked device. Its events reach the page only while it
// is live, so that what a duress unlock does behind the scenes, and a
// device being closed, say nothing.
type session struct {
	c      *client.Client
	live   atomic.Bool
	cancel context.CancelFunc // ends Run; nil before activation
}

func newApp(st *idbstorage.Storage) *app {
	return &app{st: st, events: newEventQueue(), release: newAppRelease()}
}

// config is the client configuration of a session.
func (a *app) config(s *session) client.Config {
	return client.Config{Storage: a.st, OnEvent: func(e client.Event) {
		if !s.live.Load() {
			return
		}
		a.events.push(eventOf(e))
		switch e.Type {
		case client.EventJoined, client.EventMembers, client.EventDeviceRemoved:
			// Not here: the client may hold its lock while it
			// reports.
			go a.checkContacts(s.c)
		}
	}}
}

// object makes the global anom object.
func (a *app) object() js.Value {
	methods := map[string]func([]js.Value) (any, error){
		"status":          a.status,
		"create":          a.create,
		"unlock":          a.unlock,
		"activate":        a.activate,
		"lock":            a.lock,
		"wipe":            a.wipe,
		"chats":           a.chats,
		"history":         a.history,
		"send":            a.send,
		"startChat":       a.startChat,
		"createGroup":     a.createGroup,
		"addMembers":      a.addMembers,
		"removeMembers":   a.removeMembers,
		"setGroupName":    a.setGroupName,
		"setTimer":        a.setTimer,
		"escrowPolicy":    a.escrowPolicy,
		"safety":          a.safety,
		"verify":          a.verify,
		"devices":         a.devices,
		"sendFile":        a.sendFile,
		"fetchAttachment": a.fetchAttachment,
		"fetchThumbnail":  a.fetchThumbnail,
		"markRead":        a.markRead,
		"pair":            a.pair,
		"lookupPairing":   a.lookupPairing,
		"approveDevice":   a.approveDevice,
		"deleteMessage":   a.deleteMessage,
		"verifyRelease":   a.verifyRelease,
		"logHead":         a.logHead,
		"setAppRelease":   a.setAppRelease,
		"qrEncode":        a.qrEncode,
		"qrDecode":        a.qrDecode,
		"verifyScanned":   a.verifyScanned,
		"invite":          a.invite,
	}
	o := map[string]any{}
	for name, fn := range methods {
		o[name] = promise(fn)
	}
	o["onEvent"] = js.FuncOf(func(_ js.Value, args []js.Value) any {
		h := js.Null()
		if len(args) > 0 && args[0].Type() == js.TypeFunction {
			h = args[0]
		}
		a.events.setHandler(h)
		return nil
	})
	return js.ValueOf(o)
}

// current returns the unlocked device, or an error coded "locked".
func (a *app) current() (*client.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sess == nil {
		return nil, coded(codeLocked, "no unlocked device")
	}
	return a.sess.c, nil
}

// activated returns the unlocked, activated device and its identity.
func (a *app) activated() (*client.Client, client.Identity, error) {
	c, err := a.current()
	if err != nil {
		return nil, client.Identity{}, err
	}
	id, err := c.Identity()
	if err != nil {
		return nil, client.Identity{}, err
	}
	return c, id, nil
}

// stored reports whether the browser holds a device's state.
func (a *app) stored() (bool, error) {
	names, err := a.st.List()
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(names) > 0, nil
}

func (a *app) status([]js.Value) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.sess; s != nil {
		out := statusJSON{State: "unlocked", Connected: s.c.Connected()}
		if id, err := s.c.Identity(); err == nil {
			out.Activated, out.Username, out.DeviceID = true, id.Username, id.DeviceID.String()
		}
		return out, nil
	}
	ok, err := a.stored()
	switch {
	case err != nil:
		return nil, err
	case ok:
		return statusJSON{State: "locked"}, nil
	case a.wiped:
		return statusJSON{State: "wiped"}, nil
	}
	return statusJSON{State: "none"}, nil
}

// create(pin, duressPin, options) makes a new device, unlocked and not
// activated.
func (a *app) create(args []js.Value) (any, error) {
	pin, err := argString(args, 0, "pin")
	if err != nil {
		return nil, err
	}
	duress, err := argString(args, 1, "duressPin")
	if err != nil {
		return nil, err
	}
	o, err := argObject(args, 2, "options")
	if err != nil {
		return nil, err
	}
	s := &session{}
	cfg := a.config(s)
	if cfg.MaxFailedUnlocks, err = optInt(o, "maxFailedUnlocks", defaultMaxFailedUnlocks); err != nil {
		return nil, err
	}
	wipeAfter, err := optInt(o, "wipeAfterSeconds", 0)
	if err != nil {
		return nil, err
	}
	cfg.WipeAfter = time.Duration(wipeAfter) * time.Second
	cfg.KDF = browserKDF
	if !o.IsUndefined() && o.Get("kdf").Type() == js.TypeObject {
		k := o.Get("kdf")
		t, err1 := optInt(k, "time", 0)
		m, err2 := optInt(k, "memoryKiB", 0)
		th, err3 := optInt(k, "threads", 0)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, err
		}
		if th > 255 {
			return nil, coded(codeBadArgument, "kdf.threads: at most 255")
		}
		cfg.KDF = client.KDFParams{Time: uint32(t), MemoryKiB: uint32(m), Threads: uint8(th)}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sess != nil {
		return nil, coded(codeExists, "a device is unlocked: lock or wipe it first")
	}
	had, err := a.stored()
	if err != nil {
		return nil, err
	}
	if had {
		return nil, fmt.Errorf("creating device: %w", client.ErrExists)
	}
	c, err := client.Create(cfg, pin, duress)
	if err != nil {
		if errors.Is(err, client.ErrExists) || errors.Is(err, client.ErrInUse) {
			return nil, err // another tab's device: not ours to remove
		}
		// Nothing of a half-made device stays.
		if werr := a.wipeStorage(); werr != nil {
			err = fmt.Errorf("%w (and removing what was made: %v)", err, werr)
		}
		return nil, err
	}
	s.c = c
	s.live.Store(true)
	a.sess, a.wiped = s, false
	return map[string]any{"created": true}, nil
}

// activate(invite, code, username) activates the new device.
func (a *app) activate(args []js.Value) (any, error) {
	inv, err := argString(args, 0, "invite")
	if err != nil {
		return nil, err
	}
	codeStr, err := argString(args, 1, "code")
	if err != nil {
		return nil, err
	}
	userStr, err := argString(args, 2, "username")
	if err != nil {
		return nil, err
	}
	n, err := readInvite(inv)
	if err != nil {
		return nil, err
	}
	user, err := identity.CanonicalUsername(strings.TrimSpace(userStr))
	if err != nil {
		return nil, coded(codeBadArgument, "username: %v", err)
	}
	code, err := identity.ParseActivationCode(strings.TrimSpace(codeStr))
	if err != nil {
		return nil, coded(codeBadCode, "activation code: %v", err)
	}
	a.mu.Lock()
	s := a.sess
	a.mu.Unlock()
	if s == nil {
		return nil, coded(codeLocked, "no unlocked device to activate: create one first")
	}
	if _, err := s.c.Identity(); err == nil {
		return nil, coded(codeActivated, "the device is already activated")
	}
	if err := a.release.checkInvite(n.Root, inviteReleaseWait); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.c.Activate(ctx, n, code.String(), user); err != nil {
		return nil, err
	}
	id, err := s.c.Identity()
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if a.sess == s {
		a.startRun(s)
	}
	a.mu.Unlock()
	return map[string]any{"username": id.Username, "deviceId": id.DeviceID.String()}, nil
}

// unlock(pin) opens the device.
//
// The client turns the duress PIN into a new device that was never
// activated (client.Open), as on the terminal. The web app only ever
// keeps an activated device (create is followed by activate, and wipe
// removes a device whose activation failed), so a PIN that opens a device
// never activated is the duress PIN, now or before: that device is wiped
// too, leaving the browser's storage empty, and unlock says
// "duress-wiped" (the page stays a calculator). A first run cut short
// between create and activate, by a reload, ends the same way: it starts
// over.
func (a *app) unlock(args []js.Value) (any, error) {
	pin, err := argString(args, 0, "pin")
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sess != nil {
		if id, err := a.sess.c.Identity(); err == nil {
			return unlockJSON{Result: "ok", Username: id.Username}, nil
		}
		return unlockJSON{Result: "ok"}, nil
	}
	s := &session{}
	c, err := client.Open(a.config(s), pin)
	var wrong *client.WrongPINError
	switch {
	case errors.As(err, &wrong):
		left := wrong.Left
		return unlockJSON{Result: "wrong", TriesLeft: &left}, nil
	case errors.Is(err, client.ErrWiped):
		a.wiped = true
		return unlockJSON{Result: "wiped"}, nil
	case errors.Is(err, client.ErrNoState):
		return unlockJSON{Result: "none"}, nil
	case err != nil:
		return nil, err
	}
	id, err := c.Identity()
	if errors.Is(err, client.ErrNotActivated) {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		_, werr := c.Wipe(ctx)
		cancel()
		c.Close()
		if werr != nil {
			return nil, fmt.Errorf("erasing the device: %w", werr)
		}
		return unlockJSON{Result: "duress-wiped"}, nil
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	s.c = c
	s.live.Store(true)
	a.sess, a.wiped = s, false
	a.startRun(s)
	return unlockJSON{Result: "ok", Username: id.Username}, nil
}

// startRun keeps the session's device connected (client.Run) until it is
// locked or wiped.
func (a *app) startRun(s *session) {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		err := s.c.Run(ctx, client.RunOptions{})
		a.runEnded(s, err)
	}()
}

// runEnded handles the end of a session's Run: a wipe (remote, or the
// offline limit) closes the session; a refusal by the server (a revoked
// or expired device) is told to the page as a "stopped" event.
func (a *app) runEnded(s *session, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sess != s {
		return // locked or wiped by the page meanwhile
	}
	switch {
	case errors.Is(err, client.ErrWiped):
		a.closeLocked()
		a.wiped = true
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, client.ErrClosed):
	default:
		a.events.push(eventJSON{Type: "stopped", Error: err.Error(), Text: errorCode(err)})
	}
}

// closeLocked ends the session; a.mu is held.
func (a *app) closeLocked() error {
	s := a.sess
	if s == nil {
		return nil
	}
	a.sess = nil
	s.live.Store(false)
	if s.cancel != nil {
		s.cancel()
	}
	return s.c.Close()
}

// lock() forgets the keys and closes the device; unlock opens it again.
func (a *app) lock([]js.Value) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.closeLocked(); err != nil {
		return nil, err
	}
	return map[string]any{"locked": true}, nil
}

// wipe() crypto-erases the device, unlocked or not.
func (a *app) wipe([]js.Value) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.sess; s != nil {
		s.live.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		_, err := s.c.Wipe(ctx)
		cancel()
		a.closeLocked()
		if err != nil {
			return nil, err
		}
	} else if err := a.wipeStorage(); err != nil {
		return nil, err
	}
	a.wiped = true
	return map[string]any{"wiped": true}, nil
}

// wipeStorage erases a device that is not unlocked, without its PIN: it
// shreds every object, the vault's key file ("key") first, as the vault's
// own wipe does, then destroys the storage.
func (a *app) wipeStorage() error {
	err := a.st.Lock()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("wiping: %w", err)
	}
	defer a.st.Unlock()
	names, err := a.st.List()
	if err != nil {
		return fmt.Errorf("wiping: %w", err)
	}
	slices.SortStableFunc(names, func(x, y string) int {
		switch {
		case x == "key" && y != "key":
			return -1
		case y == "key" && x != "key":
			return 1
		}
		return 0
	})
	var errs []error
	for _, n := range names {
		if err := a.st.Shred(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if _, err := a.st.Destroy(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("wiping: %w", err)
	}
	return nil
}
