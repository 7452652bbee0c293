package client

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
)

func TestAttachmentRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 100, AttachmentChunk - 1, AttachmentChunk, AttachmentChunk + 1, 3 * AttachmentChunk, 3*AttachmentChunk + 17}
	for _, n := range sizes {
		pt := make([]byte, n)
		rand.Read(pt)
		var blob bytes.Buffer
		ref, err := SealAttachment(&blob, bytes.NewReader(pt), nil)
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		if uint64(blob.Len()) != SealedSize(uint64(n)) {
			t.Errorf("size %d: blob is %d bytes, SealedSize says %d", n, blob.Len(), SealedSize(uint64(n)))
		}
		if ref.Size != uint64(n) || ref.SHA256 != sha256.Sum256(blob.Bytes()) {
			t.Errorf("size %d: ref %+v", n, ref)
		}
		var out bytes.Buffer
		if err := OpenAttachment(&out, bytes.NewReader(blob.Bytes()), ref); err != nil {
			t.Fatalf("size %d: open: %v", n, err)
		}
		if !bytes.Equal(out.Bytes(), pt) {
			t.Fatalf("size %d: plaintext differs", n)
		}
	}
}

// oneByteReader returns a byte per read, to check the chunking does not
// depend on how the source splits its reads.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func TestAttachmentShortReads(t *testing.T) {
	pt := make([]byte, AttachmentChunk+5)
	rand.Read(pt)
	var blob bytes.Buffer
	ref, err := SealAttachment(&blob, oneByteReader{bytes.NewReader(pt)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := OpenAttachment(&out, oneByteReader{bytes.NewReader(blob.Bytes())}, ref); err != nil || !bytes.Equal(out.Bytes(), pt) {
		t.Fatalf("open: %v", err)
	}
}

func TestAttachmentTamper(t *testing.T) {
	pt := make([]byte, 2*AttachmentChunk+100)
	rand.Read(pt)
	var buf bytes.Buffer
	ref, err := SealAttachment(&buf, bytes.NewReader(pt), nil)
	if err != nil {
		t.Fatal(err)
	}
	blob := buf.Bytes()
	const full = AttachmentChunk + 16
	other := *ref
	other.Key[0] ^= 1
	wrongSize := *ref
	wrongSize.Size--
	biggerSize := *ref
	biggerSize.Size++
	wrongHash := *ref
	wrongHash.SHA256[0] ^= 1
	flip := func(i int) []byte { b := bytes.Clone(blob); b[i] ^= 1; return b }
	tests := []struct {
		name string
		blob []byte
		ref  *AttachmentRef
	}{
		{"wrong key", blob, &other},
		{"smaller size", blob, &wrongSize},
		{"bigger size", blob, &biggerSize},
		{"wrong hash", blob, &wrongHash},
		{"bad magic", flip(0), ref},
		{"flipped bit in chunk 0", flip(10), ref},
		{"flipped bit in last chunk", flip(len(blob) - 1), ref},
		{"truncated to whole chunks", blob[:4+2*full], ref},
		{"truncated mid-chunk", blob[:4+full+10], ref},
		{"extended", append(bytes.Clone(blob), 0), ref},
		{"chunks swapped", append(append(append([]byte(attachMagic), blob[4+full:4+2*full]...), blob[4:4+full]...), blob[4+2*full:]...), ref},
		{"empty", nil, ref},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := OpenAttachment(io.Discard, bytes.NewReader(tt.blob), tt.ref)
			if !errors.Is(err, ErrAttachment) {
				t.Fatalf("got %v, want ErrAttachment", err)
			}
		})
	}
}

func FuzzOpenAttachment(f *testing.F) {
	var buf bytes.Buffer
	key := bytes.Repeat([]byte{1}, 64)
	ref, err := SealAttachment(&buf, bytes.NewReader([]byte("a small file")), bytes.NewReader(key))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(attachMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		var out bytes.Buffer
		err := OpenAttachment(&out, bytes.NewReader(b), ref)
		if err == nil && out.String() != "a small file" {
			t.Fatal("a different blob opened")
		}
		if err != nil && !errors.Is(err, ErrAttachment) {
			t.Fatalf("error %v is not ErrAttachment", err)
		}
	})
}

func BenchmarkSealAttachment(b *testing.B) {
	pt := make([]byte, 8<<20)
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		if _, err := SealAttachment(io.Discard, bytes.NewReader(pt), nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenAttachment(b *testing.B) {
	pt := make([]byte, 8<<20)
	var blob bytes.Buffer
	ref, _ := SealAttachment(&blob, bytes.NewReader(pt), nil)
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		if err := OpenAttachment(io.Discard, bytes.NewReader(blob.Bytes()), ref); err != nil {
			b.Fatal(err)
		}
	}
}
