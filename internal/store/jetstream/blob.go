package jetstream

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"anom/internal/store"
)

// uploadWindow is how many chunk publishes PutBlob keeps in flight.
const uploadWindow = 4

func (s *Store) blobSubject(id string) string      { return s.names.blob + id }
func (s *Store) graveSubject(upload string) string { return s.names.grave + upload }
func (s *Store) chunkSubject(upload string) string { return s.names.chunk + upload }

// readManifest returns a blob's manifest state; m is nil when there is no
// live manifest (expired ones are returned: callers decide).
func (s *Store) readManifest(ctx context.Context, id string) (*manifest, kvState, error) {
	st, err := s.readKey(ctx, s.blobSubject(id))
	if err != nil || !st.live {
		return nil, st, err
	}
	m, err := decodeManifest(st.value)
	if err != nil {
		return nil, st, fmt.Errorf("blob %s: %w", id, err)
	}
	return &m, st, nil
}

// graveMsg marks an upload's chunks for purging at (or after) t.
func (s *Store) graveMsg(upload string, t time.Time) pubMsg {
	return pubMsg{subject: s.graveSubject(upload), data: encodeUint64(uint64(t.UnixNano()))}
}

// PutBlob implements store.Blobs.
func (s *Store) PutBlob(ctx context.Context, id string, r io.Reader, opts store.BlobOptions) (store.BlobInfo, error) {
	what := fmt.Sprintf("storing blob %s", id)
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return store.BlobInfo{}, fmt.Errorf("%s: %w", what, err)
	}
	defer done()
	if err := store.CheckName("blob", id); err != nil {
		return store.BlobInfo{}, fmt.Errorf("%s: %w", what, err)
	}
	if opts.MaxSize < 0 {
		return store.BlobInfo{}, fmt.Errorf("%s: size limit %d: %w", what, opts.MaxSize, store.ErrInvalid)
	}
	limit := s.maxBlob
	if opts.MaxSize > 0 {
		limit = opts.MaxSize
	}
	now := s.now()
	if m, _, err := s.readManifest(ctx, id); err != nil {
		return store.BlobInfo{}, s.fail(what, err)
	} else if m != nil && !m.expired(now) {
		return store.BlobInfo{}, fmt.Errorf("%s: %w", what, store.ErrExists)
	}
	upload := newID()
	// The grave is removed with the commit; if this upload never commits
	// (a crash), SweepBlobs purges its chunks after a day.
	if _, err := s.publish(ctx, []pubMsg{s.graveMsg(upload, now.Add(24*time.Hour))}); err != nil {
		return store.BlobInfo{}, s.fail(what, err)
	}
	m, err := s.upload(ctx, upload, r, limit)
	if err != nil {
		s.abandon(upload)
		return store.BlobInfo{}, s.fail(what, err)
	}
	m.Created, m.Expires = now, opts.Expires
	for {
		old, st, err := s.readManifest(ctx, id)
		if err != nil {
			s.abandon(upload)
			return store.BlobInfo{}, s.fail(what, err)
		}
		if old != nil && !old.expired(s.now()) {
			s.abandon(upload)
			return store.BlobInfo{}, fmt.Errorf("%s: %w", what, store.ErrExists)
		}
		msgs := []pubMsg{
			{subject: s.blobSubject(id), data: m.encode(), expect: true, expectSeq: st.seq},
			{subject: s.graveSubject(upload), header: deleteHeader(), data: []byte{}},
		}
		if old != nil { // an expired blob gives its ID up; its chunks go
			msgs = append(msgs, s.graveMsg(old.Upload, s.now().Add(s.grace)))
		}
		_, err = s.publish(ctx, msgs)
		if isWrongLast(err) {
			continue
		}
		if err != nil {
			s.abandon(upload)
			return store.BlobInfo{}, s.fail(what, err)
		}
		return m.info(id), nil
	}
}

