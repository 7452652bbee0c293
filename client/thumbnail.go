package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// A photo's thumbnail travels in the photo's own message (KindPhoto): a
// small image inline in the encrypted content, or, when larger, a blob of
// its own under its own key, referenced from the content. So one message
// is one photo on every client, and a client that does not show images
// (the terminal) lists it once.

// MaxInlineThumbnail is the largest thumbnail carried inline in the
// message (SendPhoto uploads a larger one as a blob of its own).
const MaxInlineThumbnail = 48 << 10

// MaxThumbnailSize is the largest thumbnail a photo may reference as a
// blob: receivers fetch it without asking, so it stays small.
const MaxThumbnailSize = 1 << 20

// Thumbnail forms in the content encoding.
const (
	thumbInline = 1
	thumbBlob   = 2
)

// Thumbnail is a photo's preview image: Data inline (with its MIME type),
// or Ref to a blob of its own. Exactly one of them is set.
type Thumbnail struct {
	// MIME is the inline image's type, an image/ type.
	MIME string
	// Data is the inline image, 1 to MaxInlineThumbnail bytes.
	Data []byte
	// Ref is the blob holding the image (its MIME an image/ type, at
	// most MaxThumbnailSize bytes, without a thumbnail of its own).
	Ref *AttachmentRef
}

func appendThumbnail(b []byte, t *Thumbnail) []byte {
	if t.Ref != nil {
		b = append(b, thumbBlob)
		return appendRef(b, t.Ref)
	}
	b = append(b, thumbInline)
	b = appendStr8(b, t.MIME)
	return appendVec32(b, t.Data)
}

func (d *decoder) thumbnail() *Thumbnail {
	t := &Thumbnail{}
	switch form := d.u8(); {
	case d.err != nil:
	case form == thumbInline:
		t.MIME = d.str8()
		n := d.u32()
		if d.err == nil && n > MaxInlineThumbnail {
			d.fail("inline thumbnail of %d bytes", n)
			return nil
		}
		t.Data = bytes.Clone(d.bytes(int(n)))
	case form == thumbBlob:
		t.Ref = d.ref()
	default:
		d.fail("thumbnail form %d", form)
	}
	return t
}

func imageMIME(s string) bool { return strings.HasPrefix(s, "image/") && validMIME(s) }

func (t *Thumbnail) check() error {
	if t.Ref != nil {
		if t.Data != nil || t.MIME != "" {
			return badContent("a thumbnail is inline or a blob, not both")
		}
		if err := t.Ref.check(); err != nil {
			return err
		}
		if t.Ref.Thumbnail != nil {
			return badContent("a thumbnail with a thumbnail")
		}
		if !imageMIME(t.Ref.MIME) {
			return badContent("thumbnail MIME type %q is not an image's", t.Ref.MIME)
		}
		if t.Ref.Size == 0 || t.Ref.Size > MaxThumbnailSize {
			return badContent("thumbnail of %d bytes", t.Ref.Size)
		}
		return nil
	}
	if len(t.Data) == 0 || len(t.Data) > MaxInlineThumbnail {
		return badContent("inline thumbnail of %d bytes", len(t.Data))
	}
	if len(t.MIME) > MaxMIMELen || !imageMIME(t.MIME) {
		return badContent("thumbnail MIME type %q is not an image's", t.MIME)
	}
	return nil
}

// Readable reports whether c is a message a person reads (a text, file,
// photo or voice note), as opposed to one that changes the chat (a
// deletion, a timer, a group name).
func (c *Content) Readable() bool {
	switch c.Kind {
	case KindText, KindAttachment, KindVoice, KindPhoto:
		return true
	}
	return false
}

// SendPhoto encrypts and uploads a photo of size bytes from r and sends
// it with its thumbnail (an image of type thumbMIME made by the caller) in
// one message: the thumbnail inline when it is at most MaxInlineThumbnail
// bytes, else uploaded as a blob of its own under its own key. It returns
// the content sent.
func (c *Client) SendPhoto(ctx context.Context, groupID []byte, r io.Reader, size int64, mime, name string, thumb []byte, thumbMIME string) (*Content, error) {
	t := &Thumbnail{MIME: thumbMIME, Data: thumb}
	if len(thumb) > MaxInlineThumbnail {
		t = &Thumbnail{Ref: &AttachmentRef{BlobID: "-", MIME: thumbMIME, Size: uint64(len(thumb))}}
	}
	// Check what can be before anything is uploaded.
	probe := &Content{Kind: KindPhoto, SentAt: time.UnixMilli(0), Attachment: &AttachmentRef{BlobID: "-", MIME: mime, Name: name, Thumbnail: t}}
	if err := probe.check(); err != nil {
		return nil, fmt.Errorf("sending photo: %w", err)
	}
	if t.Ref != nil {
		ref, err := c.upload(ctx, bytes.NewReader(thumb), int64(len(thumb)))
		if err != nil {
			return nil, fmt.Errorf("sending photo's thumbnail: %w", err)
		}
		ref.MIME = thumbMIME
		t.Ref = ref
	}
	ref, err := c.upload(ctx, r, size)
	if err != nil {
		return nil, err
	}
	ref.MIME, ref.Name, ref.Thumbnail = mime, name, t
	content := &Content{Kind: KindPhoto, Attachment: ref}
	if err := c.Send(ctx, groupID, content); err != nil {
		return nil, err
	}
	return content, nil
}

// FetchThumbnail writes the thumbnail of a photo's reference to w: the
// inline image, or its blob downloaded, checked and decrypted (see
// FetchAttachment: on error, discard what was written).
func (c *Client) FetchThumbnail(ctx context.Context, ref *AttachmentRef, w io.Writer) error {
	t := ref.Thumbnail
	if t == nil {
		return fmt.Errorf("fetching thumbnail: %w: the attachment has none", ErrNotFound)
	}
	if t.Ref == nil {
		if _, err := w.Write(t.Data); err != nil {
			return fmt.Errorf("fetching thumbnail: writing: %w", err)
		}
		return nil
	}
	return c.FetchAttachment(ctx, t.Ref, w)
}

// legacyThumbName is the file name under which clients before KindPhoto
// sent a photo's thumbnail, as a second attachment after the photo's
// message: ".anom-thumb-" + hex message ID + ".jpg".
var legacyThumbName = regexp.MustCompile(`^\.anom-thumb-([0-9a-f]{32})\.jpg$`)

// LegacyThumbnailFor recognises a thumbnail sent in the older two-message
// form (a JPEG attachment named after the photo's message) and returns
// the ID of the photo it belongs to. Clients show it with that photo, not
// as a file of its own.
func LegacyThumbnailFor(c *Content) (MessageID, bool) {
	if c == nil || c.Kind != KindAttachment || c.Attachment == nil || c.Attachment.MIME != "image/jpeg" {
		return MessageID{}, false
	}
	m := legacyThumbName.FindStringSubmatch(c.Attachment.Name)
	if m == nil {
		return MessageID{}, false
	}
	var id MessageID
	if _, err := hex.Decode(id[:], []byte(m[1])); err != nil {
		return MessageID{}, false
	}
	return id, true
}
