package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"anom/client"
	"anom/identity"
)

func TestMessageAndEventJSON(t *testing.T) {
	sent := time.UnixMilli(1_700_000_000_123)
	m := &client.Message{Group: []byte{0xab, 0xcd}, Seq: 7, From: identity.DeviceID{1}, Username: "bob",
		Received: sent.Add(time.Second), Content: &client.Content{Kind: client.KindVoice, ID: client.MessageID{2}, SentAt: sent,
			Attachment: &client.AttachmentRef{Name: "note.ogg", MIME: "audio/ogg", Size: 99}, Duration: 1500 * time.Millisecond}}
	e := eventOf(client.Event{Type: client.EventMessage, Message: m})
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"message","groupId":"abcd","message":{"groupId":"abcd","id":"02000000000000000000000000000000","seq":7,` +
		`"device":"01000000000000000000000000000000","username":"bob","sentAt":1700000000123,"received":1700000001123,` +
		`"outgoing":false,"pending":false,"kind":"voice","attachment":{"name":"note.ogg","mime":"audio/ogg","size":99},"durationMs":1500}}`
	if string(b) != want {
		t.Fatalf("event JSON\n got %s\nwant %s", b, want)
	}
	if e := eventOf(client.Event{Type: client.EventDisconnected, Err: errors.New("gone")}); e.Type != "disconnected" || e.Error != "gone" || e.GroupID != "" {
		t.Fatalf("disconnected event = %+v", e)
	}
	for typ := client.EventMessage; typ <= client.EventSendHeld; typ++ {
		if eventNames[typ] == "" {
			t.Errorf("event type %d has no name", typ)
		}
	}
}

func TestErrorCode(t *testing.T) {
	for err, want := range map[error]string{
		fmt.Errorf("opening: %w", client.ErrInUse):                               codeInUse,
		fmt.Errorf("x: %w", &client.WrongPINError{Left: 3}):                      codeWrongPIN,
		&client.ServerError{Code: client.CodeBadActivationCode}:                  codeBadCode,
		fmt.Errorf("a: %w", &client.ServerError{Code: client.CodeUsernameTaken}): codeUsernameTaken,
		coded(codeLocked, "no device"):                                           codeLocked,
		readInviteErr("https://h:1"):                                             codeBadInvite,
		errors.New("other"):                                                      codeError,
	} {
		if got := errorCode(err); got != want {
			t.Errorf("errorCode(%v) = %s, want %s", err, got, want)
		}
	}
}

func readInviteErr(s string) error {
	_, err := readInvite(s)
	return err
}

// TestBrowserKDF: the browser's default PIN cost is lighter than the
// terminal's (so unlocking takes about a second in WebAssembly) but keeps
// 64 MiB and more than one pass, the floor web/README.md's arithmetic
// assumes.
func TestBrowserKDF(t *testing.T) {
	b, d := browserKDF, client.DefaultKDF
	if b.MemoryKiB < 64<<10 || b.Time < 2 || b.Threads != 1 {
		t.Errorf("browserKDF %+v is under 2 passes over 64 MiB in one lane", b)
	}
	if uint64(b.Time)*uint64(b.MemoryKiB) >= uint64(d.Time)*uint64(d.MemoryKiB) {
		t.Errorf("browserKDF %+v is not lighter than client.DefaultKDF %+v", b, d)
	}
}

// TestPhotoJSON: a photo with its thumbnail is an attachment with
// attachment.thumbnail; an older client's separate thumbnail names its
// photo in attachment.thumbnailOf.
func TestPhotoJSON(t *testing.T) {
	photo := &client.Content{Kind: client.KindPhoto, ID: client.MessageID{1}, Attachment: &client.AttachmentRef{BlobID: "b", MIME: "image/png", Name: "p.png", Size: 9,
		Thumbnail: &client.Thumbnail{MIME: "image/jpeg", Data: []byte{0xff, 0xd8, 0}}}}
	m := messageOf(&client.Message{Group: []byte{1}, Content: photo})
	if m.Kind != "attachment" || m.Attachment == nil || m.Attachment.Thumbnail == nil ||
		*m.Attachment.Thumbnail != (thumbnailJSON{MIME: "image/jpeg", Size: 3, Inline: true}) || m.Attachment.ThumbnailOf != "" {
		t.Fatalf("photo: %+v", m.Attachment)
	}
	photo.Attachment.Thumbnail = &client.Thumbnail{Ref: &client.AttachmentRef{BlobID: "t", MIME: "image/jpeg", Size: 70000}}
	if m := messageOf(&client.Message{Content: photo}); *m.Attachment.Thumbnail != (thumbnailJSON{MIME: "image/jpeg", Size: 70000}) {
		t.Fatalf("photo with its thumbnail's blob: %+v", m.Attachment.Thumbnail)
	}
	old := &client.Content{Kind: client.KindAttachment, Attachment: &client.AttachmentRef{BlobID: "t", MIME: "image/jpeg", Name: ".anom-thumb-" + photo.ID.String() + ".jpg"}}
	if m := messageOf(&client.Message{Content: old}); m.Attachment.ThumbnailOf != photo.ID.String() || m.Attachment.Thumbnail != nil {
		t.Fatalf("older thumbnail: %+v", m.Attachment)
	}
}
