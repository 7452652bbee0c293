//go:build js

package main

import (
	"bytes"
	"syscall/js"
	"time"

	"anom/client"
)

// maxWebAttachment bounds a file the page hands over or gets back: it is
// held in memory (WebAssembly's and the page's) while it is sealed or
// opened.
const maxWebAttachment = 256 << 20

// sendFile(groupId, bytes, mime, name, options?) encrypts a file on the
// device, uploads it and sends its reference: a photo or file, or with
// options.durationMs a voice note. bytes is a Uint8Array. It needs the
// connection (no outbox for files).
func (a *app) sendFile(args []js.Value) (any, error) {
	c, _, err := a.activated()
	if err != nil {
		return nil, err
	}
	gid, err := argGroupID(args, 0)
	if err != nil {
		return nil, err
	}
	if len(args) < 2 || !args[1].InstanceOf(js.Global().Get("Uint8Array")) {
		return nil, coded(codeBadArgument, "bytes: want a Uint8Array")
	}
	if n := args[1].Length(); n > maxWebAttachment {
		return nil, coded(codeBadArgument, "bytes: %d bytes, at most %d", n, maxWebAttachment)
	}
	mime, err := argString(args, 2, "mime")
	if err != nil {
		return nil, err
	}
	name, err := argString(args, 3, "name")
	if err != nil {
		return nil, err
	}
	o, err := argObject(args, 4, "options")
	if err != nil {
		return nil, err
	}
	ms, err := optInt(o, "durationMs", 0)
	if err != nil {
		return nil, err
	}
	var thumb []byte
	thumbMIME := "image/jpeg"
	if !o.IsUndefined() && !o.Get("thumbnail").IsUndefined() && !o.Get("thumbnail").IsNull() {
		t := o.Get("thumbnail")
		if !t.InstanceOf(js.Global().Get("Uint8Array")) {
			return nil, coded(codeBadArgument, "options.thumbnail: want a Uint8Array")
		}
		if t.Length() > client.MaxThumbnailSize {
			return nil, coded(codeBadArgument, "options.thumbnail: %d bytes, at most %d", t.Length(), client.MaxThumbnailSize)
		}
		if ms > 0 {
			return nil, coded(codeBadArgument, "options.thumbnail: a voice note has no thumbnail")
		}
		thumb = make([]byte, t.Length())
		js.CopyBytesToGo(thumb, t)
		if thumbMIME, err = optString(o, "thumbnailMime", thumbMIME); err != nil {
			return nil, err
		}
	}
	data := make([]byte, args[1].Length())
	js.CopyBytesToGo(data, args[1])
	ctx, cancel := opContext()
	defer cancel()
	var content *client.Content
	if thumb != nil {
		content, err = c.SendPhoto(ctx, gid, bytes.NewReader(data), int64(len(data)), mime, name, thumb, thumbMIME)
	} else {
		content, err = c.SendAttachment(ctx, gid, bytes.NewReader(data), int64(len(data)), mime, name, time.Duration(ms)*time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"id": content.ID.String(), "sentAt": content.SentAt.UnixMilli()}, nil
}

// fetchAttachment(groupId, messageId) downloads, checks and decrypts the
// file of an attachment or voice message of the chat's history and
// resolves to its bytes (a Uint8Array).
func (a *app) fetchAttachment(args []js.Value) (any, error) {
	c, _, err := a.activated()
	if err != nil {
		return nil, err
	}
	gid, err := argGroupID(args, 0)
	if err != nil {
		return nil, err
	}
	id, err := argString(args, 1, "messageId")
	if err != nil {
		return nil, err
	}
	ref, err := attachmentOf(c, gid, id)
	if err != nil {
		return nil, err
	}
	if ref.Size > maxWebAttachment {
		return nil, coded(codeBadArgument, "the file has %d bytes; at most %d open in the browser", ref.Size, maxWebAttachment)
	}
	var buf bytes.Buffer
	ctx, cancel := opContext()
	defer cancel()
	if err := c.FetchAttachment(ctx, ref, &buf); err != nil {
		return nil, err
	}
	u := js.Global().Get("Uint8Array").New(buf.Len())
	js.CopyBytesToJS(u, buf.Bytes())
	return u, nil
}

// attachmentOf finds the reference of message id's attachment in a chat's
// history.
func attachmentOf(c *client.Client, gid []byte, id string) (*client.AttachmentRef, error) {
	hist, err := c.History(gid)
	if err != nil {
		return nil, err
	}
	for _, m := range hist {
		if m.Content != nil && m.Content.ID.String() == id && m.Content.Attachment != nil {
			return m.Content.Attachment, nil
		}
	}
	return nil, coded(codeNotFound, "no attachment %s in this chat", id)
}

// fetchThumbnail(groupId, messageId) resolves to the thumbnail (a
// Uint8Array) of a photo sent with it in the same message: the inline
// image, or its own blob downloaded, checked and decrypted.
func (a *app) fetchThumbnail(args []js.Value) (any, error) {
	c, _, err := a.activated()
	if err != nil {
		return nil, err
	}
	gid, err := argGroupID(args, 0)
	if err != nil {
		return nil, err
	}
	id, err := argString(args, 1, "messageId")
	if err != nil {
		return nil, err
	}
	ref, err := attachmentOf(c, gid, id)
	if err != nil {
		return nil, err
	}
	if ref.Thumbnail == nil {
		return nil, coded(codeNotFound, "message %s has no thumbnail", id)
	}
	var buf bytes.Buffer
	ctx, cancel := opContext()
	defer cancel()
	if err := c.FetchThumbnail(ctx, ref, &buf); err != nil {
		return nil, err
	}
	u := js.Global().Get("Uint8Array").New(buf.Len())
	js.CopyBytesToJS(u, buf.Bytes())
	return u, nil
}
