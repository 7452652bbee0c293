package wire

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	anomv1 "anom/proto/anom/v1"
)

// TestWireFieldNumbers checks the fast paths' field numbers and kinds
// against the generated descriptors.
func TestWireFieldNumbers(t *testing.T) {
	tests := []struct {
		msg  proto.Message
		name protoreflect.Name
		num  protowire.Number
		kind protoreflect.Kind
	}{
		{&anomv1.Frame{}, "id", frameID, protoreflect.Uint64Kind},
		{&anomv1.Frame{}, "send", frameSend, protoreflect.MessageKind},
		{&anomv1.Frame{}, "sent", frameSent, protoreflect.MessageKind},
		{&anomv1.Frame{}, "push_messages", framePushMessages, protoreflect.MessageKind},
		{&anomv1.Send{}, "group_id", sendGroupID, protoreflect.BytesKind},
		{&anomv1.Send{}, "message", sendMessage, protoreflect.BytesKind},
		{&anomv1.Send{}, "escrow_record", sendEscrowRecord, protoreflect.BytesKind},
		{&anomv1.Sent{}, "seq", sentSeq, protoreflect.Uint64Kind},
		{&anomv1.Sent{}, "epoch", sentEpoch, protoreflect.Uint64Kind},
		{&anomv1.Messages{}, "group_id", messagesGroupID, protoreflect.BytesKind},
		{&anomv1.Messages{}, "messages", messagesMessages, protoreflect.MessageKind},
		{&anomv1.Messages{}, "last", messagesLast, protoreflect.Uint64Kind},
		{&anomv1.GroupMessage{}, "seq", gmSeq, protoreflect.Uint64Kind},
		{&anomv1.GroupMessage{}, "time_ms", gmTimeMs, protoreflect.Int64Kind},
		{&anomv1.GroupMessage{}, "sender_device", gmSenderDevice, protoreflect.BytesKind},
		{&anomv1.GroupMessage{}, "message", gmMessage, protoreflect.BytesKind},
		{&anomv1.GroupMessage{}, "welcome", gmWelcome, protoreflect.BytesKind},
		{&anomv1.GroupMessage{}, "added_devices", gmAddedDevices, protoreflect.BytesKind},
		{&anomv1.GroupMessage{}, "epoch", gmEpoch, protoreflect.Uint64Kind},
		{&anomv1.GroupMessage{}, "escrow_record", gmEscrowRecord, protoreflect.BytesKind},
	}
	for _, tt := range tests {
		md := tt.msg.ProtoReflect().Descriptor()
		fd := md.Fields().ByName(tt.name)
		if fd == nil {
			t.Errorf("%s has no field %s", md.FullName(), tt.name)
			continue
		}
		if fd.Number() != tt.num || fd.Kind() != tt.kind {
			t.Errorf("%s.%s is %d %v, the fast path says %d %v", md.FullName(), tt.name, fd.Number(), fd.Kind(), tt.num, tt.kind)
		}
	}
	// Every Frame field but id is in the body oneof, below
	// maxFrameBodyNumber.
	fields := (&anomv1.Frame{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Number() == frameID {
			continue
		}
		if int(fd.Number()) > maxFrameBodyNumber || !frameBody[fd.Number()] {
			t.Errorf("Frame.%s (%d) is not a known body field", fd.Name(), fd.Number())
		}
	}
}

func TestAppendSendFrame(t *testing.T) {
	tests := []struct {
		name               string
		group, msg, escrow []byte
		id                 uint64
	}{
		{"plain", []byte("group-1"), bytes.Repeat([]byte{7}, 1100), nil, 1},
		{"escrow", []byte("g"), []byte("m"), bytes.Repeat([]byte{1}, 300), 1 << 40},
		{"empty group", nil, []byte("m"), nil, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendSendFrame([]byte("prefix"), tt.id, tt.group, tt.msg, tt.escrow)
			if !bytes.HasPrefix(b, []byte("prefix")) {
				t.Fatal("prefix lost")
			}
			want := &anomv1.Frame{Id: tt.id, Body: &anomv1.Frame_Send{Send: &anomv1.Send{GroupId: tt.group, Message: tt.msg, EscrowRecord: tt.escrow}}}
			wb, err := proto.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b[len("prefix"):], wb) {
				t.Errorf("encoding differs from proto.Marshal's")
			}
			got := &anomv1.Frame{}
			if err := proto.Unmarshal(b[len("prefix"):], got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("decoded %v, want %v", got, want)
			}
		})
	}
}

