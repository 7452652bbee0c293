package server

import (
	"context"
	"testing"
	"time"

	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

func ackFrame(g []byte, seq uint64) *anomv1.Frame {
	return &anomv1.Frame{Body: &anomv1.Frame_Ack{Ack: &anomv1.Ack{GroupId: g, Seq: seq}}}
}

func timerFrame(g []byte, seconds uint32) *anomv1.Frame {
	return &anomv1.Frame{Body: &anomv1.Frame_SetGroupTimer{SetGroupTimer: &anomv1.SetGroupTimer{GroupId: g, Seconds: seconds}}}
}

// A removed device that has not read its removal keeps the log from being
// trimmed past its cursor; once it has, its records go.
func TestRemovedMemberHoldsTrim(t *testing.T) {
	n := newNetwork(t, nil)
	g := gid("leaving")
	alice, bob := setupGroup(t, n, g)
	ctx := context.Background()
	gh := "g." + hexs(g)
	pr, err := alice.group.Commit(mls.CommitOptions{Remove: []mls.LeafIndex{1}})
	if err != nil {
		t.Fatal(err)
	}
	removal := alice.must(send(g, pr.Commit, nil)).GetSent().GetSeq()
	if err := alice.group.ApplyCommit(pr); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for range 3 {
		m, _ := alice.group.Encrypt([]byte("x"), nil)
		last = alice.must(send(g, m, nil)).GetSent().GetSeq()
	}
	alice.must(ackFrame(g, last))
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if info, _ := n.srv.st.Info(ctx, gh); info.First > removal {
		t.Fatalf("trimmed to %d past the removal at %d that bob has not read", info.First, removal)
	}
	bob.must(ackFrame(g, removal))
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if info, _ := n.srv.st.Info(ctx, gh); info.First != last+1 {
		t.Fatalf("after bob read his removal: first = %d, want %d", info.First, last+1)
	}
	if l, err := n.srv.leavingMembers(ctx, hexs(g)); err != nil || len(l) != 0 {
		t.Fatalf("leaving members %v %v", l, err)
	}
}

// A removed device that never comes back is forgotten once retention has
// dropped the commit that removed it.
func TestRemovedMemberForgottenAfterRetention(t *testing.T) {
	n := newNetwork(t, nil)
	g := gid("gone")
	alice, bob := setupGroup(t, n, g)
	ctx := context.Background()
	pr, _ := alice.group.Commit(mls.CommitOptions{Remove: []mls.LeafIndex{1}})
	alice.must(send(g, pr.Commit, nil))
	n.clock.Advance(31 * 24 * time.Hour)
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.srv.membership(ctx, bob.cert.DeviceID.String(), hexs(g)); code(errorFrame(1, err)) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("removed member after retention: %v", err)
	}
	if l, err := n.srv.leavingMembers(ctx, hexs(g)); err != nil || len(l) != 0 {
		t.Fatalf("leaving members %v %v", l, err)
	}
}

func TestSetGroupTimerAuthorization(t *testing.T) {
	n := newNetwork(t, nil)
	g := gid("timers")
	alice, bob := setupGroup(t, n, g)
	carol := n.activate("carol", n.codes(1, 1)[0])
	tests := []struct {
		name string
		c    *client
		f    *anomv1.Frame
		want anomv1.ErrorCode
	}{
		{"member", bob.client, timerFrame(g, 60), 0},
		{"non-member", carol, timerFrame(g, 60), anomv1.ErrorCode_ERROR_CODE_FORBIDDEN},
		{"unknown group", alice.client, timerFrame(gid("nosuchgroup"), 60), anomv1.ErrorCode_ERROR_CODE_NOT_FOUND},
		{"too long", alice.client, timerFrame(g, uint32(MaxGroupTimer/time.Second)+1), anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"short group id", alice.client, timerFrame([]byte("short"), 60), anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"off", alice.client, timerFrame(g, 0), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := code(tt.c.call(tt.f)); got != tt.want {
				t.Fatalf("code %v, want %v", got, tt.want)
			}
		})
	}
	ctx := context.Background()
	alice.must(timerFrame(g, 90))
	if s, err := n.srv.groupTimer(ctx, hexs(g)); err != nil || s != 90 {
		t.Fatalf("timer %d %v", s, err)
	}
	gs := bob.must(&anomv1.Frame{Body: &anomv1.Frame_ListGroups{ListGroups: &anomv1.ListGroups{}}}).GetGroups().GetGroups()
	if len(gs) != 1 || gs[0].GetTimerSeconds() != 90 {
		t.Fatalf("groups %v", gs)
	}
}

