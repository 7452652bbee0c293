package client

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Application content: the small versioned message inside the MLS
// ciphertext. Its encoding is fixed and strict (big-endian, length-
// prefixed, no trailing bytes, canonical), so that every member (and the
// escrow record derived from the plaintext) sees the same bytes:
//
//	u8  version (1)
//	u8  kind
//	[16] message id
//	u64 sent-at, Unix milliseconds
//	kind-specific body:
//	  text:       u32 length, UTF-8 text
//	  attachment: ref
//	  voice:      ref, u32 duration in milliseconds
//	  delete:     [16] id of the deleted message
//	  timer:      u32 seconds (0 turns disappearing messages off)
//	  group name: u8 length, UTF-8 name (see MaxGroupNameLen)
//	  photo:      ref, thumbnail
//	ref: u8 len, blob id; u8 len, blob read token; [32] key;
//	     [32] SHA-256; u64 size; u8 len, MIME type; u16 len, file name
//	thumbnail: u8 form, then
//	  1 (inline): u8 len, MIME type; u32 len, image (see MaxInlineThumbnail)
//	  2 (blob):   ref (a blob of its own, under its own key)

// ContentVersion is the version of the content encoding this package
// writes and reads.
const ContentVersion = 1

// Kind is what a Content carries.
type Kind uint8

// Kinds of content.
const (
	KindText       Kind = 1
	KindAttachment Kind = 2
	KindVoice      Kind = 3
	KindDelete     Kind = 4
	KindTimer      Kind = 5
	// KindGroupName names the group for every member (Text); members
	// added later are sent it again (Client.SetGroupName).
	KindGroupName Kind = 6
	// KindPhoto is a photo (Attachment) with its thumbnail, made on the
	// sender's device, in the same message (Attachment.Thumbnail): one
	// message is one photo. A photo without a thumbnail is a
	// KindAttachment.
	KindPhoto Kind = 7
)

func (k Kind) String() string {
	switch k {
	case KindText:
		return "text"
	case KindAttachment:
		return "attachment"
	case KindVoice:
		return "voice"
	case KindDelete:
		return "delete"
	case KindTimer:
		return "timer"
	case KindGroupName:
		return "group name"
	case KindPhoto:
		return "photo"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Limits of the content encoding.
const (
	MaxTextLen     = 64 << 10
	MaxBlobIDLen   = 64
	MaxTokenLen    = 255
	MaxMIMELen     = 127
	MaxFileNameLen = 255
	// MaxTimer is the longest disappearing-message timer: one year.
	MaxTimer = 365 * 24 * 60 * 60
	// MaxGroupNameLen is the longest group name, in bytes.
	MaxGroupNameLen = 64
)

// MessageID names a message within its group; the sender picks it at
// random.
type MessageID [16]byte

func (id MessageID) String() string { return fmt.Sprintf("%x", id[:]) }

// AttachmentRef is what a receiver needs to fetch, check and decrypt an
// attachment: the server's blob ID and read capability, the file key, the
// SHA-256 of the encrypted blob, the plaintext size, a MIME type and a
// file name; and for a photo (KindPhoto) its thumbnail.
type AttachmentRef struct {
	BlobID string
	Token  string
	Key    [32]byte
	SHA256 [32]byte
	Size   uint64
	MIME   string
	Name   string
	// Thumbnail is set in a KindPhoto's reference, and only there.
	Thumbnail *Thumbnail
}

// Content is one application message.
type Content struct {
	Kind   Kind
	ID     MessageID
	SentAt time.Time // kept to the millisecond
	// Text is set for KindText, and is the name of a KindGroupName.
	Text string
	// Attachment is set for KindAttachment, KindVoice and KindPhoto.
	Attachment *AttachmentRef
	// Duration is the length of a voice note.
	Duration time.Duration // kept to the millisecond
	// Target is the message a KindDelete deletes.
	Target MessageID
	// Timer is the new disappearing-message timer of a KindTimer; 0 off.
	Timer time.Duration // whole seconds
}

// Marshal encodes c; it fails if c would not decode to itself.
func (c *Content) Marshal() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 64+len(c.Text))
	b = append(b, ContentVersion, byte(c.Kind))
	b = append(b, c.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.SentAt.UnixMilli()))
	switch c.Kind {
	case KindText:
		b = binary.BigEndian.AppendUint32(b, uint32(len(c.Text)))
		b = append(b, c.Text...)
	case KindAttachment:
		b = appendRef(b, c.Attachment)
	case KindPhoto:
		b = appendRef(b, c.Attachment)
		b = appendThumbnail(b, c.Attachment.Thumbnail)
	case KindVoice:
		b = appendRef(b, c.Attachment)
		b = binary.BigEndian.AppendUint32(b, uint32(c.Duration.Milliseconds()))
	case KindDelete:
		b = append(b, c.Target[:]...)
	case KindTimer:
		b = binary.BigEndian.AppendUint32(b, uint32(c.Timer/time.Second))
	case KindGroupName:
		b = append(b, byte(len(c.Text)))
		b = append(b, c.Text...)
	}
	return b, nil
}

func appendRef(b []byte, r *AttachmentRef) []byte {
	b = append(b, byte(len(r.BlobID)))
	b = append(b, r.BlobID...)
	b = append(b, byte(len(r.Token)))
	b = append(b, r.Token...)
	b = append(b, r.Key[:]...)
	b = append(b, r.SHA256[:]...)
	b = binary.BigEndian.AppendUint64(b, r.Size)
	b = append(b, byte(len(r.MIME)))
	b = append(b, r.MIME...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Name)))
	return append(b, r.Name...)
}

func badContent(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadContent, fmt.Sprintf(format, args...))
}

