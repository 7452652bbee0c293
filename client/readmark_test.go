package client

import (
	"errors"
	"testing"
)

// TestReadMarkSurvivesRestart: a group's read mark is kept in the
// device's encrypted state, so the unread count is the same after the
// device is closed and opened again; it only moves forward, and it is
// the device's own (another device of the group counts its own).
func TestReadMarkSurvivesRestart(t *testing.T) {
	n := newTestNet(t)
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	for _, s := range []string{"one", "two", "three"} {
		if err := alice.c.SendText(ctx, g, s); err != nil {
			t.Fatal(err)
		}
		bob.waitText(s)
	}
	// A device's own messages are not unread on it.
	if err := bob.c.SendText(ctx, g, "bob's own"); err != nil {
		t.Fatal(err)
	}
	alice.waitText("bob's own")
	unread := func(d *device) (int, uint64) {
		t.Helper()
		n, upTo, err := d.c.UnreadCount(g)
		if err != nil {
			t.Fatal(err)
		}
		return n, upTo
	}
	if got, mark := unread(bob); got != 3 || mark != 0 {
		t.Fatalf("bob: %d unread, mark %d; want 3, 0", got, mark)
	}
	if got, _ := unread(alice); got != 1 {
		t.Fatalf("alice: %d unread, want 1 (bob's)", got)
	}
	hist, err := bob.c.History(g)
	if err != nil {
		t.Fatal(err)
	}
	var second uint64
	for _, m := range hist {
		if m.Content.Text == "two" {
			second = m.Seq
		}
	}
	if err := bob.c.MarkRead(g, second); err != nil {
		t.Fatal(err)
	}
	if got, mark := unread(bob); got != 1 || mark != second {
		t.Fatalf("bob after reading up to #%d: %d unread, mark %d; want 1", second, got, mark)
	}

	// A restart keeps the mark.
	if err := bob.c.Close(); err != nil {
		t.Fatal(err)
	}
	if bob.c, err = Open(bob.cfg, testPIN); err != nil {
		t.Fatal(err)
	}
	if got, mark := unread(bob); got != 1 || mark != second {
		t.Fatalf("bob after a restart: %d unread, mark %d; want 1, %d", got, mark, second)
	}
	// An older mark changes nothing.
	if err := bob.c.MarkRead(g, 1); err != nil {
		t.Fatal(err)
	}
	if got, _ := unread(bob); got != 1 {
		t.Fatalf("bob after an older mark: %d unread, want 1", got)
	}
	if err := bob.c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.SendText(ctx, g, "four"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("four")
	if got, _ := unread(bob); got != 2 {
		t.Fatalf("bob after another message: %d unread, want 2", got)
	}
	hist, err = bob.c.History(g)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.c.MarkRead(g, LastSeq(hist)); err != nil {
		t.Fatal(err)
	}
	if got, _ := unread(bob); got != 0 {
		t.Fatalf("bob after reading all: %d unread, want 0", got)
	}
	if err := bob.c.Close(); err != nil {
		t.Fatal(err)
	}
	if bob.c, err = Open(bob.cfg, testPIN); err != nil {
		t.Fatal(err)
	}
	if got, _ := unread(bob); got != 0 {
		t.Fatalf("bob after reading all and a restart: %d unread, want 0", got)
	}
	if err := bob.c.MarkRead([]byte("no such group"), 1); !errors.Is(err, ErrNoGroup) {
		t.Fatalf("MarkRead of an unknown group: %v, want ErrNoGroup", err)
	}
}

// TestUnreadCounts: what counts as unread.
func TestUnreadCounts(t *testing.T) {
	photo := MessageID{7}
	msg := func(seq uint64, out bool, c *Content) *Message {
		return &Message{Seq: seq, Outgoing: out, Content: c}
	}
	hist := []*Message{
		msg(1, false, &Content{Kind: KindText}),
		msg(2, true, &Content{Kind: KindText}),
		msg(3, false, &Content{Kind: KindTimer}),
		msg(4, false, &Content{Kind: KindGroupName, Text: "g"}),
		msg(5, false, &Content{Kind: KindAttachment, ID: photo, Attachment: &AttachmentRef{BlobID: "p", MIME: "image/png"}}),
		msg(6, false, &Content{Kind: KindAttachment, Attachment: &AttachmentRef{BlobID: "t", MIME: "image/jpeg", Name: ".anom-thumb-" + photo.String() + ".jpg"}}),
		msg(7, false, &Content{Kind: KindPhoto, Attachment: testPhotoRef(false)}),
		msg(8, false, &Content{Kind: KindVoice, Attachment: testRef()}),
		msg(9, false, &Content{Kind: KindDelete}),
	}
	for _, tt := range []struct {
		upTo uint64
		want int
	}{{0, 4}, {1, 3}, {5, 2}, {7, 1}, {9, 0}, {100, 0}} {
		if got := Unread(hist, tt.upTo); got != tt.want {
			t.Errorf("Unread(up to %d) = %d, want %d", tt.upTo, got, tt.want)
		}
	}
	if got := LastSeq(hist); got != 9 {
		t.Errorf("LastSeq = %d, want 9", got)
	}
}
