package server

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// timerAtFrame tells the server a timer set by the timer message at seq.
func timerAtFrame(g []byte, seconds uint32, seq uint64) *anomv1.Frame {
	return &anomv1.Frame{Body: &anomv1.Frame_SetGroupTimer{SetGroupTimer: &anomv1.SetGroupTimer{GroupId: g, Seconds: seconds, Seq: seq}}}
}

// sendText sends an application message and returns its sequence.
func (m *member) sendText(t *testing.T, g []byte, text string) uint64 {
	t.Helper()
	msg, err := m.group.Encrypt([]byte(text), nil)
	if err != nil {
		t.Fatal(err)
	}
	return m.must(send(g, msg, nil)).GetSent().GetSeq()
}

// setTimer sends a timer message and tells the server, as clients do; it
// returns the timer message's sequence.
func (m *member) setTimer(t *testing.T, g []byte, seconds uint32) uint64 {
	t.Helper()
	seq := m.sendText(t, g, fmt.Sprintf("timer %d", seconds))
	m.must(timerAtFrame(g, seconds, seq))
	return seq
}

// fetchAll returns the sequences a device fetches of a group from its
// start.
func fetchAll(t *testing.T, c *client, g []byte) []uint64 {
	t.Helper()
	var seqs []uint64
	for from := uint64(1); ; {
		ms := c.must(&anomv1.Frame{Body: &anomv1.Frame_Fetch{Fetch: &anomv1.Fetch{GroupId: g, From: from}}}).GetMessages()
		if len(ms.GetMessages()) == 0 {
			return seqs
		}
		for _, m := range ms.GetMessages() {
			seqs = append(seqs, m.GetSeq())
		}
		from = seqs[len(seqs)-1] + 1
		if from > ms.GetLast() {
			return seqs
		}
	}
}

// checkStored fails unless Bob can fetch every sequence of have and none
// of gone.
func checkStored(t *testing.T, step string, c *client, g []byte, have, gone []uint64) {
	t.Helper()
	got := fetchAll(t, c, g)
	for _, s := range have {
		if !slices.Contains(got, s) {
			t.Errorf("%s: message %d is gone (fetched %v)", step, s, got)
		}
	}
	for _, s := range gone {
		if slices.Contains(got, s) {
			t.Errorf("%s: message %d is still served (fetched %v)", step, s, got)
		}
	}
}