// upload streams r into chunks of a new upload and returns the manifest
// (without times). Chunks are published asynchronously on the one
// connection, so they reach the stream in order, with at most
// uploadWindow unacknowledged at a time.
func (s *Store) upload(ctx context.Context, upload string, r io.Reader, limit int64) (*manifest, error) {
	m := &manifest{Upload: upload, ChunkSize: chunkSize}
	subj := s.chunkSubject(upload)
	var pending []js.PubAckFuture
	wait := func() error {
		f := pending[0]
		pending = pending[1:]
		select {
		case ack := <-f.Ok():
			m.Seqs = append(m.Seqs, ack.Sequence)
			return nil
		case err := <-f.Err():
			return fmt.Errorf("storing chunk %d: %w", len(m.Seqs), err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.timeout):
			return fmt.Errorf("storing chunk %d: no acknowledgement in %v", len(m.Seqs), s.timeout)
		}
	}
	var firstErr error
	for firstErr == nil {
		buf := make([]byte, chunkSize)
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if m.Size += int64(n); m.Size > limit {
				firstErr = fmt.Errorf("blob larger than %d bytes: %w", limit, store.ErrTooLarge)
				break
			}
			if len(pending) == uploadWindow {
				if firstErr = wait(); firstErr != nil {
					break
				}
			}
			f, perr := s.js.PublishMsgAsync(&nats.Msg{Subject: subj, Data: buf[:n]}, js.WithRetryAttempts(0))
			if perr != nil {
				firstErr = fmt.Errorf("storing chunk: %w", perr)
				break
			}
			pending = append(pending, f)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			firstErr = fmt.Errorf("reading blob: %w", err)
		}
	}
	for len(pending) > 0 {
		if err := wait(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	for i := 1; i < len(m.Seqs); i++ {
		if m.Seqs[i] <= m.Seqs[i-1] {
			return nil, fmt.Errorf("chunks stored out of order (%d after %d): %w", m.Seqs[i], m.Seqs[i-1], store.ErrCorrupt)
		}
	}
	return m, nil
}

// abandon purges a failed upload's chunks and its grave, best effort (a
// sweep purges them later otherwise).
func (s *Store) abandon(upload string) {
	ctx, cancel := context.WithTimeout(ctxOf(s.closing), s.timeout)
	defer cancel()
	if s.purge(ctx, s.blobs, s.chunkSubject(upload), 0) == nil {
		s.purge(ctx, s.kv, s.graveSubject(upload), 0)
	}
}

// GetBlob implements store.Blobs.
func (s *Store) GetBlob(ctx context.Context, id string) (io.ReadSeekCloser, store.BlobInfo, error) {
	what := fmt.Sprintf("opening blob %s", id)
	m, err := s.stat(ctx, id, what)
	if err != nil {
		return nil, store.BlobInfo{}, err
	}
	return &blobReader{s: s, m: m}, m.info(id), nil
}

// StatBlob implements store.Blobs.
func (s *Store) StatBlob(ctx context.Context, id string) (store.BlobInfo, error) {
	m, err := s.stat(ctx, id, fmt.Sprintf("describing blob %s", id))
	if err != nil {
		return store.BlobInfo{}, err
	}
	return m.info(id), nil
}

func (s *Store) stat(ctx context.Context, id, what string) (*manifest, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer done()
	if err := store.CheckName("blob", id); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	m, _, err := s.readManifest(ctx, id)
	if err != nil {
		return nil, s.fail(what, err)
	}
	if m == nil || m.expired(s.now()) {
		return nil, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return m, nil
}

// DeleteBlob implements store.Blobs.
func (s *Store) DeleteBlob(ctx context.Context, id string) error {
	what := fmt.Sprintf("deleting blob %s", id)
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer done()
	if err := store.CheckName("blob", id); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	for {
		m, st, err := s.readManifest(ctx, id)
		if err != nil {
			return s.fail(what, err)
		}
		if m == nil || m.expired(s.now()) {
			return fmt.Errorf("%s: %w", what, store.ErrNotFound)
		}
		err = s.dropManifest(ctx, id, m, st)
		if isWrongLast(err) {
			continue
		}
		if err != nil {
			return s.fail(what, err)
		}
		return nil
	}
}

// dropManifest replaces a manifest by a deletion marker and graves its
// upload, atomically.
func (s *Store) dropManifest(ctx context.Context, id string, m *manifest, st kvState) error {
	_, err := s.publish(ctx, []pubMsg{
		{subject: s.blobSubject(id), header: deleteHeader(), data: []byte{}, expect: true, expectSeq: st.seq},
		s.graveMsg(m.Upload, s.now().Add(s.grace)),
	})
	return err
}

// SweepBlobs implements store.Blobs: it removes the blobs expired at now
// and purges the chunks of uploads whose grave time has come.
func (s *Store) SweepBlobs(ctx context.Context, now time.Time) (int, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("sweeping blobs: %w", err)
	}
	defer done()
	subs, err := s.subjects(ctx, s.kv, s.names.blob+">")
	if err != nil {
		return 0, s.fail("sweeping blobs", err)
	}
	removed := 0
	for subj := range subs {
		id := strings.TrimPrefix(subj, s.names.blob)
		m, st, err := s.readManifest(ctx, id)
		if err != nil {
			return removed, s.fail("sweeping blobs", err)
		}
		if m == nil || !m.expired(now) {
			continue
		}
		err = s.dropManifest(ctx, id, m, st)
		if isWrongLast(err) {
			continue // changed meanwhile; the next sweep looks again
		}
		if err != nil {
			return removed, s.fail("sweeping blobs", err)
		}
		removed++
	}
	graves, err := s.subjects(ctx, s.kv, s.names.grave+">")
	if err != nil {
		return removed, s.fail("sweeping blobs", err)
	}
	for subj := range graves {
		st, err := s.readKey(ctx, subj)
		if err != nil {
			return removed, s.fail("sweeping blobs", err)
		}
		if !st.live {
			continue
		}
		at, err := decodeUint64("grave", st.value)
		if err != nil {
			return removed, s.fail("sweeping blobs", fmt.Errorf("%s: %w", subj, err))
		}
		if int64(at) > s.now().UnixNano() {
			continue
		}
		upload := strings.TrimPrefix(subj, s.names.grave)
		if err := s.purge(ctx, s.blobs, s.chunkSubject(upload), 0); err != nil {
			return removed, s.fail("sweeping blobs", err)
		}
		_, err = s.publish(ctx, []pubMsg{{subject: subj, header: deleteHeader(), data: []byte{}, expect: true, expectSeq: st.seq}})
		if err != nil && !isWrongLast(err) {
			return removed, s.fail("sweeping blobs", err)
		}
	}
	return removed, nil
}

// blobReader reads a blob chunk by chunk from the stream leader. It keeps
// one chunk in memory.
type blobReader struct {
	s      *Store
	m      *manifest
	mu     sync.Mutex
	pos    int64
	chunk  []byte // the chunk at index ci, nil if none loaded
	ci     int
	closed bool
}

func (b *blobReader) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, fmt.Errorf("reading blob: reader closed: %w", store.ErrInvalid)
	}
	if b.pos >= b.m.Size {
		return 0, io.EOF
	}
	ci := int(b.pos / int64(b.m.ChunkSize))
	if b.chunk == nil || b.ci != ci {
		data, err := b.load(ci)
		if err != nil {
			return 0, err
		}
		b.chunk, b.ci = data, ci
	}
	n := copy(p, b.chunk[b.pos-int64(ci)*int64(b.m.ChunkSize):])
	b.pos += int64(n)
	return n, nil
}