// Past the timer, application messages go even though Bob has not read
// them; the commit he has not read is kept and served in its place, so he
// can still follow the group.
func TestGroupTimerRetention(t *testing.T) {
	n := newNetwork(t, nil)
	g := gid("disappearing")
	alice, bob := setupGroup(t, n, g)
	ctx := context.Background()
	gh := "g." + hexs(g)
	alice.must(timerFrame(g, 60))
	m1, _ := alice.group.Encrypt([]byte("secret 1"), nil)
	alice.must(send(g, m1, nil))
	pc, err := alice.group.Commit(mls.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	commitSeq := alice.must(send(g, pc.Commit, nil)).GetSent().GetSeq()
	if err := alice.group.ApplyCommit(pc); err != nil {
		t.Fatal(err)
	}
	m2, _ := alice.group.Encrypt([]byte("secret 2"), nil)
	last := alice.must(send(g, m2, nil)).GetSent().GetSeq()
	alice.must(ackFrame(g, last))

	// Within the timer nothing goes (Bob has read nothing).
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if info, _ := n.srv.st.Info(ctx, gh); info.First != 1 {
		t.Fatalf("trimmed within the timer: first = %d", info.First)
	}
	n.clock.Advance(2 * time.Minute)
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if info, _ := n.srv.st.Info(ctx, gh); info.Len() != 0 {
		t.Fatalf("after the timer the log keeps %d messages", info.Len())
	}
	got := bob.must(&anomv1.Frame{Body: &anomv1.Frame_Fetch{Fetch: &anomv1.Fetch{GroupId: g, From: 2}}}).GetMessages()
	if len(got.GetMessages()) != 1 || got.GetMessages()[0].GetSeq() != commitSeq || got.GetLast() != last {
		t.Fatalf("bob fetches %v", got)
	}
	if _, err := bob.group.Handle(mustDecode(t, got.GetMessages()[0].GetMessage())); err != nil {
		t.Fatalf("bob applying the kept commit: %v", err)
	}
	if bob.group.Epoch() != alice.group.Epoch() {
		t.Fatalf("bob at epoch %d, alice at %d", bob.group.Epoch(), alice.group.Epoch())
	}
	// Once Bob has it, the kept commit goes too.
	bob.must(ackFrame(g, last))
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if kept, err := n.srv.keptCommits(ctx, hexs(g), 1, last+1, 10); err != nil || len(kept) != 0 {
		t.Fatalf("kept commits after every device read them: %d %v", len(kept), err)
	}
	// A new message still reaches Bob, in the new epoch.
	m3, _ := alice.group.Encrypt([]byte("after"), nil)
	alice.must(send(g, m3, nil))
	p := bob.nextPush().GetPushMessages()
	for p != nil && string(p.GetMessages()[0].GetMessage()) != string(m3.Encode()) {
		p = bob.nextPush().GetPushMessages()
	}
	if p == nil {
		t.Fatal("no push of the new message")
	}
	rec, err := bob.group.Handle(mustDecode(t, p.GetMessages()[0].GetMessage()))
	if err != nil || string(rec.Application) != "after" {
		t.Fatalf("bob reading after the timer: %v", err)
	}
}
