package wire

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	anomv1 "anom/proto/anom/v1"
)

// Field numbers of the anom.v1 messages the fast paths touch, taken from
// the generated descriptors when the package is initialised; a field
// renamed, removed or of another kind stops every program that links
// this package at start-up, before a frame could be misread.
var (
	frameID           = field(&anomv1.Frame{}, "id", protoreflect.Uint64Kind)
	frameSend         = field(&anomv1.Frame{}, "send", protoreflect.MessageKind)
	frameSent         = field(&anomv1.Frame{}, "sent", protoreflect.MessageKind)
	framePushMessages = field(&anomv1.Frame{}, "push_messages", protoreflect.MessageKind)
	sendGroupID       = field(&anomv1.Send{}, "group_id", protoreflect.BytesKind)
	sendMessage       = field(&anomv1.Send{}, "message", protoreflect.BytesKind)
	sendEscrowRecord  = field(&anomv1.Send{}, "escrow_record", protoreflect.BytesKind)
	sentSeq           = field(&anomv1.Sent{}, "seq", protoreflect.Uint64Kind)
	sentEpoch         = field(&anomv1.Sent{}, "epoch", protoreflect.Uint64Kind)
	messagesGroupID   = field(&anomv1.Messages{}, "group_id", protoreflect.BytesKind)
	messagesMessages  = field(&anomv1.Messages{}, "messages", protoreflect.MessageKind)
	messagesLast      = field(&anomv1.Messages{}, "last", protoreflect.Uint64Kind)
	gmSeq             = field(&anomv1.GroupMessage{}, "seq", protoreflect.Uint64Kind)
	gmTimeMs          = field(&anomv1.GroupMessage{}, "time_ms", protoreflect.Int64Kind)
	gmSenderDevice    = field(&anomv1.GroupMessage{}, "sender_device", protoreflect.BytesKind)
	gmMessage         = field(&anomv1.GroupMessage{}, "message", protoreflect.BytesKind)
	gmWelcome         = field(&anomv1.GroupMessage{}, "welcome", protoreflect.BytesKind)
	gmAddedDevices    = field(&anomv1.GroupMessage{}, "added_devices", protoreflect.BytesKind)
	gmEpoch           = field(&anomv1.GroupMessage{}, "epoch", protoreflect.Uint64Kind)
	gmEscrowRecord    = field(&anomv1.GroupMessage{}, "escrow_record", protoreflect.BytesKind)
)

// field is the number of m's field name, which must be of kind k (and
// not repeated, unless a bytes field read one element at a time).
func field(m proto.Message, name protoreflect.Name, k protoreflect.Kind) protowire.Number {
	md := m.ProtoReflect().Descriptor()
	fd := md.Fields().ByName(name)
	if fd == nil || fd.Kind() != k {
		panic(fmt.Sprintf("wire: %s.%s is not a %v field", md.FullName(), name, k))
	}
	return fd.Number()
}

// maxFrameBodyNumber bounds the field numbers of Frame's body oneof
// (TestWireFieldNumbers checks every one is below it).
const maxFrameBodyNumber = 63

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
