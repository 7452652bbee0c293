package client

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

// TestSendPhotoWithThumbnail: a photo and its thumbnail travel as one
// message; the receiver gets the full image and the thumbnail
// byte-identical, inline for a small thumbnail and as a blob of its own
// for a larger one.
func TestSendPhotoWithThumbnail(t *testing.T) {
	n := newTestNet(t)
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	photo := make([]byte, 3*AttachmentChunk+5)
	rand.Read(photo)
	for _, tt := range []struct {
		name   string
		thumb  int
		inline bool
	}{{"inline", 2000, true}, {"largest inline", MaxInlineThumbnail, true}, {"blob", MaxInlineThumbnail + 1, false}} {
		t.Run(tt.name, func(t *testing.T) {
			thumb := make([]byte, tt.thumb)
			rand.Read(thumb)
			sent, err := alice.c.SendPhoto(ctx, g, bytes.NewReader(photo), int64(len(photo)), "image/png", "holiday.png", thumb, "image/jpeg")
			if err != nil {
				t.Fatal(err)
			}
			if sent.Kind != KindPhoto {
				t.Fatalf("sent a %v", sent.Kind)
			}
			var got *Message
			for got == nil {
				e := bob.wait(EventMessage)
				if e.Message.Content.ID == sent.ID {
					got = e.Message
				} else {
					t.Fatalf("bob got another message first: %v", e.Message.Content.Kind)
				}
			}
			ref := got.Content.Attachment
			if got.Content.Kind != KindPhoto || ref == nil || ref.Thumbnail == nil {
				t.Fatalf("bob got %+v", got.Content)
			}
			if (ref.Thumbnail.Ref == nil) != tt.inline {
				t.Fatalf("thumbnail inline = %v, want %v", ref.Thumbnail.Ref == nil, tt.inline)
			}
			var full, small bytes.Buffer
			if err := bob.c.FetchAttachment(ctx, ref, &full); err != nil {
				t.Fatal(err)
			}
			if err := bob.c.FetchThumbnail(ctx, ref, &small); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(full.Bytes(), photo) || !bytes.Equal(small.Bytes(), thumb) {
				t.Fatalf("photo %v, thumbnail %v identical", bytes.Equal(full.Bytes(), photo), bytes.Equal(small.Bytes(), thumb))
			}
			if !tt.inline && (ref.Thumbnail.Ref.Key == ref.Key || ref.Thumbnail.Ref.BlobID == ref.BlobID) {
				t.Fatal("the thumbnail's blob shares the photo's key or blob")
			}
		})
	}
	// One message each: the history holds three photos and nothing else.
	hist, err := bob.c.History(g)
	if err != nil {
		t.Fatal(err)
	}
	photos := 0
	for _, m := range hist {
		if m.Content.Readable() {
			photos++
			if m.Content.Kind != KindPhoto {
				t.Errorf("history holds a %v", m.Content.Kind)
			}
		}
	}
	if photos != 3 {
		t.Fatalf("bob's history holds %d messages, want the 3 photos", photos)
	}
	// Nothing is uploaded for a thumbnail that could not be sent.
	if _, err := alice.c.SendPhoto(ctx, g, bytes.NewReader(photo), int64(len(photo)), "image/png", "x.png", []byte("<svg>"), "text/html"); !errors.Is(err, ErrBadContent) {
		t.Fatalf("a thumbnail that is not an image: %v, want ErrBadContent", err)
	}
	if _, err := alice.c.SendPhoto(ctx, g, bytes.NewReader(photo), int64(len(photo)), "image/png", "x.png", make([]byte, MaxThumbnailSize+1), "image/jpeg"); !errors.Is(err, ErrBadContent) {
		t.Fatalf("a thumbnail over the limit: %v, want ErrBadContent", err)
	}
	var buf bytes.Buffer
	if err := bob.c.FetchThumbnail(ctx, testRef(), &buf); !errors.Is(err, ErrNotFound) {
		t.Fatalf("FetchThumbnail of a file: %v, want ErrNotFound", err)
	}
}
