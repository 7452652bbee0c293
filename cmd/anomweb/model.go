package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"anom/client"
	"anom/identity"
)

// The values the anom object gives JavaScript, as JSON (web/API.md
// documents them). Group, message and device IDs are lower-case hex;
// times are milliseconds since the Unix epoch.

// browserKDF is the Argon2id cost of a new browser device's PIN when the
// page gives none: 2 passes over 64 MiB in one lane, about 1 s of
// Chromium's single-threaded WebAssembly on the machine it was tuned on,
// where the terminal client's client.DefaultKDF (3 passes over 256 MiB)
// took 5 to 6 s. It is written in the device's key file header, so it
// is the device's own; web/README.md says why it is enough, with the
// arithmetic.
var browserKDF = client.KDFParams{Time: 2, MemoryKiB: 64 << 10, Threads: 1}

// defaultMaxFailedUnlocks is a new device's limit on wrong PINs in a row,
// as anom chat's --max-pin-tries.
const defaultMaxFailedUnlocks = 10

// statusJSON is what status() resolves to.
type statusJSON struct {
	// State is "none" (no device in this browser), "locked" (a device,
	// not unlocked), "unlocked" or "wiped" (the device was wiped while
	// this page was open; after a reload it is "none").
	State     string `json:"state"`
	Activated bool   `json:"activated"`
	Username  string `json:"username,omitempty"`
	DeviceID  string `json:"deviceId,omitempty"`
	Connected bool   `json:"connected"`
}

// unlockJSON is what unlock() resolves to.
type unlockJSON struct {
	// Result is "ok", "wrong" (TriesLeft is set: -1 means no limit),
	// "duress-wiped", "wiped" or "none" (no device to unlock).
	Result    string `json:"result"`
	TriesLeft *int   `json:"triesLeft,omitempty"`
	Username  string `json:"username,omitempty"`
}

type attachmentJSON struct {
	Name string `json:"name"`
	MIME string `json:"mime"`
	Size uint64 `json:"size"`
	// Thumbnail is set for a photo sent with its thumbnail in the same
	// message (fetchThumbnail gets it).
	Thumbnail *thumbnailJSON `json:"thumbnail,omitempty"`
	// ThumbnailOf is set on a thumbnail sent in the older two-message
	// form: the ID of the photo's message it belongs to.
	ThumbnailOf string `json:"thumbnailOf,omitempty"`
}

// thumbnailJSON describes a photo's thumbnail.
type thumbnailJSON struct {
	MIME string `json:"mime"`
	Size uint64 `json:"size"`
	// Inline is set when the thumbnail came inside the message (no
	// download).
	Inline bool `json:"inline"`
}

// messageJSON is a message of a chat's history.
type messageJSON struct {
	GroupID  string `json:"groupId"`
	ID       string `json:"id"`
	Seq      uint64 `json:"seq"`
	Device   string `json:"device,omitempty"`
	Username string `json:"username"`
	// SentAt is the sender's time; Received this device's.
	SentAt   int64  `json:"sentAt"`
	Received int64  `json:"received"`
	Outgoing bool   `json:"outgoing"`
	Pending  bool   `json:"pending"`
	Kind     string `json:"kind"`
	Text     string `json:"text,omitempty"`
	// Attachment is set for "attachment" and "voice".
	Attachment   *attachmentJSON `json:"attachment,omitempty"`
	DurationMs   int64           `json:"durationMs,omitempty"`
	Target       string          `json:"target,omitempty"`
	TimerSeconds int64           `json:"timerSeconds,omitempty"`
}

var kindNames = map[client.Kind]string{
	client.KindText: "text", client.KindAttachment: "attachment", client.KindVoice: "voice",
	client.KindDelete: "delete", client.KindTimer: "timer", client.KindGroupName: "group-name",
	// A photo is an attachment with attachment.thumbnail set.
	client.KindPhoto: "attachment",
}

