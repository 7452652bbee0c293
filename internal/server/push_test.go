package server

import (
	"encoding/hex"
	"testing"
	"time"

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

// TestFanOutFollowsSessions checks the per-group cache of member
// sessions: a session that authenticates after the group's messages were
// fanned out gets the next ones, a closed one is left out, and a group that
// sends nothing more drops what it cached once the hub has moved on.
func TestFanOutFollowsSessions(t *testing.T) {
	n := newNetwork(t, nil)
	g := gid("fan-out")
	alice, bob := setupGroup(t, n, g)
	sendText := func(text string) uint64 {
		t.Helper()
		m, err := alice.group.Encrypt([]byte(text), nil)
		if err != nil {
			t.Fatal(err)
		}
		return alice.must(send(g, m, nil)).GetSent().GetSeq()
	}
	expect := func(c *client, seq uint64) {
		t.Helper()
		if p := c.nextPush().GetPushMessages(); p == nil || p.GetLast() != seq {
			t.Fatalf("push %v, want seq %d", p, seq)
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	expect(bob.client, sendText("one"))
	bob2, r := n.connect(bob.client)
	if code(r) != 0 {
		t.Fatal(r.GetError())
	}
	seq := sendText("two")
	expect(bob.client, seq)
	expect(bob2, seq)

	bob.ws.CloseNow()
	waitFor("the closed session to leave the hub", func() bool { return len(n.srv.hub.of(bob.cert.DeviceID)) == 1 })
	expect(bob2, sendText("three"))

	st := n.srv.groups.entry(hex.EncodeToString(g))
	if f := st.fan.Load(); f == nil || len(f.sessions) != 2 {
		t.Fatalf("cached sessions after three: %+v, want alice's and bob's second", f)
	}
	bob2.ws.CloseNow()
	waitFor("the group to drop its stale sessions", func() bool { return st.fan.Load() == nil })
}
