// Package wire reads and writes the anom.v1 frames of the hot paths with
// protowire, touching only the fields it needs and allocating nothing
// (or, for a push, one buffer shared by every recipient): the server's
// Messages push (PushFrame), and on the load generator's side a Send
// request (AppendSendFrame), a Sent answer (ReadSent) and a Messages push
// (ViewFrame, ReadPushed).
//
// The field numbers are the generated descriptors' (see fields.go), not
// literals. Anything the readers do not find in the shape they expect
// (ok false) is for the caller to decode in full with proto.Unmarshal, so
// errors and odd encodings are reported exactly as the generated code
// reports them. FuzzViewFrame checks that whatever the readers accept
// proto.Unmarshal decodes to the same values, and TestPushFrame that the
// writers' frames decode as proto.Marshal's.
package wire

import (
	"google.golang.org/protobuf/encoding/protowire"

	anomv1 "anom/proto/anom/v1"
)

// FrameView is a Frame read only as far as routing it needs.
type FrameView struct {
	ID uint64
	// Body is the number of the body field and BodyBytes its encoded
	// message; Body is 0 when the frame has none.
	Body      protowire.Number
	BodyBytes []byte
}

// IsSent says whether the frame's body is a Sent answer.
func (v FrameView) IsSent() bool { return v.Body == frameSent }

// IsPushMessages says whether the frame's body is a Messages push.
func (v FrameView) IsPushMessages() bool { return v.Body == framePushMessages }

// ViewFrame reads a frame's id and body. ok is false when b is not a
// Frame in the plain shape (every known field with its own wire type, at
// most one body field, once); the caller then decodes it in full.
func ViewFrame(b []byte) (v FrameView, ok bool) {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return v, false
		}
		b = b[n:]
		switch {
		case num == frameID:
			if typ != protowire.VarintType {
				return v, false
			}
			v.ID, n = protowire.ConsumeVarint(b)
		case num <= maxFrameBodyNumber && frameBody[num]:
			if typ != protowire.BytesType || v.Body != 0 {
				return v, false
			}
			v.Body = num
			v.BodyBytes, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return v, false
		}
		b = b[n:]
	}
	return v, true
}

// ReadSent reads a Sent answer.
func ReadSent(b []byte) (seq, epoch uint64, ok bool) {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return 0, 0, false
		}
		b = b[n:]
		switch num {
		case sentSeq, sentEpoch:
			if typ != protowire.VarintType {
				return 0, 0, false
			}
			var x uint64
			x, n = protowire.ConsumeVarint(b)
			if num == sentSeq {
				seq = x
			} else {
				epoch = x
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return 0, 0, false
		}
		b = b[n:]
	}
	return seq, epoch, true
}

// Pushed is a Messages push read without copying: its byte slices point
// into the buffer it was read from.
type Pushed struct {
	GroupID []byte
	// Last is the group's last sequence number.
	Last     uint64
	Messages []PushedMessage
}

// PushedMessage is one GroupMessage of a push. The added devices of a
// commit are not read.
type PushedMessage struct {
	Seq          uint64
	TimeMs       int64
	SenderDevice []byte
	// Message is the MLSMessage.
	Message      []byte
	Welcome      []byte
	Epoch        uint64
	EscrowRecord []byte
}