func sweep(t *testing.T, n *network) {
	t.Helper()
	if err := n.srv.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A timer applies to the messages after the timer message: the server
// keeps the ones before (Bob has not read them) past the timer and still
// serves them, readable; the ones after go once older than the timer.
func TestTimerAppliesFromItsMessage(t *testing.T) {
	n := newNetwork(t, nil)
	g := gid("timer-from")
	alice, bob := setupGroup(t, n, g)
	pre1 := alice.sendText(t, g, "before 1")
	pre2 := alice.sendText(t, g, "before 2")
	tm := alice.setTimer(t, g, 60)
	post1 := alice.sendText(t, g, "after 1")
	post2 := alice.sendText(t, g, "after 2")
	alice.must(ackFrame(g, post2))

	sweep(t, n)
	checkStored(t, "within the timer", bob.client, g, []uint64{pre1, pre2, tm, post1, post2}, nil)
	n.clock.Advance(2 * time.Minute)
	sweep(t, n)
	checkStored(t, "past the timer", bob.client, g, []uint64{pre1, pre2, tm}, []uint64{post1, post2})

	// What Bob catches up on is intact: he decrypts it.
	ms := bob.must(&anomv1.Frame{Body: &anomv1.Frame_Fetch{Fetch: &anomv1.Fetch{GroupId: g, From: pre1}}}).GetMessages().GetMessages()
	var texts []string
	for _, m := range ms {
		rec, err := bob.group.Handle(mustDecode(t, m.GetMessage()))
		if err != nil {
			t.Fatalf("bob reading message %d: %v", m.GetSeq(), err)
		}
		texts = append(texts, string(rec.Application))
	}
	if want := []string{"before 1", "before 2", "timer 60"}; !slices.Equal(texts, want) {
		t.Fatalf("bob reads %q, want %q", texts, want)
	}
	// Once Bob has them, they go like any message every device read.
	bob.must(ackFrame(g, post2))
	sweep(t, n)
	checkStored(t, "after bob read them", bob.client, g, nil, []uint64{pre1, pre2, tm})
	if kept, err := n.srv.keptCommits(context.Background(), hexs(g), 1, post2+1, 100); err != nil || len(kept) != 0 {
		t.Fatalf("kept aside after every device read them: %d %v", len(kept), err)
	}
}

// A changed timer applies from the change on: messages stored under the
// earlier timer keep it. Turned off, later messages stay, and earlier ones
// still go by the timer they were stored under.
func TestTimerChangeAppliesFromTheChange(t *testing.T) {
	n := newNetwork(t, nil)
	g := gid("timer-change")
	alice, bob := setupGroup(t, n, g)
	pre := alice.sendText(t, g, "no timer")
	t1 := alice.setTimer(t, g, 60)
	a := alice.sendText(t, g, "under a minute")
	t2 := alice.setTimer(t, g, 600)
	b := alice.sendText(t, g, "under ten minutes")
	t3 := alice.setTimer(t, g, 0)
	c := alice.sendText(t, g, "no timer again")
	alice.must(ackFrame(g, c))

	n.clock.Advance(2 * time.Minute)
	sweep(t, n)
	checkStored(t, "past one minute", bob.client, g, []uint64{pre, t1, t2, b, t3, c}, []uint64{a})
	n.clock.Advance(10 * time.Minute)
	sweep(t, n)
	checkStored(t, "past ten minutes", bob.client, g, []uint64{pre, t1, t2, t3, c}, []uint64{a, b})
	n.clock.Advance(24 * time.Hour)
	sweep(t, n)
	checkStored(t, "a day later", bob.client, g, []uint64{pre, t1, t2, t3, c}, []uint64{a, b})
	if s, err := n.srv.groupTimer(context.Background(), hexs(g)); err != nil || s != 0 {
		t.Fatalf("current timer %d %v", s, err)
	}
}

// Timer changes told out of log order (two members set one at about the
// same time) apply by the log order of their timer messages.
func TestTimerChangesToldOutOfOrder(t *testing.T) {
	n := newNetwork(t, nil)
	g := gid("timer-order")
	alice, bob := setupGroup(t, n, g)
	t1 := alice.sendText(t, g, "timer 60")
	a := alice.sendText(t, g, "under a minute")
	t2 := bob.sendText(t, g, "timer 0")
	b := alice.sendText(t, g, "no timer")
	bob.must(timerAtFrame(g, 0, t2))
	alice.must(timerAtFrame(g, 60, t1))
	alice.must(ackFrame(g, b))
	n.clock.Advance(2 * time.Minute)
	sweep(t, n)
	checkStored(t, "past the timer", bob.client, g, []uint64{t1, t2, b}, []uint64{a})
	if s, err := n.srv.groupTimer(context.Background(), hexs(g)); err != nil || s != 0 {
		t.Fatalf("current timer %d %v, want the later change (off)", s, err)
	}
}

// The timer history is in the store: a restarted server still trims each
// message by the timer it was stored under.
func TestTimerHistorySurvivesRestart(t *testing.T) {
	n := newNetwork(t, nil)
	g := gid("timer-restart")
	alice, bob := setupGroup(t, n, g)
	pre := alice.sendText(t, g, "before")
	tm := alice.setTimer(t, g, 60)
	post := alice.sendText(t, g, "after")
	alice.must(ackFrame(g, post))

	n.restart()
	bc, r := n.connect(bob.client)
	if r.GetError() != nil {
		t.Fatalf("bob reconnecting: %v", r.GetError())
	}
	n.clock.Advance(2 * time.Minute)
	sweep(t, n)
	checkStored(t, "after a restart", bc, g, []uint64{pre, tm}, []uint64{post})
	if s, err := n.srv.groupTimer(context.Background(), hexs(g)); err != nil || s != 60 {
		t.Fatalf("current timer after a restart %d %v", s, err)
	}
}

// A member cannot make a timer apply to messages already stored (and so
// delete what others have not read): the timer message must be its own,
// recent, application message in the log.
func TestAttackRetroactiveTimer(t *testing.T) {
	n := newNetwork(t, nil)
	g := gid("timer-attack")
	alice, bob := setupGroup(t, n, g)
	old := bob.sendText(t, g, "bob's old message")
	n.clock.Advance(time.Hour)
	mine := alice.sendText(t, g, "alice's message")
	pc, err := bob.group.Commit(mls.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	commit := bob.must(send(g, pc.Commit, nil)).GetSent().GetSeq()
	if err := bob.group.ApplyCommit(pc); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		seq  uint64
		want anomv1.ErrorCode
	}{
		{"another device's message", mine, anomv1.ErrorCode_ERROR_CODE_FORBIDDEN},
		{"an old message", old, anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"a commit", commit, anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"beyond the log", commit + 1, anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := code(bob.call(timerAtFrame(g, 1, tt.seq))); got != tt.want {
				t.Fatalf("code %v, want %v", got, tt.want)
			}
		})
	}
	n.clock.Advance(time.Minute)
	sweep(t, n)
	checkStored(t, "after refused timers", alice.client, g, []uint64{old, mine, commit}, nil)
}