// load reads chunk ci and checks it is the expected part of the blob.
func (b *blobReader) load(ci int) ([]byte, error) {
	s := b.s
	ctx, done, err := s.begin(context.Background())
	if err != nil {
		return nil, fmt.Errorf("reading blob: %w", err)
	}
	defer done()
	msg, err := s.msgAt(ctx, s.blobs, b.m.Seqs[ci])
	if err != nil {
		return nil, s.fail("reading blob", err)
	}
	if msg == nil {
		return nil, fmt.Errorf("reading blob: chunk %d purged: %w", ci, store.ErrNotFound)
	}
	want := int64(b.m.ChunkSize)
	if rest := b.m.Size - int64(ci)*want; rest < want {
		want = rest
	}
	if msg.Subject != s.chunkSubject(b.m.Upload) || int64(len(msg.Data)) != want {
		return nil, fmt.Errorf("reading blob: chunk %d is %d bytes of %s: %w", ci, len(msg.Data), msg.Subject, store.ErrCorrupt)
	}
	return msg.Data, nil
}

func (b *blobReader) Seek(offset int64, whence int) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var pos int64
	switch whence {
	case io.SeekStart:
		pos = offset
	case io.SeekCurrent:
		pos = b.pos + offset
	case io.SeekEnd:
		pos = b.m.Size + offset
	default:
		return 0, fmt.Errorf("seeking blob: whence %d: %w", whence, store.ErrInvalid)
	}
	if pos < 0 {
		return 0, fmt.Errorf("seeking blob to %d: %w", pos, store.ErrInvalid)
	}
	b.pos = pos
	return pos, nil
}

func (b *blobReader) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed, b.chunk = true, nil
	return nil
}
