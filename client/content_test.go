package client

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

func testRef() *AttachmentRef {
	r := &AttachmentRef{BlobID: "blob-0001", Token: "tok.abc-123", Size: 123456, MIME: "image/jpeg", Name: "photo 1.jpg"}
	for i := range r.Key {
		r.Key[i] = byte(i)
		r.SHA256[i] = byte(255 - i)
	}
	return r
}

var testSentAt = time.UnixMilli(1767225600123)

// testPhotoRef is a photo's reference with its thumbnail inline, or as a
// blob of its own.
func testPhotoRef(blob bool) *AttachmentRef {
	r := testRef()
	if blob {
		tr := testRef()
		tr.BlobID, tr.Size, tr.Name = "blob-0002", 70000, ""
		r.Thumbnail = &Thumbnail{Ref: tr}
	} else {
		r.Thumbnail = &Thumbnail{MIME: "image/jpeg", Data: []byte("\xff\xd8\xff\xe0 a small JPEG")}
	}
	return r
}

// sameRef compares two references field by field, thumbnails included.
func sameRef(a, w *AttachmentRef) bool {
	if a.BlobID != w.BlobID || a.Token != w.Token || a.Key != w.Key || a.SHA256 != w.SHA256 || a.Size != w.Size || a.MIME != w.MIME || a.Name != w.Name {
		return false
	}
	at, wt := a.Thumbnail, w.Thumbnail
	if at == nil || wt == nil {
		return at == wt
	}
	if (at.Ref == nil) != (wt.Ref == nil) {
		return false
	}
	if at.Ref != nil {
		return sameRef(at.Ref, wt.Ref)
	}
	return at.MIME == wt.MIME && bytes.Equal(at.Data, wt.Data)
}

func TestContentRoundTrip(t *testing.T) {
	id := MessageID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	tests := []struct {
		name string
		c    Content
	}{
		{"text", Content{Kind: KindText, ID: id, SentAt: testSentAt, Text: "hello, wörld 👋"}},
		{"empty text", Content{Kind: KindText, ID: id, SentAt: testSentAt}},
		{"longest text", Content{Kind: KindText, ID: id, SentAt: testSentAt, Text: strings.Repeat("a", MaxTextLen)}},
		{"attachment", Content{Kind: KindAttachment, ID: id, SentAt: testSentAt, Attachment: testRef()}},
		{"attachment without type or name", Content{Kind: KindAttachment, ID: id, SentAt: testSentAt, Attachment: &AttachmentRef{BlobID: "1"}}},
		{"voice", Content{Kind: KindVoice, ID: id, SentAt: testSentAt, Attachment: testRef(), Duration: 12345 * time.Millisecond}},
		{"delete", Content{Kind: KindDelete, ID: id, SentAt: testSentAt, Target: MessageID{0xff}}},
		{"timer", Content{Kind: KindTimer, ID: id, SentAt: testSentAt, Timer: 7 * 24 * time.Hour}},
		{"timer off", Content{Kind: KindTimer, ID: id, SentAt: time.UnixMilli(0)}},
		{"group name", Content{Kind: KindGroupName, ID: id, SentAt: testSentAt, Text: "the team ✓"}},
		{"longest group name", Content{Kind: KindGroupName, ID: id, SentAt: testSentAt, Text: strings.Repeat("g", MaxGroupNameLen)}},
		{"photo, thumbnail inline", Content{Kind: KindPhoto, ID: id, SentAt: testSentAt, Attachment: testPhotoRef(false)}},
		{"photo, thumbnail blob", Content{Kind: KindPhoto, ID: id, SentAt: testSentAt, Attachment: testPhotoRef(true)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := UnmarshalContent(b)
			if err != nil {
				t.Fatal(err)
			}
			b2, err := got.Marshal()
			if err != nil || !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs: %v", err)
			}
			if got.Kind != tt.c.Kind || got.ID != tt.c.ID || !got.SentAt.Equal(tt.c.SentAt) || got.Text != tt.c.Text ||
				got.Duration != tt.c.Duration || got.Target != tt.c.Target || got.Timer != tt.c.Timer {
				t.Fatalf("got %+v, want %+v", got, tt.c)
			}
			if (got.Attachment == nil) != (tt.c.Attachment == nil) {
				t.Fatal("attachment presence differs")
			}
			if a, w := got.Attachment, tt.c.Attachment; a != nil && !sameRef(a, w) {
				t.Fatalf("attachment %+v, want %+v", a, w)
			}
		})
	}
}