// wireSeeds are frames the fast paths should and should not take.
func wireSeeds(t testing.TB) [][]byte {
	marshal := func(f *anomv1.Frame) []byte {
		b, err := proto.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	push := marshal(&anomv1.Frame{Body: &anomv1.Frame_PushMessages{PushMessages: &anomv1.Messages{
		GroupId: []byte("group"), Last: 9,
		Messages: []*anomv1.GroupMessage{
			{Seq: 8, TimeMs: 1700000000000, SenderDevice: []byte("dev-a"), Message: bytes.Repeat([]byte{3}, 200), Epoch: 4, EscrowRecord: []byte("rec")},
			{Seq: 9, TimeMs: -5, Message: []byte("commit"), Welcome: []byte("welcome"), AddedDevices: [][]byte{[]byte("x"), []byte("y")}, Epoch: 5},
		},
	}}})
	sent := marshal(&anomv1.Frame{Id: 77, Body: &anomv1.Frame_Sent{Sent: &anomv1.Sent{Seq: 12, Epoch: 3}}})
	errFrame := marshal(&anomv1.Frame{Id: 78, Body: &anomv1.Frame_Error{Error: &anomv1.Error{Code: anomv1.ErrorCode_ERROR_CODE_RATE_LIMITED, Message: "slow down"}}})
	// Two body fields: proto keeps the last; the fast path declines.
	twoBodies := append(append([]byte{}, sent...), push...)
	// An unknown field and a known one with a foreign wire type.
	unknown := protowire.AppendTag(append([]byte{}, sent...), 1000, protowire.BytesType)
	unknown = protowire.AppendBytes(unknown, []byte("future"))
	badType := protowire.AppendTag(append([]byte{}, sent...), frameID, protowire.Fixed64Type)
	badType = protowire.AppendFixed64(badType, 1)
	return [][]byte{push, sent, errFrame, twoBodies, unknown, badType, {}, {0x08}, push[:len(push)-3]}
}

func TestViewFrame(t *testing.T) {
	seeds := wireSeeds(t)
	push, sent := seeds[0], seeds[1]
	v, ok := ViewFrame(push)
	if !ok || v.ID != 0 || v.Body != framePushMessages {
		t.Fatalf("push: %+v %v", v, ok)
	}
	var p Pushed
	if !ReadPushed(v.BodyBytes, &p) || len(p.Messages) != 2 || string(p.GroupID) != "group" || p.Last != 9 {
		t.Fatalf("push read as %+v", p)
	}
	if m := p.Messages[0]; m.Seq != 8 || m.TimeMs != 1700000000000 || string(m.SenderDevice) != "dev-a" || len(m.Message) != 200 || m.Epoch != 4 || string(m.EscrowRecord) != "rec" {
		t.Errorf("first message read as %+v", m)
	}
	if m := p.Messages[1]; m.TimeMs != -5 || string(m.Welcome) != "welcome" {
		t.Errorf("second message read as %+v", m)
	}
	v, ok = ViewFrame(sent)
	if !ok || v.ID != 77 || v.Body != frameSent {
		t.Fatalf("sent: %+v %v", v, ok)
	}
	if seq, epoch, ok := ReadSent(v.BodyBytes); !ok || seq != 12 || epoch != 3 {
		t.Errorf("sent read as %d %d %v", seq, epoch, ok)
	}
	for i, b := range seeds[3:6] {
		if _, ok := ViewFrame(b); ok && i != 1 {
			t.Errorf("seed %d: the fast path took a frame it should leave to proto.Unmarshal", i+3)
		}
	}
	if v, ok := ViewFrame(seeds[4]); !ok || v.ID != 77 {
		t.Errorf("a frame with an unknown field: %+v %v", v, ok)
	}
	if _, ok := ViewFrame(seeds[8]); ok {
		t.Errorf("a truncated frame was taken")
	}
}

// FuzzViewFrame checks the fast reader against proto.Unmarshal: whatever
// the fast paths accept, proto.Unmarshal decodes to the same values, so a
// frame is never counted differently than the full decoder would.
func FuzzViewFrame(f *testing.F) {
	for _, s := range wireSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, ok := ViewFrame(b)
		if !ok {
			return
		}
		var seq, epoch uint64
		var p Pushed
		switch v.Body {
		case frameSent:
			seq, epoch, ok = ReadSent(v.BodyBytes)
		case framePushMessages:
			ok = ReadPushed(v.BodyBytes, &p)
		default:
			return // decoded in full
		}
		if !ok {
			return
		}
		full := &anomv1.Frame{}
		if err := proto.Unmarshal(b, full); err != nil {
			t.Fatalf("fast path took a frame proto.Unmarshal rejects: %v", err)
		}
		if full.Id != v.ID {
			t.Fatalf("id %d, proto says %d", v.ID, full.Id)
		}
		if v.Body == frameSent {
			s := full.GetSent()
			if s == nil || s.Seq != seq || s.Epoch != epoch {
				t.Fatalf("Sent read as %d %d, proto says %v", seq, epoch, full)
			}
			return
		}
		pm := full.GetPushMessages()
		if pm == nil || !bytes.Equal(pm.GroupId, p.GroupID) || pm.Last != p.Last || len(pm.Messages) != len(p.Messages) {
			t.Fatalf("push read as %+v, proto says %v", p, full)
		}
		for i, gm := range pm.Messages {
			m := p.Messages[i]
			if gm.Seq != m.Seq || gm.TimeMs != m.TimeMs || gm.Epoch != m.Epoch ||
				!bytes.Equal(gm.SenderDevice, m.SenderDevice) || !bytes.Equal(gm.Message, m.Message) ||
				!bytes.Equal(gm.Welcome, m.Welcome) || !bytes.Equal(gm.EscrowRecord, m.EscrowRecord) {
				t.Fatalf("message %d read as %+v, proto says %v", i, m, gm)
			}
		}
	})
}

func BenchmarkReadPush(b *testing.B) {
	push := wireSeeds(b)[0]
	var p Pushed
	b.ReportAllocs()
	for b.Loop() {
		v, ok := ViewFrame(push)
		if !ok || !ReadPushed(v.BodyBytes, &p) {
			b.Fatal("not read")
		}
	}
}

func BenchmarkUnmarshalPush(b *testing.B) {
	push := wireSeeds(b)[0]
	b.ReportAllocs()
	for b.Loop() {
		if err := proto.Unmarshal(push, &anomv1.Frame{}); err != nil {
			b.Fatal(err)
		}
	}
}
