package pebble

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"anom/internal/store"
)

// Expiry times must lie in the range Pebble keys can order (UnixNano).
var (
	minExpiry = time.Unix(0, 1)
	maxExpiry = time.Unix(0, 1<<62)
)

// PutBlob implements store.Blobs.
func (s *Store) PutBlob(ctx context.Context, id string, r io.Reader, o store.BlobOptions) (store.BlobInfo, error) {
	info, err := s.putBlob(ctx, id, r, o)
	if err != nil {
		return store.BlobInfo{}, fmt.Errorf("storing blob %q: %w", id, err)
	}
	return info, nil
}

func (s *Store) putBlob(ctx context.Context, id string, r io.Reader, o store.BlobOptions) (store.BlobInfo, error) {
	if err := store.CheckName("blob", id); err != nil {
		return store.BlobInfo{}, err
	}
	limit := o.MaxSize
	if limit < 0 {
		return store.BlobInfo{}, fmt.Errorf("size limit %d: %w", limit, store.ErrInvalid)
	}
	if limit == 0 || limit > s.maxBlob {
		limit = s.maxBlob
	}
	if !o.Expires.IsZero() && (o.Expires.Before(minExpiry) || o.Expires.After(maxExpiry)) {
		return store.BlobInfo{}, fmt.Errorf("expiry %v out of range: %w", o.Expires, store.ErrInvalid)
	}
	if _, err := s.StatBlob(ctx, id); err == nil {
		return store.BlobInfo{}, store.ErrExists
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.BlobInfo{}, err
	}

	u := newUploadID()
	ok := false
	defer func() {
		if !ok {
			s.dropUpload(u)
		}
	}()
	if err := s.writeRaw(uploadKey(u), encodeUint(uint64(s.now().UnixNano()))); err != nil {
		return store.BlobInfo{}, err
	}
	buf := make([]byte, s.chunk)
	var size int64
	for idx := uint64(0); ; idx++ {
		if err := ctx.Err(); err != nil {
			return store.BlobInfo{}, err
		}
		n, rerr := io.ReadFull(r, buf)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return store.BlobInfo{}, fmt.Errorf("reading blob data: %w", rerr)
		}
		if n > 0 {
			if size+int64(n) > limit {
				return store.BlobInfo{}, fmt.Errorf("more than %d bytes: %w", limit, store.ErrTooLarge)
			}
			if err := s.writeRaw(chunkKey(u, idx), buf[:n]); err != nil {
				return store.BlobInfo{}, err
			}
			size += int64(n)
		}
		if rerr != nil {
			break
		}
	}

	info := store.BlobInfo{ID: id, Size: size, Expires: o.Expires}
	err := s.submit(ctx, len(id)+64, func(t *tx) error {
		mk := manifestKey(id)
		now := s.now()
		if _, exists, err := t.get(mk); err != nil {
			return err
		} else if exists {
			// An expired blob not yet swept gives way.
			if err := t.deleteBlob(id, &now); errors.Is(err, store.ErrNotFound) {
				return store.ErrExists
			} else if err != nil {
				return err
			}
		}
		info.Created = now
		t.set(mk, encodeManifest(manifest{upload: u, size: size, created: info.Created, expires: o.Expires}))
		if !o.Expires.IsZero() {
			t.set(expiryKey(o.Expires, id), nil)
		}
		t.del(uploadKey(u))
		return nil
	})
	if err != nil {
		return store.BlobInfo{}, err
	}
	ok = true
	return info, nil
}

// writeRaw writes a chunk or upload marker without fsync; the manifest
// commit that follows makes it durable.
func (s *Store) writeRaw(key, val []byte) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.db.Set(key, val, pebble.NoSync); err != nil {
		return fmt.Errorf("writing blob chunk: %w", err)
	}
	return nil
}

// dropUpload removes what a failed upload wrote; Open retries what this misses.
func (s *Store) dropUpload(u uploadID) {
	if s.enter() != nil {
		return
	}
	defer s.leave()
	b := s.db.NewBatch()
	defer b.Close()
	lo, hi := chunkRange(u)
	b.DeleteRange(lo, hi, nil)
	b.Delete(uploadKey(u), nil)
	b.Commit(pebble.NoSync)
}

// readManifest returns a live (unexpired) blob's manifest from v.
func (s *Store) readManifest(v *view, id string) (manifest, error) {
	raw, ok, err := v.get(manifestKey(id))
	if err != nil {
		return manifest{}, err
	}
	if !ok {
		return manifest{}, store.ErrNotFound
	}
	m, err := decodeManifest(raw)
	if err != nil {
		return manifest{}, err
	}
	if !m.expires.IsZero() && !s.now().Before(m.expires) {
		return manifest{}, store.ErrNotFound
	}
	return m, nil
}

func blobInfo(id string, m manifest) store.BlobInfo {
	return store.BlobInfo{ID: id, Size: m.size, Created: m.created, Expires: m.expires}
}

// StatBlob implements store.Blobs.
func (s *Store) StatBlob(ctx context.Context, id string) (store.BlobInfo, error) {
	if err := store.CheckName("blob", id); err != nil {
		return store.BlobInfo{}, fmt.Errorf("reading blob info: %w", err)
	}
	if err := s.enter(); err != nil {
		return store.BlobInfo{}, err
	}
	defer s.leave()
	v := s.acquire()
	defer v.release()
	m, err := s.readManifest(v, id)
	if err != nil {
		return store.BlobInfo{}, fmt.Errorf("reading blob %q info: %w", id, err)
	}
	return blobInfo(id, m), nil
}

