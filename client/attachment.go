package client

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Attachments are encrypted on the device under a fresh random key with
// ChaCha20-Poly1305 in chunks, so files of any size stream through a fixed
// buffer:
//
//	"ANA1" || chunk_0 || ... || chunk_n
//	chunk_i = seal(key, nonce_i, plaintext_i), plaintext_i of AttachmentChunk
//	          bytes except the last (which may be shorter, and is empty only
//	          when the file is)
//	nonce_i = 88-bit big-endian i || 0x01 for the last chunk, 0x00 otherwise
//
// The last-chunk flag makes truncation and extension fail; the counter
// makes reordering fail. The reference carries the SHA-256 of the whole
// blob, which commits the sender to one ciphertext: a receiver checks it
// before trusting the file.

// AttachmentChunk is the plaintext size of a chunk.
const AttachmentChunk = 64 << 10

// MaxAttachmentSize is the largest plaintext the encoding allows (the
// server sets its own, smaller limit).
const MaxAttachmentSize = 1 << 40

const attachMagic = "ANA1"

// SealedSize returns the size of the blob SealAttachment makes from size
// bytes of plaintext.
func SealedSize(size uint64) uint64 {
	chunks := (size + AttachmentChunk - 1) / AttachmentChunk
	if chunks == 0 {
		chunks = 1
	}
	return uint64(len(attachMagic)) + size + chunks*chacha20poly1305.Overhead
}

func chunkNonce(i uint64, last bool) []byte {
	n := make([]byte, chacha20poly1305.NonceSize)
	binary.BigEndian.PutUint64(n[3:11], i)
	if last {
		n[11] = 1
	}
	return n
}

// SealAttachment encrypts src to dst under a fresh key read from rand (nil
// means crypto/rand) and returns the reference to send, with its BlobID
// still empty (the server assigns it on upload) and MIME and Name for the
// caller to fill.
func SealAttachment(dst io.Writer, src io.Reader, rand io.Reader) (*AttachmentRef, error) {
	ref := &AttachmentRef{}
	if _, err := io.ReadFull(randOrDefault(rand), ref.Key[:]); err != nil {
		return nil, fmt.Errorf("sealing attachment: reading randomness: %w", err)
	}
	aead, err := chacha20poly1305.New(ref.Key[:])
	if err != nil {
		return nil, fmt.Errorf("sealing attachment: %w", err)
	}
	h := sha256.New()
	out := io.MultiWriter(dst, h)
	if _, err := io.WriteString(out, attachMagic); err != nil {
		return nil, fmt.Errorf("sealing attachment: %w", err)
	}
	in := bufio.NewReaderSize(src, AttachmentChunk+1)
	buf := make([]byte, AttachmentChunk, AttachmentChunk+chacha20poly1305.Overhead)
	for i := uint64(0); ; i++ {
		n, err := io.ReadFull(in, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("sealing attachment: reading: %w", err)
		}
		last := n < AttachmentChunk
		if !last {
			if _, perr := in.Peek(1); errors.Is(perr, io.EOF) {
				last = true
			} else if perr != nil {
				return nil, fmt.Errorf("sealing attachment: reading: %w", perr)
			}
		}
		ref.Size += uint64(n)
		if ref.Size > MaxAttachmentSize {
			return nil, fmt.Errorf("sealing attachment: %w: over %d bytes", ErrBadContent, uint64(MaxAttachmentSize))
		}
		ct := aead.Seal(buf[:0], chunkNonce(i, last), buf[:n], nil)
		if _, err := out.Write(ct); err != nil {
			return nil, fmt.Errorf("sealing attachment: writing: %w", err)
		}
		buf = buf[:AttachmentChunk]
		if last {
			break
		}
	}
	copy(ref.SHA256[:], h.Sum(nil))
	return ref, nil
}