func messageOf(m *client.Message) *messageJSON {
	if m == nil {
		return nil
	}
	out := &messageJSON{GroupID: hex.EncodeToString(m.Group), Seq: m.Seq, Username: m.Username,
		Received: m.Received.UnixMilli(), Outgoing: m.Outgoing, Pending: m.Pending}
	if m.From != (identity.DeviceID{}) {
		out.Device = m.From.String()
	}
	c := m.Content
	if c == nil {
		out.Kind = "unknown"
		return out
	}
	out.ID = c.ID.String()
	out.SentAt = c.SentAt.UnixMilli()
	out.Kind = kindNames[c.Kind]
	if out.Kind == "" {
		out.Kind = "unknown"
	}
	out.Text = c.Text
	if a := c.Attachment; a != nil {
		out.Attachment = &attachmentJSON{Name: a.Name, MIME: a.MIME, Size: a.Size}
		if t := a.Thumbnail; t != nil {
			out.Attachment.Thumbnail = &thumbnailJSON{MIME: t.MIME, Size: uint64(len(t.Data)), Inline: t.Ref == nil}
			if t.Ref != nil {
				out.Attachment.Thumbnail.MIME, out.Attachment.Thumbnail.Size = t.Ref.MIME, t.Ref.Size
			}
		}
		if id, ok := client.LegacyThumbnailFor(c); ok {
			out.Attachment.ThumbnailOf = id.String()
		}
	}
	out.DurationMs = c.Duration.Milliseconds()
	if c.Kind == client.KindDelete {
		out.Target = c.Target.String()
	}
	if c.Kind == client.KindTimer {
		out.TimerSeconds = int64(c.Timer.Seconds())
	}
	return out
}

type memberJSON struct {
	Username string `json:"username"`
	DeviceID string `json:"deviceId"`
	Self     bool   `json:"self"`
	// Error says why the member's credential did not verify.
	Error string `json:"error,omitempty"`
}

// chatJSON is a chat of chats().
type chatJSON struct {
	ID string `json:"id"`
	// Name is the group's shared name; "" for a chat without one.
	Name string `json:"name"`
	// Users are the other members' usernames, sorted.
	Users        []string     `json:"users"`
	Members      []memberJSON `json:"members"`
	TimerSeconds uint32       `json:"timerSeconds"`
	// Escrow is the chat's escrow policy line.
	Escrow string       `json:"escrow"`
	Last   *messageJSON `json:"last,omitempty"`
	// Unread counts the messages after the device's read mark (markRead)
	// that others sent; ReadSeq is the mark.
	Unread  int    `json:"unread"`
	ReadSeq uint64 `json:"readSeq"`
}

func membersOf(ms []client.Member) (members []memberJSON, others []string) {
	for _, m := range ms {
		mj := memberJSON{Username: m.Username, Self: m.Self}
		if m.Err != nil {
			mj.Error = m.Err.Error()
		} else {
			mj.DeviceID = m.DeviceID
		}
		members = append(members, mj)
		if !m.Self && m.Err == nil && m.Username != "" && !slices.Contains(others, m.Username) {
			others = append(others, m.Username)
		}
	}
	slices.Sort(others)
	if others == nil {
		others = []string{}
	}
	return members, others
}

// eventJSON is what anom.onEvent's callback receives.
type eventJSON struct {
	// Type is one of eventNames' values.
	Type    string       `json:"type"`
	GroupID string       `json:"groupId,omitempty"`
	Message *messageJSON `json:"message,omitempty"`
	Text    string       `json:"text,omitempty"`
	Error   string       `json:"error,omitempty"`
	// Device and Username are set with "new-own-device".
	Device   string `json:"device,omitempty"`
	Username string `json:"username,omitempty"`
	// Approved is set with "new-own-device" when an approval of the
	// device was logged.
	Approved bool `json:"approved,omitempty"`
	// With "contact-devices": Username's devices (IDs) that are new, gone
	// or seen with another key since the last time, and the verified ones
	// among the gone and rekeyed (the device the user checked is no
	// longer the one the chats hold: a loud warning).
	Added        []string `json:"added,omitempty"`
	Removed      []string `json:"removed,omitempty"`
	Rekeyed      []string `json:"rekeyed,omitempty"`
	VerifiedLost []string `json:"verifiedLost,omitempty"`
}

// contactEvent is the "contact-devices" event of a change.
func contactEvent(ch *client.DeviceChange) eventJSON {
	return eventJSON{Type: "contact-devices", Username: ch.Username, Added: ch.Added, Removed: ch.Removed,
		Rekeyed: ch.Rekeyed, VerifiedLost: ch.VerifiedLost}
}