// TestContentGolden pins the encoding: other clients (the web client)
// must produce the same bytes.
func TestContentGolden(t *testing.T) {
	id := MessageID{0xaa}
	tests := []struct {
		c    Content
		want string
	}{
		{Content{Kind: KindText, ID: id, SentAt: time.UnixMilli(1), Text: "hi"},
			"0101" + "aa000000000000000000000000000000" + "0000000000000001" + "00000002" + "6869"},
		{Content{Kind: KindDelete, ID: id, SentAt: time.UnixMilli(2), Target: MessageID{0xbb}},
			"0104" + "aa000000000000000000000000000000" + "0000000000000002" + "bb000000000000000000000000000000"},
		{Content{Kind: KindTimer, ID: id, SentAt: time.UnixMilli(3), Timer: time.Minute},
			"0105" + "aa000000000000000000000000000000" + "0000000000000003" + "0000003c"},
		{Content{Kind: KindVoice, ID: id, SentAt: time.UnixMilli(4), Duration: time.Second, Attachment: &AttachmentRef{BlobID: "b", Token: "t", Size: 5, MIME: "audio/ogg", Name: "v"}},
			"0103" + "aa000000000000000000000000000000" + "0000000000000004" + "0162" + "0174" + strings.Repeat("00", 64) + "0000000000000005" +
				"09" + hex.EncodeToString([]byte("audio/ogg")) + "0001" + "76" + "000003e8"},
		{Content{Kind: KindPhoto, ID: id, SentAt: time.UnixMilli(5), Attachment: &AttachmentRef{BlobID: "b", Size: 9, MIME: "image/png", Name: "p",
			Thumbnail: &Thumbnail{MIME: "image/jpeg", Data: []byte{0xff, 0xd8}}}},
			"0107" + "aa000000000000000000000000000000" + "0000000000000005" + "0162" + "00" + strings.Repeat("00", 64) + "0000000000000009" +
				"09" + hex.EncodeToString([]byte("image/png")) + "0001" + "70" +
				"01" + "0a" + hex.EncodeToString([]byte("image/jpeg")) + "00000002" + "ffd8"},
	}
	for _, tt := range tests {
		b, err := tt.c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b); got != tt.want {
			t.Errorf("%v:\n got %s\nwant %s", tt.c.Kind, got, tt.want)
		}
	}
}

