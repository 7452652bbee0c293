package pebble

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

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
	size, err := s.writeBlobFile(ctx, u, r, limit)
	if err != nil {
		s.removeBlobFile(u)
		return store.BlobInfo{}, err
	}
	info := store.BlobInfo{ID: id, Size: size, Expires: o.Expires}
	var replaced []uploadID
	err = s.submit(ctx, len(id)+64, func(t *tx) error {
		replaced = replaced[:0]
		mk := manifestKey(id)
		now := s.now()
		if _, exists, err := t.get(mk); err != nil {
			return err
		} else if exists {
			// An expired blob not yet swept gives way.
			old, err := t.deleteBlob(id, &now)
			if errors.Is(err, store.ErrNotFound) {
				return store.ErrExists
			} else if err != nil {
				return err
			}
			replaced = append(replaced, old)
		}
		info.Created = now
		t.set(mk, encodeManifest(manifest{upload: u, size: size, created: info.Created, expires: o.Expires}))
		t.set(fileKey(u), nil)
		if !o.Expires.IsZero() {
			t.set(expiryKey(o.Expires, id), nil)
		}
		return nil
	})
	if err != nil {
		s.removeBlobFile(u)
		return store.BlobInfo{}, err
	}
	for _, old := range replaced {
		s.removeBlobFile(old)
	}
	return info, nil
}

// writeBlobFile streams r into the file of upload u in chunks, and makes
// the file and its directory entry durable.
func (s *Store) writeBlobFile(ctx context.Context, u uploadID, r io.Reader, limit int64) (int64, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	f, err := s.fs.Create(s.blobPath(u), vfs.WriteCategoryUnspecified)
	if err != nil {
		return 0, fmt.Errorf("creating blob file: %w", fullErr(err))
	}
	defer f.Close()
	buf := make([]byte, s.chunk)
	var size int64
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if s.closed.Load() {
			return 0, store.ErrClosed
		}
		n, rerr := io.ReadFull(r, buf)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return 0, fmt.Errorf("reading blob data: %w", rerr)
		}
		if n > 0 {
			if size+int64(n) > limit {
				return 0, fmt.Errorf("more than %d bytes: %w", limit, store.ErrTooLarge)
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return 0, fmt.Errorf("writing blob file: %w", fullErr(err))
			}
			size += int64(n)
		}
		if rerr != nil {
			break
		}
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("syncing blob file: %w", fullErr(err))
	}
	if err := s.syncBlobDir(); err != nil {
		return 0, err
	}
	return size, nil
}

func (s *Store) blobPath(u uploadID) string {
	return s.fs.PathJoin(s.blobDir, hex.EncodeToString(u[:]))
}

func (s *Store) syncBlobDir() error {
	d, err := s.fs.OpenDir(s.blobDir)
	if err != nil {
		return fmt.Errorf("opening blob directory: %w", fullErr(err))
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing blob directory: %w", fullErr(err))
	}
	return nil
}

// removeBlobFile deletes a file no manifest names (any more). A file left
// behind by a crash or a failed removal is removed by the next Open.
func (s *Store) removeBlobFile(u uploadID) {
	s.fs.Remove(s.blobPath(u))
}

