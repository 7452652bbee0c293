package wire

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	anomv1 "anom/proto/anom/v1"
)

// TestPushFrame checks the hand-built push against proto.Marshal's
// encoding, and that the fast reader reads it back.
func TestPushFrame(t *testing.T) {
	gid := []byte("0123456789abcdef")
	tests := []struct {
		name   string
		group  []byte
		gm     *anomv1.GroupMessage
		seq    uint64
		timeMs int64
	}{
		{"application", gid, &anomv1.GroupMessage{SenderDevice: make([]byte, 32), Message: make([]byte, 1024), Epoch: 7}, 42, 1_700_000_000_123},
		{"first, epoch 0", gid, &anomv1.GroupMessage{SenderDevice: []byte{1}, Message: []byte{2}}, 1, 1},
		{"commit", gid, &anomv1.GroupMessage{SenderDevice: []byte{1}, Message: []byte{2, 3}, Welcome: []byte{4}, AddedDevices: [][]byte{{5}, {6, 7}}, Epoch: 1}, 1 << 40, -5},
		{"escrowed", gid, &anomv1.GroupMessage{SenderDevice: []byte{1}, Message: make([]byte, 300), EscrowRecord: []byte{9, 9}, Epoch: 3}, 300, 0},
		{"no group, no sequence", nil, &anomv1.GroupMessage{Message: []byte{1}}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored, err := proto.Marshal(tt.gm)
			if err != nil {
				t.Fatal(err)
			}
			b := PushFrame(tt.group, stored, tt.seq, tt.timeMs)
			var got anomv1.Frame
			if err := proto.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			gm := proto.Clone(tt.gm).(*anomv1.GroupMessage)
			gm.Seq, gm.TimeMs = tt.seq, tt.timeMs
			want := &anomv1.Frame{Body: &anomv1.Frame_PushMessages{PushMessages: &anomv1.Messages{GroupId: tt.group, Messages: []*anomv1.GroupMessage{gm}, Last: tt.seq}}}
			if !proto.Equal(&got, want) {
				t.Errorf("push decodes as %v, want %v", &got, want)
			}
			if n := proto.Size(want); len(b) != n || cap(b) != n {
				t.Errorf("push of %d bytes (capacity %d), proto.Marshal gives %d", len(b), cap(b), n)
			}
			v, ok := ViewFrame(b)
			var p Pushed
			if !ok || !v.IsPushMessages() || v.IsSent() || !ReadPushed(v.BodyBytes, &p) {
				t.Fatalf("the fast reader did not take the push: %+v", v)
			}
			m := p.Messages
			if !bytes.Equal(p.GroupID, tt.group) || p.Last != tt.seq || len(m) != 1 || m[0].Seq != tt.seq || m[0].TimeMs != tt.timeMs ||
				!bytes.Equal(m[0].Message, tt.gm.Message) || !bytes.Equal(m[0].EscrowRecord, tt.gm.EscrowRecord) || m[0].Epoch != tt.gm.Epoch {
				t.Errorf("read back as %+v", p)
			}
		})
	}
}

func BenchmarkPushFrame(b *testing.B) {
	stored, err := proto.Marshal(&anomv1.GroupMessage{SenderDevice: make([]byte, 32), Message: make([]byte, 1100), Epoch: 7})
	if err != nil {
		b.Fatal(err)
	}
	g := []byte("group-0123456789")
	b.ReportAllocs()
	for b.Loop() {
		PushFrame(g, stored, 12345, 1700000000000)
	}
}