func TestContentInvalid(t *testing.T) {
	good, _ := (&Content{Kind: KindText, SentAt: testSentAt, Text: "hi"}).Marshal()
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	decodeTests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version 0", mut(func(b []byte) []byte { b[0] = 0; return b })},
		{"version 2", mut(func(b []byte) []byte { b[0] = 2; return b })},
		{"unknown kind", mut(func(b []byte) []byte { b[1] = 9; return b })},
		{"kind 0", mut(func(b []byte) []byte { b[1] = 0; return b })},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"text length too long", mut(func(b []byte) []byte { b[26] = 0xff; return b })},
		{"invalid UTF-8", mut(func(b []byte) []byte { b[len(b)-1] = 0xff; return b })},
		{"sent-at out of range", mut(func(b []byte) []byte { b[18] = 0x80; return b })},
	}
	for _, tt := range decodeTests {
		if _, err := UnmarshalContent(tt.b); !errors.Is(err, ErrBadContent) {
			t.Errorf("%s: %v, want ErrBadContent", tt.name, err)
		}
	}
	bad := func(f func(r *AttachmentRef)) *AttachmentRef { r := testRef(); f(r); return r }
	photo := func(f func(t *Thumbnail)) *AttachmentRef { r := testPhotoRef(false); f(r.Thumbnail); return r }
	blobPhoto := func(f func(r *AttachmentRef)) *AttachmentRef { r := testPhotoRef(true); f(r.Thumbnail.Ref); return r }
	encodeTests := []struct {
		name string
		c    Content
	}{
		{"unknown kind", Content{Kind: 77}},
		{"text too long", Content{Kind: KindText, Text: strings.Repeat("a", MaxTextLen+1)}},
		{"bad UTF-8", Content{Kind: KindText, Text: "\xff"}},
		{"sub-millisecond time", Content{Kind: KindText, SentAt: time.Unix(0, 1)}},
		{"before 1970", Content{Kind: KindText, SentAt: time.UnixMilli(-1)}},
		{"attachment missing", Content{Kind: KindAttachment}},
		{"empty blob id", Content{Kind: KindAttachment, Attachment: bad(func(r *AttachmentRef) { r.BlobID = "" })}},
		{"long blob id", Content{Kind: KindAttachment, Attachment: bad(func(r *AttachmentRef) { r.BlobID = strings.Repeat("b", 65) })}},
		{"blob id with space", Content{Kind: KindAttachment, Attachment: bad(func(r *AttachmentRef) { r.BlobID = "a b" })}},
		{"token with newline", Content{Kind: KindAttachment, Attachment: bad(func(r *AttachmentRef) { r.Token = "a\nb" })}},
		{"bad MIME", Content{Kind: KindAttachment, Attachment: bad(func(r *AttachmentRef) { r.MIME = "image" })}},
		{"MIME with space", Content{Kind: KindAttachment, Attachment: bad(func(r *AttachmentRef) { r.MIME = "image/ jpeg" })}},
		{"name with slash", Content{Kind: KindAttachment, Attachment: bad(func(r *AttachmentRef) { r.Name = "../etc/passwd" })}},
		{"name dot-dot", Content{Kind: KindAttachment, Attachment: bad(func(r *AttachmentRef) { r.Name = ".." })}},
		{"attachment with a thumbnail", Content{Kind: KindAttachment, Attachment: testPhotoRef(false)}},
		{"voice with a thumbnail", Content{Kind: KindVoice, Attachment: testPhotoRef(false)}},
		{"photo without a thumbnail", Content{Kind: KindPhoto, Attachment: testRef()}},
		{"photo, empty thumbnail", Content{Kind: KindPhoto, Attachment: photo(func(t *Thumbnail) { t.Data = nil })}},
		{"photo, thumbnail too big inline", Content{Kind: KindPhoto, Attachment: photo(func(t *Thumbnail) { t.Data = make([]byte, MaxInlineThumbnail+1) })}},
		{"photo, thumbnail not an image", Content{Kind: KindPhoto, Attachment: photo(func(t *Thumbnail) { t.MIME = "text/html" })}},
		{"photo, thumbnail inline and blob", Content{Kind: KindPhoto, Attachment: photo(func(t *Thumbnail) { t.Ref = testRef() })}},
		{"photo, thumbnail blob too big", Content{Kind: KindPhoto, Attachment: blobPhoto(func(r *AttachmentRef) { r.Size = MaxThumbnailSize + 1 })}},
		{"photo, thumbnail blob empty", Content{Kind: KindPhoto, Attachment: blobPhoto(func(r *AttachmentRef) { r.Size = 0 })}},
		{"photo, thumbnail blob not an image", Content{Kind: KindPhoto, Attachment: blobPhoto(func(r *AttachmentRef) { r.MIME = "application/pdf" })}},
		{"photo, thumbnail blob with a thumbnail", Content{Kind: KindPhoto, Attachment: blobPhoto(func(r *AttachmentRef) { r.Thumbnail = &Thumbnail{MIME: "image/jpeg", Data: []byte{1}} })}},
		{"photo, thumbnail blob with a bad id", Content{Kind: KindPhoto, Attachment: blobPhoto(func(r *AttachmentRef) { r.BlobID = "" })}},
		{"name with newline", Content{Kind: KindAttachment, Attachment: bad(func(r *AttachmentRef) { r.Name = "a\nb" })}},
		{"name too long", Content{Kind: KindAttachment, Attachment: bad(func(r *AttachmentRef) { r.Name = strings.Repeat("n", 256) })}},
		{"size too large", Content{Kind: KindAttachment, Attachment: bad(func(r *AttachmentRef) { r.Size = MaxAttachmentSize + 1 })}},
		{"negative duration", Content{Kind: KindVoice, Attachment: testRef(), Duration: -time.Second}},
		{"sub-millisecond duration", Content{Kind: KindVoice, Attachment: testRef(), Duration: time.Microsecond}},
		{"negative timer", Content{Kind: KindTimer, Timer: -time.Second}},
		{"fractional timer", Content{Kind: KindTimer, Timer: 1500 * time.Millisecond}},
		{"timer too long", Content{Kind: KindTimer, Timer: (MaxTimer + 1) * time.Second}},
		{"empty group name", Content{Kind: KindGroupName}},
		{"group name too long", Content{Kind: KindGroupName, Text: strings.Repeat("g", MaxGroupNameLen+1)}},
		{"group name with escape", Content{Kind: KindGroupName, Text: "a\x1b[2Jb"}},
		{"group name with newline", Content{Kind: KindGroupName, Text: "a\nb"}},
		{"group name with C1 control", Content{Kind: KindGroupName, Text: "a\u009bb"}},
		{"group name not UTF-8", Content{Kind: KindGroupName, Text: "a\xffb"}},
	}
	for _, tt := range encodeTests {
		if _, err := tt.c.Marshal(); !errors.Is(err, ErrBadContent) {
			t.Errorf("%s: %v, want ErrBadContent", tt.name, err)
		}
	}
}

