package client

import (
	"time"

	"anom/identity"
)

// EventType says what an Event reports.
type EventType int

// Event types.
const (
	// EventMessage: a message arrived (Message is set).
	EventMessage EventType = iota + 1
	// EventJoined: the device was added to a group (Group is set).
	EventJoined
	// EventMembers: a group's membership changed (Group is set).
	EventMembers
	// EventRemoved: the device was removed from a group.
	EventRemoved
	// EventNewOwnDevice: the transparency log shows a device under this
	// user's name that is not this device (Device is set, and Approval
	// if one was logged). If the user did not add it, the account is
	// compromised ("ghost device").
	EventNewOwnDevice
	// EventWiped: the device wiped itself (Text says why).
	EventWiped
	// EventDisconnected: the connection ended (Err says why).
	EventDisconnected
	// EventError: a message could not be processed (Err, Group set).
	EventError
	// EventEscrowPolicy: the network's escrow policy was verified for the
	// first time or changed (Text describes it), or could not be verified
	// (Err set; sending is disabled).
	EventEscrowPolicy
	// EventEscrowMismatch: a received message's escrow record is not the
	// one its content gives (Group, Message, Mismatch set): the sender sent
	// a false escrow copy. It has been reported to the server.
	EventEscrowMismatch
	// EventDeviceRemoved: a device was removed from a group because it
	// was revoked (or wiped) or its certificate expired (Group set, Text
	// says which device and why).
	EventDeviceRemoved
	// EventSent: a message that waited in the outbox (SendOrQueue) was
	// sent (Group, Message set, with its sequence number).
	EventSent
	// EventConnected: Run (re)connected the device and caught up.
	EventConnected
	// EventSyncFailed: Run's periodic check with the server (Sync)
	// failed (Err says why); the connection may be gone.
	EventSyncFailed
	// EventSendHeld: a message waiting in the outbox (SendOrQueue) could
	// not be sent because the server cannot store it now (Group set; Err
	// says why, ErrServerFull when the server is out of storage). It
	// stays in the outbox and is tried again at the next sync or send.
	EventSendHeld
)

// Event is something that happened to the device.
type Event struct {
	Type    EventType
	Group   []byte
	Message *Message
	Device  *identity.DeviceCertificate
	// Approval is, with EventNewOwnDevice, the approval logged for the
	// device (by another device of the user, or by the admin); nil if
	// none was found.
	Approval *identity.DeviceApproval
	Text     string
	Err      error
	// Mismatch is set with EventEscrowMismatch.
	Mismatch *EscrowMismatch
}

// Message is a message of a group's history.
type Message struct {
	Group    []byte
	Seq      uint64
	From     identity.DeviceID
	Username string
	Received time.Time
	Outgoing bool
	// Pending is set for a message of this device that waits in the
	// outbox to be sent (Seq is 0).
	Pending bool
	Content *Content
}