// GetBlob implements store.Blobs.
func (s *Store) GetBlob(ctx context.Context, id string) (io.ReadCloser, store.BlobInfo, error) {
	if err := store.CheckName("blob", id); err != nil {
		return nil, store.BlobInfo{}, fmt.Errorf("opening blob: %w", err)
	}
	if err := s.enter(); err != nil {
		return nil, store.BlobInfo{}, err
	}
	defer s.leave()
	v := s.acquire()
	m, err := s.readManifest(v, id)
	if err != nil {
		v.release()
		return nil, store.BlobInfo{}, fmt.Errorf("opening blob %q: %w", id, err)
	}
	lo, hi := chunkRange(m.upload)
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		v.release()
		return nil, store.BlobInfo{}, fmt.Errorf("opening blob %q: %w", id, err)
	}
	r := &blobReader{s: s, v: v, it: it, id: id, upload: m.upload, remaining: m.size}
	s.readers.Store(r, struct{}{})
	return r, blobInfo(id, m), nil
}

// blobReader streams a blob's chunks from a pinned view.
type blobReader struct {
	s         *Store
	v         *view
	it        *pebble.Iterator
	id        string
	upload    uploadID
	mu        sync.Mutex
	closed    bool
	started   bool
	next      uint64 // index of the next chunk
	buf       []byte // unread part of the current chunk (aliases it)
	remaining int64  // bytes not yet returned
	err       error
}

func (r *blobReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, fmt.Errorf("reading blob %q: %w", r.id, store.ErrClosed)
	}
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for len(r.buf) == 0 {
		if r.remaining == 0 {
			r.err = io.EOF
			return 0, io.EOF
		}
		var ok bool
		if r.started {
			ok = r.it.Next()
		} else {
			ok, r.started = r.it.First(), true
		}
		if !ok {
			if err := r.it.Error(); err != nil {
				r.err = fmt.Errorf("reading blob %q: %w", r.id, err)
			} else {
				r.err = fmt.Errorf("reading blob %q: %d bytes missing: %w", r.id, r.remaining, store.ErrCorrupt)
			}
			return 0, r.err
		}
		if want := chunkKey(r.upload, r.next); string(r.it.Key()) != string(want) {
			r.err = fmt.Errorf("reading blob %q: chunk %d missing: %w", r.id, r.next, store.ErrCorrupt)
			return 0, r.err
		}
		r.next++
		r.buf = r.it.Value()
		if int64(len(r.buf)) > r.remaining {
			r.err = fmt.Errorf("reading blob %q: longer than its size: %w", r.id, store.ErrCorrupt)
			return 0, r.err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.remaining -= int64(n)
	return n, nil
}

// Close releases the reader's view.
func (r *blobReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.s.readers.Delete(r)
	return r.shut()
}

// closeForStore is called by Store.Close.
func (r *blobReader) closeForStore() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.shut()
	}
}

func (r *blobReader) shut() error {
	r.closed = true
	r.buf = nil
	err := r.it.Close()
	r.v.release()
	if err != nil {
		return fmt.Errorf("closing blob %q: %w", r.id, err)
	}
	return nil
}

// DeleteBlob implements store.Blobs.
func (s *Store) DeleteBlob(ctx context.Context, id string) error {
	if err := store.CheckName("blob", id); err != nil {
		return fmt.Errorf("deleting blob: %w", err)
	}
	err := s.submit(ctx, len(id), func(t *tx) error {
		return t.deleteBlob(id, nil)
	})
	if err != nil {
		return fmt.Errorf("deleting blob %q: %w", id, err)
	}
	return nil
}

// deleteBlob stages the removal of blob id; if expiredBy is not nil the
// blob is removed only if it expires at or before *expiredBy.
func (t *tx) deleteBlob(id string, expiredBy *time.Time) error {
	mk := manifestKey(id)
	raw, ok, err := t.get(mk)
	if err != nil {
		return err
	}
	if !ok {
		return store.ErrNotFound
	}
	m, err := decodeManifest(raw)
	if err != nil {
		return err
	}
	if expiredBy != nil && (m.expires.IsZero() || m.expires.After(*expiredBy)) {
		return store.ErrNotFound
	}
	t.del(mk)
	if !m.expires.IsZero() {
		t.del(expiryKey(m.expires, id))
	}
	lo, hi := chunkRange(m.upload)
	t.delRange(lo, hi)
	return nil
}

// SweepBlobs implements store.Blobs.
func (s *Store) SweepBlobs(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		ids, err := s.expired(ctx, now, 256)
		if err != nil {
			return total, fmt.Errorf("sweeping blobs: %w", err)
		}
		if len(ids) == 0 {
			return total, nil
		}
		n := 0
		err = s.submit(ctx, 64*len(ids), func(t *tx) error {
			n = 0
			for _, e := range ids {
				err := t.deleteBlob(e.id, &now)
				if errors.Is(err, store.ErrNotFound) {
					t.del(e.key) // deleted meanwhile, or a stale index entry
					continue
				}
				if err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("sweeping blobs: %w", err)
		}
		total += n
	}
}

type expiring struct {
	id  string
	key []byte // its expiry index key
}

// expired lists up to max blobs expiring at or before now.
func (s *Store) expired(ctx context.Context, now time.Time, max int) ([]expiring, error) {
	if now.Before(minExpiry) {
		return nil, nil
	}
	if now.After(maxExpiry) {
		now = maxExpiry
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	v := s.acquire()
	defer v.release()
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixExpiry}, UpperBound: expiryUpTo(now)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var ids []expiring
	for ok := it.First(); ok && len(ids) < max; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		_, id, err := parseExpiryKey(it.Key())
		if err != nil {
			return nil, err
		}
		ids = append(ids, expiring{id: id, key: append([]byte(nil), it.Key()...)})
	}
	return ids, it.Error()
}