// OpenAttachment decrypts the blob src into dst and checks it against ref:
// every chunk must authenticate, the blob must end with its last chunk,
// the plaintext size must match and the blob's SHA-256 must equal the
// reference's. Chunks are written as they authenticate; on an error
// (wrapping ErrAttachment) the caller must discard what was written.
func OpenAttachment(dst io.Writer, src io.Reader, ref *AttachmentRef) error {
	aead, err := chacha20poly1305.New(ref.Key[:])
	if err != nil {
		return fmt.Errorf("opening attachment: %w", err)
	}
	h := sha256.New()
	// The reference gives the blob's length: a blob that ends short of it
	// is a transfer cut off (or cut) on the way, told apart from one whose
	// bytes do not authenticate.
	want := SealedSize(ref.Size)
	got := &countReader{r: src}
	cut := func() error {
		if got.n < want {
			return fmt.Errorf("opening attachment: %w", &truncatedError{got: got.n, want: want})
		}
		return nil
	}
	in := bufio.NewReaderSize(io.TeeReader(got, h), AttachmentChunk+chacha20poly1305.Overhead+1)
	magic := make([]byte, len(attachMagic))
	if _, err := io.ReadFull(in, magic); err != nil || string(magic) != attachMagic {
		if err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			if err := cut(); err != nil {
				return err
			}
		}
		return fmt.Errorf("opening attachment: %w: bad header", ErrAttachment)
	}
	const full = AttachmentChunk + chacha20poly1305.Overhead
	buf := make([]byte, full)
	var size uint64
	for i := uint64(0); ; i++ {
		n, err := io.ReadFull(in, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return fmt.Errorf("opening attachment: reading: %w", err)
		}
		last := n < full
		if !last {
			if _, perr := in.Peek(1); errors.Is(perr, io.EOF) {
				last = true
			} else if perr != nil {
				return fmt.Errorf("opening attachment: reading: %w", perr)
			}
		}
		if last {
			// The stream ended: the whole of it has been read.
			if err := cut(); err != nil {
				return err
			}
		}
		if n < chacha20poly1305.Overhead {
			return fmt.Errorf("opening attachment: %w: truncated chunk %d", ErrAttachment, i)
		}
		pt, err := aead.Open(buf[:0], chunkNonce(i, last), buf[:n], nil)
		if err != nil {
			return fmt.Errorf("opening attachment: %w: chunk %d does not authenticate", ErrAttachment, i)
		}
		if len(pt) == 0 && i > 0 {
			return fmt.Errorf("opening attachment: %w: empty chunk %d", ErrAttachment, i)
		}
		size += uint64(len(pt))
		if size > ref.Size {
			return fmt.Errorf("opening attachment: %w: longer than %d bytes", ErrAttachment, ref.Size)
		}
		if _, err := dst.Write(pt); err != nil {
			return fmt.Errorf("opening attachment: writing: %w", err)
		}
		if last {
			break
		}
	}
	if size != ref.Size {
		return fmt.Errorf("opening attachment: %w: %d bytes, reference says %d", ErrAttachment, size, ref.Size)
	}
	if subtle.ConstantTimeCompare(sumOf(h), ref.SHA256[:]) != 1 {
		return fmt.Errorf("opening attachment: %w: SHA-256 mismatch", ErrAttachment)
	}
	return nil
}

func sumOf(h hash.Hash) []byte { return h.Sum(nil) }

// ErrIncomplete is returned when a transfer ends before all of its bytes
// arrived (the connection was cut): what arrived is discarded and the
// transfer can be tried again. It is not a failed authentication, though
// such an error also matches ErrAttachment.
var ErrIncomplete = errors.New("client: transfer incomplete")

// truncatedError is a blob that ended short of its length.
type truncatedError struct{ got, want uint64 }

func (e *truncatedError) Error() string {
	return fmt.Sprintf("the transfer was cut off after %d of %d bytes; try again", e.got, e.want)
}

// Is makes a truncated blob match ErrIncomplete, and ErrAttachment (it did
// not verify: what was written must be discarded).
func (e *truncatedError) Is(target error) bool {
	return target == ErrIncomplete || target == ErrAttachment
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n uint64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += uint64(n)
	return n, err
}
