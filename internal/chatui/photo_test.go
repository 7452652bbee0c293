package chatui

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"anom/identity"
)

// TestSessionPhotoOneEntry: a photo sent with its thumbnail (as the web
// app sends it) is one entry on the terminal, live and in /history, and
// /get saves the full image; a thumbnail in the older two-message form is
// not shown as a file of its own.
func TestSessionPhotoOneEntry(t *testing.T) {
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t, root, nil)
	alice, bob := n.user("alice"), n.user("bob")
	alice.do("/chat bob")
	bob.wait("* you were added to chat 1 alice")
	ctx := context.Background()
	gid := alice.s.chats[0].id
	photo := make([]byte, 70000)
	rand.Read(photo)
	sent, err := alice.c.SendPhoto(ctx, gid, bytes.NewReader(photo), int64(len(photo)), "image/png", "cat.png", []byte("\xff\xd8 thumbnail"), "image/jpeg")
	if err != nil {
		t.Fatal(err)
	}
	// The older form: the thumbnail as a second attachment, named after
	// the photo's message.
	thumb := []byte("\xff\xd8 old thumbnail")
	if _, err := alice.c.SendAttachment(ctx, gid, bytes.NewReader(thumb), int64(len(thumb)), "image/jpeg", ".anom-thumb-"+sent.ID.String()+".jpg", 0); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.SendText(ctx, gid, "after the photo"); err != nil {
		t.Fatal(err)
	}
	bob.wait("alice: after the photo")
	screen := bob.out.String()
	if got := strings.Count(screen, " sent "); got != 1 || !strings.Contains(screen, `alice sent photo "cat.png"`) {
		t.Fatalf("bob's screen shows %d attachment entries, want the photo alone:\n%s", got, screen)
	}
	hist := bob.do("/history")
	if got := strings.Count(hist, " sent "); got != 1 || strings.Contains(hist, "anom-thumb") {
		t.Fatalf("/history shows %d attachment entries, want the photo alone:\n%s", got, hist)
	}
	var seq string
	for _, l := range strings.Split(hist, "\n") {
		if strings.Contains(l, `sent photo "cat.png"`) {
			seq = strings.TrimPrefix(strings.Fields(l)[0], "#")
		}
	}
	dir := t.TempDir()
	mustContain(t, bob.do("/get "+seq+" "+dir), "* saved #"+seq)
	if got, err := os.ReadFile(filepath.Join(dir, "cat.png")); err != nil || !bytes.Equal(got, photo) {
		t.Fatalf("saved photo identical: %v, %v", bytes.Equal(got, photo), err)
	}
}