// The history stays bounded however often the timer changes, and never
// deletes a message earlier than its timer; once every device has read
// the messages, it shrinks to the current timer.
func TestTimerHistoryBounded(t *testing.T) {
	n := newNetwork(t, nil)
	g := gid("timer-bound")
	alice, bob := setupGroup(t, n, g)
	ctx := context.Background()
	var last uint64
	for i := range maxTimerChanges + 20 {
		last = alice.setTimer(t, g, uint32(60*(i%3))) // off, 1 min, 2 min
		last = alice.sendText(t, g, "x")
	}
	tr, _, err := n.srv.timerHistory(ctx, hexs(g))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Changes) > maxTimerChanges {
		t.Fatalf("%d timer changes kept, at most %d", len(tr.Changes), maxTimerChanges)
	}
	// Merged changes keep the longer timer: nothing goes before its own.
	for i, c := range tr.Changes[1:] {
		if c.From <= tr.Changes[i].From {
			t.Fatalf("changes out of order: %v", tr.Changes)
		}
	}
	alice.must(ackFrame(g, last))
	bob.must(ackFrame(g, last))
	sweep(t, n)
	tr, _, err = n.srv.timerHistory(ctx, hexs(g))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Changes) != 1 {
		t.Fatalf("after every device read everything: %d changes %v", len(tr.Changes), tr.Changes)
	}
}

