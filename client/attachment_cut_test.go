package client

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
)

// cutReader gives n bytes of r, then fails as an HTTP body whose
// connection closed early.
type cutReader struct {
	r io.Reader
	n int
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if len(p) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

// A download cut off on the way is told as an incomplete transfer, not as
// a chunk that does not authenticate; a changed byte still is one.
func TestAttachmentCutOffIsNotTampering(t *testing.T) {
	pt := make([]byte, 2*AttachmentChunk+100)
	rand.Read(pt)
	var buf bytes.Buffer
	ref, err := SealAttachment(&buf, bytes.NewReader(pt), nil)
	if err != nil {
		t.Fatal(err)
	}
	blob := buf.Bytes()
	const full = AttachmentChunk + 16
	for _, tt := range []struct {
		name string
		src  io.Reader
	}{
		{"nothing", bytes.NewReader(nil)},
		{"in the header", bytes.NewReader(blob[:2])},
		{"mid-chunk", bytes.NewReader(blob[:4+full+10])},
		{"at a chunk boundary", bytes.NewReader(blob[:4+2*full])},
		{"connection closed mid-chunk", &cutReader{r: bytes.NewReader(blob), n: 4 + full/2}},
		{"one byte short", bytes.NewReader(blob[:len(blob)-1])},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := OpenAttachment(io.Discard, tt.src, ref)
			if !errors.Is(err, ErrIncomplete) || !errors.Is(err, ErrAttachment) {
				t.Fatalf("got %v, want ErrIncomplete", err)
			}
			if strings.Contains(err.Error(), "authenticate") || !strings.Contains(err.Error(), "cut off") {
				t.Fatalf("message %q", err)
			}
		})
	}
	flipped := bytes.Clone(blob)
	flipped[4+full+10] ^= 1
	err = OpenAttachment(io.Discard, bytes.NewReader(flipped), ref)
	if errors.Is(err, ErrIncomplete) || !errors.Is(err, ErrAttachment) || !strings.Contains(err.Error(), "chunk 1 does not authenticate") {
		t.Fatalf("a changed byte: %v", err)
	}
}
