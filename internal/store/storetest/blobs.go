package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"anom/internal/store"
)

// patternReader yields n deterministic pseudo-random bytes without holding
// them in memory.
type patternReader struct {
	rng *rand.ChaCha8
	n   int64
}

func newPattern(seed byte, n int64) *patternReader {
	return &patternReader{rng: rand.NewChaCha8([32]byte{seed}), n: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	p.rng.Read(b)
	p.n -= int64(len(b))
	return len(b), nil
}

func patternHash(seed byte, n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, newPattern(seed, n))
	return [32]byte(h.Sum(nil))
}

func readBlob(t *testing.T, s store.Store, id string) ([]byte, store.BlobInfo) {
	t.Helper()
	r, info, err := s.GetBlob(ctxT(t), id)
	if err != nil {
		t.Fatalf("get blob %s: %v", id, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read blob %s: %v", id, err)
	}
	return b, info
}

func testBlobRoundTrip(t *testing.T, h Harness) {
	s, clock := open(t, h)
	ctx := ctxT(t)
	for _, size := range []int64{0, 1, 1000, 64<<10 - 1, 64 << 10, 256<<10 - 1, 256 << 10, 256<<10 + 1, 1 << 20, 3<<20 + 7} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			id := fmt.Sprintf("blob-%d", size)
			want, _ := io.ReadAll(newPattern(byte(size), size))
			info, err := s.PutBlob(ctx, id, bytes.NewReader(want), store.BlobOptions{})
			wantErr(t, "put", err, nil)
			if info.ID != id || info.Size != size || !info.Created.Equal(clock.Now()) || !info.Expires.IsZero() {
				t.Fatalf("put info = %+v", info)
			}
			got, ginfo := readBlob(t, s, id)
			if !bytes.Equal(got, want) {
				t.Fatalf("blob of %d bytes read back as %d different bytes", size, len(got))
			}
			if !sameInfo(ginfo, info) {
				t.Fatalf("get info %+v, put info %+v", ginfo, info)
			}
			if st := must[store.BlobInfo](t, "stat")(s.StatBlob(ctx, id)); !sameInfo(st, info) {
				t.Fatalf("stat %+v, put info %+v", st, info)
			}
		})
	}
	// Small reads through the reader, then reads after EOF.
	r, _, err := s.GetBlob(ctx, "blob-1000")
	wantErr(t, "get", err, nil)
	var got []byte
	buf := make([]byte, 7)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		wantErr(t, "read", err, nil)
	}
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("read after EOF = %d, %v", n, err)
	}
	wantErr(t, "close", r.Close(), nil)
	wantErr(t, "close twice", r.Close(), nil)
	want, _ := io.ReadAll(newPattern(byte(1000%256), 1000))
	if !bytes.Equal(got, want) {
		t.Fatal("small reads returned different bytes")
	}
}

type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(b []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	if len(b) > f.n {
		b = b[:f.n]
	}
	f.n -= len(b)
	return len(b), nil
}

