package loadgen

import (
	"google.golang.org/protobuf/encoding/protowire"

	anomv1 "anom/proto/anom/v1"
)

// The load's hot path reads and writes anom.v1 frames with protowire,
// touching only the fields it needs and allocating nothing: a Messages
// push (to count deliveries and time them), a Sent answer (to count an
// acknowledgement) and a Send request. Anything else, and any frame the
// fast reader does not find in the shape it expects, is decoded in full
// with proto.Unmarshal, so errors and odd encodings are reported exactly
// as the generated code reports them. wire_test.go checks the field
// numbers against the generated descriptors, and FuzzViewFrame that
// whatever the fast reader accepts proto.Unmarshal decodes to the same
// values.

// Field numbers of anom.v1 messages used by the fast paths.
const (
	frameID            = 1
	frameSend          = 16
	frameSent          = 45
	framePushMessages  = 60
	sendGroupID        = 1
	sendMessage        = 2
	sendEscrowRecord   = 4
	sentSeq            = 1
	sentEpoch          = 2
	messagesGroupID    = 1
	messagesMessages   = 2
	messagesLast       = 3
	gmSeq              = 1
	gmTimeMs           = 2
	gmSenderDevice     = 3
	gmMessage          = 4
	gmWelcome          = 5
	gmAddedDevices     = 6
	gmEpoch            = 7
	gmEscrowRecord     = 8
	maxFrameBodyNumber = 63
)

// frameBody[n] says whether field n of Frame is one of the body oneof's.
var frameBody = func() (b [maxFrameBodyNumber + 1]bool) {
	fields := (&anomv1.Frame{}).ProtoReflect().Descriptor().Oneofs().ByName("body").Fields()
	for i := range fields.Len() {
		if n := fields.Get(i).Number(); int(n) < len(b) {
			b[n] = true
		}
	}
	return b
}()

// frameView is a Frame read only as far as routing it needs.
type frameView struct {
	id uint64
	// body is the number of the body field and bodyBytes its encoded
	// message; body is 0 when the frame has none.
	body      protowire.Number
	bodyBytes []byte
}

// viewFrame reads a frame's id and body. ok is false when b is not a
// Frame in the plain shape (every known field with its own wire type, at
// most one body field, once); the caller then decodes it in full.
func viewFrame(b []byte) (v frameView, ok bool) {
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
			v.id, n = protowire.ConsumeVarint(b)
		case num <= maxFrameBodyNumber && frameBody[num]:
			if typ != protowire.BytesType || v.body != 0 {
				return v, false
			}
			v.body = num
			v.bodyBytes, n = protowire.ConsumeBytes(b)
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

// readSent reads a Sent answer.
func readSent(b []byte) (seq, epoch uint64, ok bool) {
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
// into the connection's read buffer and are valid only during the
// handler's call.
type Pushed struct {
	GroupID []byte
	// Last is the group's last sequence number.
	Last     uint64
	Messages []PushedMessage
}

// PushedMessage is one GroupMessage of a push. The added devices of a
// commit are not read (Handlers.Frame has them).
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

// readPushed reads a Messages body into p, reusing p.Messages.
func readPushed(b []byte, p *Pushed) bool {
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

// pushedFrom fills p from a decoded Messages push.
func pushedFrom(pm *anomv1.Messages, p *Pushed) *Pushed {
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

// appendSendFrame appends the encoding of Frame{id, Send{group,
// message, escrow record}}, as proto.Marshal makes it (empty fields
// left out).
func appendSendFrame(b []byte, id uint64, group, msg, record []byte) []byte {
	size := 0
	for _, f := range [...][]byte{group, msg, record} {
		if len(f) > 0 {
			size += 1 + protowire.SizeBytes(len(f))
		}
	}
	b = protowire.AppendTag(b, frameID, protowire.VarintType)
	b = protowire.AppendVarint(b, id)
	b = protowire.AppendTag(b, frameSend, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	for i, f := range [...][]byte{group, msg, record} {
		if len(f) > 0 {
			num := [...]protowire.Number{sendGroupID, sendMessage, sendEscrowRecord}[i]
			b = protowire.AppendTag(b, num, protowire.BytesType)
			b = protowire.AppendBytes(b, f)
		}
	}
	return b
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