// removeOrphans deletes blob files without a file key: uploads that never
// committed, and files of deleted blobs whose removal a crash prevented. At
// Open no upload is in progress.
func (s *Store) removeOrphans() error {
	names, err := s.fs.List(s.blobDir)
	if err != nil {
		return fmt.Errorf("listing blob files: %w", err)
	}
	for _, name := range names {
		var u uploadID
		if len(name) != 2*len(u) {
			continue // not ours
		}
		if _, err := hex.Decode(u[:], []byte(name)); err != nil {
			continue
		}
		_, closer, err := s.db.Get(fileKey(u))
		if err == nil {
			closer.Close()
			continue
		}
		if !errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("checking blob file %s: %w", name, err)
		}
		if err := s.fs.Remove(s.fs.PathJoin(s.blobDir, name)); err != nil {
			return fmt.Errorf("removing orphan blob file %s: %w", name, err)
		}
	}
	return nil
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
func (s *Store) GetBlob(ctx context.Context, id string) (io.ReadSeekCloser, store.BlobInfo, error) {
	if err := store.CheckName("blob", id); err != nil {
		return nil, store.BlobInfo{}, fmt.Errorf("opening blob: %w", err)
	}
	if err := s.enter(); err != nil {
		return nil, store.BlobInfo{}, err
	}
	defer s.leave()
	v := s.acquire()
	m, err := s.readManifest(v, id)
	v.release()
	if err != nil {
		return nil, store.BlobInfo{}, fmt.Errorf("opening blob %q: %w", id, err)
	}
	f, err := s.fs.Open(s.blobPath(m.upload))
	if errors.Is(err, fs.ErrNotExist) {
		// Deleted after the view we read was published.
		return nil, store.BlobInfo{}, fmt.Errorf("opening blob %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, store.BlobInfo{}, fmt.Errorf("opening blob %q: %w", id, err)
	}
	r := &blobReader{s: s, f: f, id: id, size: m.size}
	s.readers.Store(r, struct{}{})
	return r, blobInfo(id, m), nil
}

// blobReader streams a blob's file. The open file keeps the bytes readable
// even if the blob is deleted meanwhile.
type blobReader struct {
	s      *Store
	f      vfs.File
	id     string
	mu     sync.Mutex
	closed bool
	size   int64 // from the manifest
	pos    int64 // offset of the next Read
}

func (r *blobReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, fmt.Errorf("reading blob %q: %w", r.id, store.ErrClosed)
	}
	if r.pos >= r.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > r.size-r.pos {
		p = p[:r.size-r.pos]
	}
	n, err := r.f.ReadAt(p, r.pos)
	r.pos += int64(n)
	if err == io.EOF && n < len(p) {
		return n, fmt.Errorf("reading blob %q: file ends at %d of %d bytes: %w", r.id, r.pos, r.size, store.ErrCorrupt)
	}
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("reading blob %q: %w", r.id, err)
	}
	return n, nil
}

// Seek implements io.Seeker; seeking beyond the end is allowed (reads
// there return io.EOF).
func (r *blobReader) Seek(offset int64, whence int) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, fmt.Errorf("seeking blob %q: %w", r.id, store.ErrClosed)
	}
	var pos int64
	switch whence {
	case io.SeekStart:
		pos = offset
	case io.SeekCurrent:
		pos = r.pos + offset
	case io.SeekEnd:
		pos = r.size + offset
	default:
		return 0, fmt.Errorf("seeking blob %q: whence %d: %w", r.id, whence, store.ErrInvalid)
	}
	if pos < 0 {
		return 0, fmt.Errorf("seeking blob %q to %d: %w", r.id, pos, store.ErrInvalid)
	}
	r.pos = pos
	return pos, nil
}

// Close releases the reader's file.
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
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("closing blob %q: %w", r.id, err)
	}
	return nil
}

// DeleteBlob implements store.Blobs.
func (s *Store) DeleteBlob(ctx context.Context, id string) error {
	if err := store.CheckName("blob", id); err != nil {
		return fmt.Errorf("deleting blob: %w", err)
	}
	var u uploadID
	err := s.submit(ctx, len(id), func(t *tx) error {
		var err error
		u, err = t.deleteBlob(id, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("deleting blob %q: %w", id, err)
	}
	s.removeBlobFile(u)
	return nil
}

// deleteBlob stages the removal of blob id and returns its upload, whose
// file the caller removes once the removal is durable. If expiredBy is not
// nil the blob is removed only if it expires at or before *expiredBy.
func (t *tx) deleteBlob(id string, expiredBy *time.Time) (uploadID, error) {
	mk := manifestKey(id)
	raw, ok, err := t.get(mk)
	if err != nil {
		return uploadID{}, err
	}
	if !ok {
		return uploadID{}, store.ErrNotFound
	}
	m, err := decodeManifest(raw)
	if err != nil {
		return uploadID{}, err
	}
	if expiredBy != nil && (m.expires.IsZero() || m.expires.After(*expiredBy)) {
		return uploadID{}, store.ErrNotFound
	}
	t.del(mk)
	if !m.expires.IsZero() {
		t.del(expiryKey(m.expires, id))
	}
	t.del(fileKey(m.upload))
	return m.upload, nil
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
		var removed []uploadID
		err = s.submit(ctx, 64*len(ids), func(t *tx) error {
			removed = removed[:0]
			for _, e := range ids {
				u, err := t.deleteBlob(e.id, &now)
				if errors.Is(err, store.ErrNotFound) {
					t.del(e.key) // deleted meanwhile, or a stale index entry
					continue
				}
				if err != nil {
					return err
				}
				removed = append(removed, u)
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("sweeping blobs: %w", err)
		}
		for _, u := range removed {
			s.removeBlobFile(u)
		}
		total += len(removed)
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