func testBlobErrors(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	_, _, err := s.GetBlob(ctx, "nope")
	wantErr(t, "get missing", err, store.ErrNotFound)
	_, err = s.StatBlob(ctx, "nope")
	wantErr(t, "stat missing", err, store.ErrNotFound)
	wantErr(t, "delete missing", s.DeleteBlob(ctx, "nope"), store.ErrNotFound)
	_, err = s.PutBlob(ctx, "bad id", bytes.NewReader(nil), store.BlobOptions{})
	wantErr(t, "bad id", err, store.ErrInvalid)
	_, err = s.PutBlob(ctx, "neg", bytes.NewReader(nil), store.BlobOptions{MaxSize: -1})
	wantErr(t, "negative limit", err, store.ErrInvalid)

	must[store.BlobInfo](t, "put")(s.PutBlob(ctx, "b1", bytes.NewReader([]byte("one")), store.BlobOptions{}))
	_, err = s.PutBlob(ctx, "b1", bytes.NewReader([]byte("two")), store.BlobOptions{})
	wantErr(t, "put existing", err, store.ErrExists)
	got, _ := readBlob(t, s, "b1")
	if string(got) != "one" {
		t.Fatalf("blob overwritten: %q", got)
	}

	tests := []struct {
		name string
		r    io.Reader
		max  int64
		want error
	}{
		{"over limit", newPattern(1, 1<<20+1), 1 << 20, store.ErrTooLarge},
		{"over limit by far", newPattern(1, 5<<20), 1 << 20, store.ErrTooLarge},
		{"at limit", newPattern(1, 1<<20), 1 << 20, nil},
		{"reader fails", &failingReader{n: 300 << 10, err: errors.New("connection reset")}, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.PutBlob(ctx, "lim", tc.r, store.BlobOptions{MaxSize: tc.max})
			fr, failing := tc.r.(*failingReader)
			if failing {
				if !errors.Is(err, fr.err) {
					t.Fatalf("put from failing reader: %v, want %v", err, fr.err)
				}
			} else {
				wantErr(t, "put", err, tc.want)
			}
			if tc.want != nil || failing {
				_, err = s.StatBlob(ctx, "lim")
				wantErr(t, "stat after failed put", err, store.ErrNotFound)
				return
			}
			wantErr(t, "delete", s.DeleteBlob(ctx, "lim"), nil)
		})
	}
	wantErr(t, "delete", s.DeleteBlob(ctx, "b1"), nil)
	_, _, err = s.GetBlob(ctx, "b1")
	wantErr(t, "get deleted", err, store.ErrNotFound)
	wantErr(t, "delete again", s.DeleteBlob(ctx, "b1"), store.ErrNotFound)
	must[store.BlobInfo](t, "put after delete")(s.PutBlob(ctx, "b1", bytes.NewReader([]byte("new")), store.BlobOptions{}))
	if got, _ := readBlob(t, s, "b1"); string(got) != "new" {
		t.Fatalf("re-put blob = %q", got)
	}
}

func testBlobExpiry(t *testing.T, h Harness) {
	s, clock := open(t, h)
	ctx := ctxT(t)
	start := clock.Now()
	for i, ttl := range []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour} {
		must[store.BlobInfo](t, "put")(s.PutBlob(ctx, fmt.Sprintf("e%d", i), newPattern(2, 100<<10), store.BlobOptions{Expires: start.Add(ttl)}))
	}
	must[store.BlobInfo](t, "put forever")(s.PutBlob(ctx, "forever", bytes.NewReader([]byte("f")), store.BlobOptions{}))
	if n := must[int](t, "sweep")(s.SweepBlobs(ctx, start)); n != 0 {
		t.Fatalf("sweep at start removed %d", n)
	}
	clock.Advance(time.Hour) // e0 expires now: invisible at once
	_, _, err := s.GetBlob(ctx, "e0")
	wantErr(t, "get expired", err, store.ErrNotFound)
	_, err = s.StatBlob(ctx, "e0")
	wantErr(t, "stat expired", err, store.ErrNotFound)
	readBlob(t, s, "e1")
	// An expired blob not yet swept gives its ID up to a new one.
	must[store.BlobInfo](t, "put over expired")(s.PutBlob(ctx, "e0", bytes.NewReader([]byte("again")), store.BlobOptions{Expires: start.Add(10 * time.Hour)}))
	if got, _ := readBlob(t, s, "e0"); string(got) != "again" {
		t.Fatalf("replaced expired blob = %q", got)
	}
	if n := must[int](t, "sweep")(s.SweepBlobs(ctx, start.Add(2*time.Hour))); n != 1 {
		t.Fatalf("sweep at +2h removed %d, want 1 (e1)", n)
	}
	clock.Advance(24 * time.Hour)
	if n := must[int](t, "sweep")(s.SweepBlobs(ctx, clock.Now())); n != 2 {
		t.Fatalf("sweep at +25h removed %d, want 2 (e2, replaced e0)", n)
	}
	if n := must[int](t, "sweep")(s.SweepBlobs(ctx, clock.Now())); n != 0 {
		t.Fatalf("second sweep removed %d", n)
	}
	wantErr(t, "delete swept", s.DeleteBlob(ctx, "e2"), store.ErrNotFound)
	if got, _ := readBlob(t, s, "forever"); string(got) != "f" {
		t.Fatal("blob without expiry changed")
	}
}

