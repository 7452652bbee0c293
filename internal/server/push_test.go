package server

import (
	"testing"

	"google.golang.org/protobuf/proto"

	anomv1 "anom/proto/anom/v1"
)

// TestPushFrame checks that the hand-built push decodes as the Frame
// proto.Marshal encodes.
func TestPushFrame(t *testing.T) {
	gid := []byte("0123456789abcdef")
	tests := []struct {
		name   string
		gm     *anomv1.GroupMessage
		seq    uint64
		timeMs int64
	}{
		{"application", &anomv1.GroupMessage{SenderDevice: make([]byte, 32), Message: make([]byte, 1024), Epoch: 7}, 42, 1_700_000_000_123},
		{"first, epoch 0", &anomv1.GroupMessage{SenderDevice: []byte{1}, Message: []byte{2}}, 1, 1},
		{"commit", &anomv1.GroupMessage{SenderDevice: []byte{1}, Message: []byte{2, 3}, Welcome: []byte{4}, AddedDevices: [][]byte{{5}, {6, 7}}, Epoch: 1}, 1 << 40, -5},
		{"escrowed", &anomv1.GroupMessage{SenderDevice: []byte{1}, Message: make([]byte, 300), EscrowRecord: []byte{9, 9}, Epoch: 3}, 300, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored, err := proto.Marshal(tt.gm)
			if err != nil {
				t.Fatal(err)
			}
			var got anomv1.Frame
			if err := proto.Unmarshal(pushFrame(gid, stored, tt.seq, tt.timeMs), &got); err != nil {
				t.Fatal(err)
			}
			gm := proto.Clone(tt.gm).(*anomv1.GroupMessage)
			gm.Seq, gm.TimeMs = tt.seq, tt.timeMs
			want := &anomv1.Frame{Body: &anomv1.Frame_PushMessages{PushMessages: &anomv1.Messages{GroupId: gid, Messages: []*anomv1.GroupMessage{gm}, Last: tt.seq}}}
			if !proto.Equal(&got, want) {
				t.Errorf("push decodes as %v, want %v", &got, want)
			}
			wantLen := proto.Size(want)
			if n := len(pushFrame(gid, stored, tt.seq, tt.timeMs)); n != wantLen {
				t.Errorf("push of %d bytes, proto.Marshal gives %d", n, wantLen)
			}
		})
	}
}