// ReadPushed reads a Messages body into p, reusing p.Messages.
func ReadPushed(b []byte, p *Pushed) bool {
	*p = Pushed{Messages: p.Messages[:0]}
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch num {
		case messagesGroupID:
			if typ != protowire.BytesType {
				return false
			}
			p.GroupID, n = protowire.ConsumeBytes(b)
		case messagesMessages:
			if typ != protowire.BytesType {
				return false
			}
			var m []byte
			m, n = protowire.ConsumeBytes(b)
			if n >= 0 {
				p.Messages = append(p.Messages, PushedMessage{})
				if !readGroupMessage(m, &p.Messages[len(p.Messages)-1]) {
					return false
				}
			}
		case messagesLast:
			if typ != protowire.VarintType {
				return false
			}
			p.Last, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

// PushedFrom fills p from a decoded Messages push.
func PushedFrom(pm *anomv1.Messages, p *Pushed) *Pushed {
	*p = Pushed{GroupID: pm.GroupId, Last: pm.Last, Messages: p.Messages[:0]}
	for _, gm := range pm.Messages {
		p.Messages = append(p.Messages, PushedMessage{Seq: gm.Seq, TimeMs: gm.TimeMs, SenderDevice: gm.SenderDevice,
			Message: gm.Message, Welcome: gm.Welcome, Epoch: gm.Epoch, EscrowRecord: gm.EscrowRecord})
	}
	return p
}

func readGroupMessage(b []byte, m *PushedMessage) bool {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch num {
		case gmSeq, gmTimeMs, gmEpoch:
			if typ != protowire.VarintType {
				return false
			}
			var x uint64
			x, n = protowire.ConsumeVarint(b)
			switch num {
			case gmSeq:
				m.Seq = x
			case gmTimeMs:
				m.TimeMs = int64(x)
			default:
				m.Epoch = x
			}
		case gmSenderDevice, gmMessage, gmWelcome, gmAddedDevices, gmEscrowRecord:
			if typ != protowire.BytesType {
				return false
			}
			var x []byte
			x, n = protowire.ConsumeBytes(b)
			switch num {
			case gmSenderDevice:
				m.SenderDevice = x
			case gmMessage:
				m.Message = x
			case gmWelcome:
				m.Welcome = x
			case gmEscrowRecord:
				m.EscrowRecord = x
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

// AppendSendFrame appends the encoding of Frame{id, Send{group,
// message, escrow record}}, as proto.Marshal makes it (empty fields
// left out).
func AppendSendFrame(b []byte, id uint64, group, msg, record []byte) []byte {
	size := sizeBytesField(sendGroupID, group) + sizeBytesField(sendMessage, msg) + sizeBytesField(sendEscrowRecord, record)
	b = protowire.AppendTag(b, frameID, protowire.VarintType)
	b = protowire.AppendVarint(b, id)
	b = protowire.AppendTag(b, frameSend, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = appendBytesField(b, sendGroupID, group)
	b = appendBytesField(b, sendMessage, msg)
	return appendBytesField(b, sendEscrowRecord, record)
}

// PushFrame encodes the push of a new group message: a Frame with
// push_messages holding the group message whose encoding without
// sequence and time is stored, with seq and timeMs added, and last =
// seq. It decodes as the Frame proto.Marshal would give (only the order
// of the message's fields differs); the server builds it once per
// message and shares it among the recipients.
func PushFrame(groupID, stored []byte, seq uint64, timeMs int64) []byte {
	gmLen := len(stored) + sizeVarintField(gmSeq, seq) + sizeVarintField(gmTimeMs, uint64(timeMs))
	msgsLen := sizeBytesField(messagesGroupID, groupID) + protowire.SizeTag(messagesMessages) + protowire.SizeBytes(gmLen) +
		sizeVarintField(messagesLast, seq)
	b := make([]byte, 0, protowire.SizeTag(framePushMessages)+protowire.SizeBytes(msgsLen))
	b = protowire.AppendTag(b, framePushMessages, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(msgsLen))
	b = appendBytesField(b, messagesGroupID, groupID)
	b = protowire.AppendTag(b, messagesMessages, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(gmLen))
	b = appendVarintField(b, gmSeq, seq)
	b = appendVarintField(b, gmTimeMs, uint64(timeMs))
	b = append(b, stored...)
	return appendVarintField(b, messagesLast, seq)
}

// sizeBytesField is the size of a bytes field as proto.Marshal encodes
// it: nothing when empty.
func sizeBytesField(num protowire.Number, v []byte) int {
	if len(v) == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(v))
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// sizeVarintField is the size of a varint field as proto.Marshal
// encodes it: nothing when zero.
func sizeVarintField(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// consumeTag is protowire.ConsumeTag, also refusing (n < 0) a field
// number above protowire.MaxValidNumber, which ConsumeTag takes and
// proto.Unmarshal does not: the fast path must refuse what the full
// decoder refuses.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, -1
	}
	return num, typ, n
}