func TestWithTimerChange(t *testing.T) {
	ch := func(from uint64, s uint32) timerChange { return timerChange{From: from, Seconds: s, Marked: true} }
	tests := []struct {
		name string
		in   []timerChange
		add  timerChange
		want []timerChange
	}{
		{"first", nil, ch(5, 60), []timerChange{ch(5, 60)}},
		{"later", []timerChange{ch(5, 60)}, ch(9, 0), []timerChange{ch(5, 60), ch(9, 0)}},
		{"told late", []timerChange{ch(5, 60), ch(9, 0)}, ch(7, 30), []timerChange{ch(5, 60), ch(7, 30), ch(9, 0)}},
		{"same message", []timerChange{ch(5, 60)}, ch(5, 30), []timerChange{ch(5, 30)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withTimerChange(tt.in, tt.add); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	// Past the bound the oldest two merge into the longer timer (off is
	// the longest), so no message goes before its own timer.
	var hist []timerChange
	for i := range maxTimerChanges {
		hist = append(hist, ch(uint64(10*i+10), uint32(60+i)))
	}
	got := withTimerChange(hist, ch(10*maxTimerChanges+10, 5))
	if len(got) != maxTimerChanges || got[0].From != 10 || got[0].Seconds != 61 {
		t.Fatalf("bounded history starts %v, %d changes", got[:2], len(got))
	}
	for seq := uint64(1); seq < 10*maxTimerChanges+10; seq++ {
		if a, b := timerAt(hist, seq), timerAt(got, seq); b != 0 && (a == 0 || b < a) {
			t.Fatalf("message %d: timer %v before the merge, %v after", seq, a, b)
		}
	}
	hist[1].Seconds = 0
	if got := withTimerChange(hist, ch(10*maxTimerChanges+10, 5)); got[0].Seconds != 0 {
		t.Fatalf("merged with an off timer: %v", got[0])
	}
}

func TestTimerAt(t *testing.T) {
	hist := []timerChange{{From: 5, Seconds: 60}, {From: 9, Seconds: 0}, {From: 12, Seconds: 30}}
	for _, tt := range []struct {
		seq  uint64
		want time.Duration
	}{{1, 0}, {4, 0}, {5, time.Minute}, {8, time.Minute}, {9, 0}, {11, 0}, {12, 30 * time.Second}, {99, 30 * time.Second}} {
		if got := timerAt(hist, tt.seq); got != tt.want {
			t.Errorf("timerAt(%d) = %v, want %v", tt.seq, got, tt.want)
		}
	}
}

// A crash after the messages that stay were set aside but before the log
// was trimmed leaves them in both places: Fetch serves each once, and the
// next sweep finishes the trim.
func TestTimerTrimCrashBetweenSteps(t *testing.T) {
	// No background sweep: this one finishes the trim.
	n := newNetwork(t, func(c *Config) { c.SweepInterval = time.Hour })
	g := gid("timer-crash")
	alice, bob := setupGroup(t, n, g)
	ctx := context.Background()
	pre := alice.sendText(t, g, "before")
	tm := alice.setTimer(t, g, 60)
	post := alice.sendText(t, g, "after")
	alice.must(ackFrame(g, post))
	n.clock.Advance(2 * time.Minute)
	// The first step of trimByTimers, as a crash leaves it.
	es, err := n.srv.st.Read(ctx, groupLog(hexs(g)), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Seq >= post {
			break
		}
		var gm anomv1.GroupMessage
		if err := proto.Unmarshal(e.Data, &gm); err != nil {
			t.Fatal(err)
		}
		gm.Seq, gm.TimeMs = e.Seq, e.Time.UnixMilli()
		b, _ := proto.Marshal(&gm)
		if _, err := n.srv.st.Put(ctx, bucketKept, keptKey(hexs(g), e.Seq), b); err != nil {
			t.Fatal(err)
		}
	}
	n.restart()
	bc, r := n.connect(bob.client)
	if r.GetError() != nil {
		t.Fatalf("bob reconnecting: %v", r.GetError())
	}
	got := fetchAll(t, bc, g)
	if want := []uint64{1, pre, tm, post}; !slices.Equal(got, want) {
		t.Fatalf("after the crash bob fetches %v, want %v", got, want)
	}
	sweep(t, n)
	if got, want := fetchAll(t, bc, g), []uint64{1, pre, tm}; !slices.Equal(got, want) {
		t.Fatalf("after the next sweep bob fetches %v, want %v", got, want)
	}
	if info, _ := n.srv.st.Info(ctx, groupLog(hexs(g))); info.Len() != 0 {
		t.Fatalf("log keeps %d messages", info.Len())
	}
}