// testBlobReaderIsolation: an open reader keeps reading the blob it opened
// even if the blob is deleted and its ID reused meanwhile.
func testBlobReaderIsolation(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	const size = 2 << 20
	must[store.BlobInfo](t, "put")(s.PutBlob(ctx, "iso", newPattern(3, size), store.BlobOptions{}))
	r, _, err := s.GetBlob(ctx, "iso")
	wantErr(t, "get", err, nil)
	defer r.Close()
	h1 := sha256.New()
	if _, err := io.CopyN(h1, r, 1000); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete", s.DeleteBlob(ctx, "iso"), nil)
	must[store.BlobInfo](t, "put new")(s.PutBlob(ctx, "iso", newPattern(4, size), store.BlobOptions{}))
	if _, err := io.Copy(h1, r); err != nil {
		t.Fatalf("reading after delete: %v", err)
	}
	if [32]byte(h1.Sum(nil)) != patternHash(3, size) {
		t.Fatal("open reader saw changed content")
	}
}

// testBlobLarge streams a blob of store.MinBlobLimit bytes in and out.
func testBlobLarge(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	const size = store.MinBlobLimit
	info := must[store.BlobInfo](t, "put")(s.PutBlob(ctx, "large", newPattern(5, size), store.BlobOptions{MaxSize: size}))
	if info.Size != size {
		t.Fatalf("size %d", info.Size)
	}
	r, _, err := s.GetBlob(ctx, "large")
	wantErr(t, "get", err, nil)
	defer r.Close()
	hs := sha256.New()
	n, err := io.Copy(hs, r)
	wantErr(t, "read", err, nil)
	if n != size || [32]byte(hs.Sum(nil)) != patternHash(5, size) {
		t.Fatalf("read %d bytes, hash mismatch or short", n)
	}
}

func sameInfo(a, b store.BlobInfo) bool {
	return a.ID == b.ID && a.Size == b.Size && a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires)
}

// testBlobSeek: readers seek, so downloads can resume (HTTP ranges).
func testBlobSeek(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	const size = 700<<10 + 3
	want, _ := io.ReadAll(newPattern(9, size))
	must[store.BlobInfo](t, "put")(s.PutBlob(ctx, "seek", bytes.NewReader(want), store.BlobOptions{}))
	r, _, err := s.GetBlob(ctx, "seek")
	wantErr(t, "get", err, nil)
	defer r.Close()
	tests := []struct {
		offset int64
		whence int
		pos    int64 // resulting position; -1: error
	}{
		{0, io.SeekStart, 0},
		{1000, io.SeekStart, 1000},
		{256 << 10, io.SeekStart, 256 << 10},
		{size - 1, io.SeekStart, size - 1},
		{size, io.SeekStart, size},
		{size + 10, io.SeekStart, size + 10},
		{-10, io.SeekEnd, size - 10},
		{0, io.SeekEnd, size},
		{-1, io.SeekStart, -1},
		{-size - 1, io.SeekEnd, -1},
		{0, 99, -1},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d/%d", tc.offset, tc.whence), func(t *testing.T) {
			pos, err := r.Seek(tc.offset, tc.whence)
			if tc.pos < 0 {
				wantErr(t, "seek", err, store.ErrInvalid)
				return
			}
			if err != nil || pos != tc.pos {
				t.Fatalf("seek = %d, %v; want %d", pos, err, tc.pos)
			}
			got, err := io.ReadAll(io.LimitReader(r, 300<<10))
			wantErr(t, "read", err, nil)
			start := min(tc.pos, size)
			end := min(tc.pos+300<<10, size)
			if !bytes.Equal(got, want[start:end]) {
				t.Fatalf("read %d bytes after seeking to %d; want bytes %d..%d", len(got), tc.pos, tc.pos, end)
			}
		})
	}
	// SeekCurrent moves from where reading stopped.
	must[int64](t, "seek")(r.Seek(10, io.SeekStart))
	io.ReadFull(r, make([]byte, 5))
	if pos := must[int64](t, "seek")(r.Seek(5, io.SeekCurrent)); pos != 20 {
		t.Fatalf("SeekCurrent to %d, want 20", pos)
	}
	b := make([]byte, 4)
	io.ReadFull(r, b)
	if !bytes.Equal(b, want[20:24]) {
		t.Fatal("read after SeekCurrent returned other bytes")
	}
}