var eventNames = map[client.EventType]string{
	client.EventMessage:        "message",
	client.EventJoined:         "joined",
	client.EventMembers:        "members",
	client.EventRemoved:        "removed",
	client.EventNewOwnDevice:   "new-own-device",
	client.EventWiped:          "wiped",
	client.EventDisconnected:   "disconnected",
	client.EventError:          "error",
	client.EventEscrowPolicy:   "escrow-policy",
	client.EventEscrowMismatch: "escrow-mismatch",
	client.EventDeviceRemoved:  "device-removed",
	client.EventSent:           "sent",
	client.EventConnected:      "connected",
	client.EventSyncFailed:     "sync-failed",
	client.EventSendHeld:       "send-held",
}

func eventOf(e client.Event) eventJSON {
	out := eventJSON{Type: eventNames[e.Type], GroupID: hex.EncodeToString(e.Group), Message: messageOf(e.Message), Text: e.Text}
	if out.Type == "" {
		out.Type = fmt.Sprintf("event-%d", int(e.Type))
	}
	if e.Message != nil && out.GroupID == "" {
		out.GroupID = out.Message.GroupID
	}
	if e.Err != nil {
		out.Error = e.Err.Error()
	}
	if e.Device != nil {
		out.Device, out.Username = e.Device.DeviceID.String(), e.Device.Username
	}
	out.Approved = e.Approval != nil
	if e.Mismatch != nil && out.Text == "" {
		out.Text = "a message's escrow copy does not match it: the sender sent a false escrow record (reported to the server)"
	}
	return out
}

// Error codes: the code property of the Error a promise rejects with.
const (
	codeWrongPIN      = "wrong-pin"
	codeWiped         = "wiped"
	codeNoState       = "no-state"
	codeExists        = "exists"
	codeInUse         = "in-use"
	codeBadPIN        = "bad-pin"
	codeNotActivated  = "not-activated"
	codeActivated     = "activated"
	codeLocked        = "locked"
	codeNoGroup       = "no-group"
	codeEscrow        = "escrow-unverified"
	codeBadInvite     = "bad-invite"
	codeBadCode       = "bad-code"
	codeUsernameTaken = "username-taken"
	codeNotFound      = "not-found"
	codeRevoked       = "revoked"
	codeExpired       = "expired"
	codeWrongNetwork  = "wrong-network"
	codeBadArgument   = "bad-argument"
	codePairing       = "pairing"
	codeNoQR          = "no-qr"
	codeNotSafetyCode = "not-safety-code"
	codeSafetyDiffers = "safety-mismatch"
	codeError         = "error"
)

// codedError is an error with the code JavaScript sees.
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func coded(code string, format string, args ...any) error {
	return &codedError{code: code, err: fmt.Errorf(format, args...)}
}

// errorCode is the code of err for JavaScript.
func errorCode(err error) string {
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	for _, c := range []struct {
		err  error
		code string
	}{
		{client.ErrWrongPIN, codeWrongPIN}, {client.ErrWiped, codeWiped}, {client.ErrNoState, codeNoState},
		{client.ErrExists, codeExists}, {client.ErrInUse, codeInUse}, {client.ErrBadPIN, codeBadPIN},
		{client.ErrNotActivated, codeNotActivated}, {client.ErrNoGroup, codeNoGroup},
		{client.ErrEscrowPolicy, codeEscrow}, {client.ErrWrongRoot, codeWrongNetwork},
		{client.ErrPairingCode, codeNotFound}, {client.ErrPairing, codePairing},
	} {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	for code, name := range map[client.ErrorCode]string{
		client.CodeBadActivationCode: codeBadCode,
		client.CodeUsernameTaken:     codeUsernameTaken,
		client.CodeNotFound:          codeNotFound,
		client.CodeRevoked:           codeRevoked,
		client.CodeExpired:           codeExpired,
	} {
		if client.IsCode(err, code) {
			return name
		}
	}
	return codeError
}

// readInvite reads an invite (client.ParseInvite), its error coded
// bad-invite.
func readInvite(s string) (client.Network, error) {
	n, err := client.ParseInvite(s)
	if err != nil {
		return n, &codedError{code: codeBadInvite, err: err}
	}
	return n, nil
}

// parseGroupID reads a group ID given as hex.
func parseGroupID(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) == 0 {
		return nil, coded(codeBadArgument, "group ID %q: want hex", s)
	}
	return b, nil
}