// check validates what Marshal would write.
func (c *Content) check() error {
	if ms := c.SentAt.UnixMilli(); ms < 0 || !c.SentAt.Equal(time.UnixMilli(ms)) {
		return badContent("sent-at %v is not a whole millisecond after 1970", c.SentAt)
	}
	switch c.Kind {
	case KindText:
		if len(c.Text) > MaxTextLen {
			return badContent("text of %d bytes", len(c.Text))
		}
		if !utf8.ValidString(c.Text) {
			return badContent("text is not UTF-8")
		}
	case KindAttachment, KindVoice, KindPhoto:
		if c.Attachment == nil {
			return badContent("%v without an attachment", c.Kind)
		}
		if err := c.Attachment.check(); err != nil {
			return err
		}
		if (c.Attachment.Thumbnail != nil) != (c.Kind == KindPhoto) {
			return badContent("a thumbnail belongs to a photo, and a photo has one")
		}
		if c.Kind == KindPhoto {
			if err := c.Attachment.Thumbnail.check(); err != nil {
				return err
			}
		}
		if c.Kind == KindVoice {
			ms := c.Duration.Milliseconds()
			if c.Duration < 0 || ms > 1<<32-1 || c.Duration != time.Duration(ms)*time.Millisecond {
				return badContent("voice duration %v", c.Duration)
			}
		}
	case KindDelete:
	case KindTimer:
		if c.Timer < 0 || c.Timer > MaxTimer*time.Second || c.Timer%time.Second != 0 {
			return badContent("timer %v", c.Timer)
		}
	case KindGroupName:
		if err := CheckGroupName(c.Text); err != nil {
			return err
		}
	default:
		return badContent("unknown kind %d", c.Kind)
	}
	return nil
}

func (r *AttachmentRef) check() error {
	if len(r.BlobID) == 0 || len(r.BlobID) > MaxBlobIDLen || !printable(r.BlobID) {
		return badContent("blob id %q", r.BlobID)
	}
	if len(r.Token) > MaxTokenLen || !printable(r.Token) {
		return badContent("blob token is not printable ASCII")
	}
	if len(r.MIME) > MaxMIMELen || !validMIME(r.MIME) {
		return badContent("MIME type %q", r.MIME)
	}
	if len(r.Name) > MaxFileNameLen || !validFileName(r.Name) {
		return badContent("file name %q", r.Name)
	}
	if r.Size > MaxAttachmentSize {
		return badContent("attachment of %d bytes", r.Size)
	}
	return nil
}

// printable reports whether s is ASCII without spaces or controls (blob
// IDs and tokens go into URLs and headers).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// validMIME accepts an empty type or type/subtype in printable ASCII
// without spaces.
func validMIME(s string) bool {
	if s == "" {
		return true
	}
	if !printable(s) {
		return false
	}
	i := strings.IndexByte(s, '/')
	return i > 0 && i < len(s)-1
}

// validFileName accepts UTF-8 names without path separators or control
// characters; the name is shown, never used as a path as is.
func validFileName(s string) bool {
	if !utf8.ValidString(s) || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return false
		}
	}
	return true
}

// UnmarshalContent decodes content strictly: an unknown version or kind,
// a field out of range or trailing bytes is an ErrBadContent.
func UnmarshalContent(b []byte) (*Content, error) {
	d := decoder{b: b, bad: ErrBadContent}
	if v := d.u8(); d.err == nil && v != ContentVersion {
		return nil, badContent("version %d", v)
	}
	c := &Content{Kind: Kind(d.u8())}
	copy(c.ID[:], d.bytes(16))
	ms := d.u64()
	if d.err == nil && ms > 1<<62 {
		return nil, badContent("sent-at %d", ms)
	}
	c.SentAt = time.UnixMilli(int64(ms))
	switch c.Kind {
	case KindText:
		n := d.u32()
		if d.err == nil && n > MaxTextLen {
			return nil, badContent("text of %d bytes", n)
		}
		c.Text = string(d.bytes(int(n)))
	case KindAttachment:
		c.Attachment = d.ref()
	case KindPhoto:
		c.Attachment = d.ref()
		c.Attachment.Thumbnail = d.thumbnail()
	case KindVoice:
		c.Attachment = d.ref()
		c.Duration = time.Duration(d.u32()) * time.Millisecond
	case KindDelete:
		copy(c.Target[:], d.bytes(16))
	case KindTimer:
		c.Timer = time.Duration(d.u32()) * time.Second
	case KindGroupName:
		c.Text = string(d.bytes(int(d.u8())))
	default:
		if d.err == nil {
			return nil, badContent("unknown kind %d", c.Kind)
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, badContent("%d trailing bytes", len(d.b))
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

func (d *decoder) ref() *AttachmentRef {
	r := &AttachmentRef{}
	r.BlobID = string(d.bytes(int(d.u8())))
	r.Token = string(d.bytes(int(d.u8())))
	copy(r.Key[:], d.bytes(32))
	copy(r.SHA256[:], d.bytes(32))
	r.Size = d.u64()
	r.MIME = string(d.bytes(int(d.u8())))
	r.Name = string(d.bytes(int(d.u16())))
	return r
}

// CheckGroupName reports whether name may name a group: 1 to
// MaxGroupNameLen bytes of UTF-8 without control characters (a name is
// shown on every member's screen). The error matches ErrBadContent.
func CheckGroupName(name string) error {
	if name == "" || len(name) > MaxGroupNameLen {
		return badContent("a group name is 1 to %d bytes", MaxGroupNameLen)
	}
	if !utf8.ValidString(name) {
		return badContent("group name is not UTF-8")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return badContent("group name holds the control character %U", r)
		}
	}
	return nil
}