// TestPhotoContentInvalid: a photo's thumbnail decodes strictly.
func TestPhotoContentInvalid(t *testing.T) {
	good, err := (&Content{Kind: KindPhoto, SentAt: testSentAt, Attachment: testPhotoRef(false)}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalContent(good); err != nil {
		t.Fatal(err)
	}
	// The thumbnail is the encoding's tail: form, MIME, length, data.
	data := testPhotoRef(false).Thumbnail.Data
	tail := len(good) - len(data) - 4 - 1 - len("image/jpeg") - 1
	if good[tail] != thumbInline {
		t.Fatalf("thumbnail form at %d is %d", tail, good[tail])
	}
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tt := range []struct {
		name string
		b    []byte
	}{
		{"form 0", mut(func(b []byte) []byte { b[tail] = 0; return b })},
		{"form 3", mut(func(b []byte) []byte { b[tail] = 3; return b })},
		{"no thumbnail", good[:tail]},
		{"truncated thumbnail", good[:len(good)-1]},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"length over the limit", mut(func(b []byte) []byte { b[len(b)-len(data)-4] = 0x7f; return b })},
		{"not an image", mut(func(b []byte) []byte { copy(b[tail+2:], "text/jpeg"); return b })},
		{"a file with a thumbnail", mut(func(b []byte) []byte { b[1] = byte(KindAttachment); return b })},
	} {
		if _, err := UnmarshalContent(tt.b); !errors.Is(err, ErrBadContent) {
			t.Errorf("%s: %v, want ErrBadContent", tt.name, err)
		}
	}
}

// TestLegacyThumbnail: the older two-message form's thumbnail is told by
// its name and type, and names the photo's message.
func TestLegacyThumbnail(t *testing.T) {
	photo := MessageID{0xab, 0xcd}
	thumb := &Content{Kind: KindAttachment, Attachment: &AttachmentRef{BlobID: "b", MIME: "image/jpeg", Name: ".anom-thumb-" + photo.String() + ".jpg"}}
	if id, ok := LegacyThumbnailFor(thumb); !ok || id != photo {
		t.Fatalf("LegacyThumbnailFor = %v, %v; want %v", id, ok, photo)
	}
	for _, c := range []*Content{
		nil,
		{Kind: KindText, Text: ".anom-thumb-" + photo.String() + ".jpg"},
		{Kind: KindAttachment, Attachment: &AttachmentRef{BlobID: "b", MIME: "image/png", Name: thumb.Attachment.Name}},
		{Kind: KindAttachment, Attachment: &AttachmentRef{BlobID: "b", MIME: "image/jpeg", Name: "photo.jpg"}},
		{Kind: KindAttachment, Attachment: &AttachmentRef{BlobID: "b", MIME: "image/jpeg", Name: ".anom-thumb-abcd.jpg"}},
		{Kind: KindPhoto, Attachment: testPhotoRef(false)},
	} {
		if _, ok := LegacyThumbnailFor(c); ok {
			t.Errorf("LegacyThumbnailFor(%+v) = true", c)
		}
	}
}

func FuzzUnmarshalContent(f *testing.F) {
	for _, c := range []Content{
		{Kind: KindText, SentAt: testSentAt, Text: "hello"},
		{Kind: KindAttachment, SentAt: testSentAt, Attachment: testRef()},
		{Kind: KindVoice, SentAt: testSentAt, Attachment: testRef(), Duration: time.Second},
		{Kind: KindDelete, SentAt: testSentAt, Target: MessageID{1}},
		{Kind: KindTimer, SentAt: testSentAt, Timer: time.Hour},
		{Kind: KindGroupName, SentAt: testSentAt, Text: "team"},
		{Kind: KindPhoto, SentAt: testSentAt, Attachment: testPhotoRef(false)},
		{Kind: KindPhoto, SentAt: testSentAt, Attachment: testPhotoRef(true)},
	} {
		b, err := c.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := UnmarshalContent(b)
		if err != nil {
			if !errors.Is(err, ErrBadContent) {
				t.Fatalf("error %v is not ErrBadContent", err)
			}
			return
		}
		b2, err := c.Marshal()
		if err != nil {
			t.Fatalf("decoded content does not encode: %v", err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("not canonical:\n in %x\nout %x", b, b2)
		}
	})
}

func BenchmarkContent(b *testing.B) {
	c := &Content{Kind: KindText, SentAt: testSentAt, Text: strings.Repeat("x", 200)}
	for b.Loop() {
		enc, _ := c.Marshal()
		if _, err := UnmarshalContent(enc); err != nil {
			b.Fatal(err)
		}
	}
}
