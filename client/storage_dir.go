package client

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DirStorage is the Storage of a device on a file system: one file per
// object in a directory. Put writes a temporary file, syncs it and renames
// it over the object; Lock is an exclusive OS lock (flock) on the file
// "lock" in the directory; Shred and PutSecret overwrite the old bytes
// with random ones, which flash storage and copy-on-write file systems may
// still keep (the README's "Device state at rest" says what that means).
type DirStorage struct {
	dir  string
	rand io.Reader
	lock *os.File
}

// NewDirStorage returns the storage of the directory dir.
func NewDirStorage(dir string) *DirStorage { return newDirStorage(dir, rand.Reader) }

// newDirStorage takes the randomness of temporary names and overwrites
// from r (the vault's, so tests can stop it between writes).
func newDirStorage(dir string, r io.Reader) *DirStorage {
	return &DirStorage{dir: dir, rand: r}
}

// Dir returns the directory.
func (s *DirStorage) Dir() string { return s.dir }

func (s *DirStorage) path(name string) (string, error) {
	if !validStorageName(name) || strings.HasPrefix(name, tmpPrefix) || name == lockFileName {
		return "", fmt.Errorf("storage: bad object name %q", name)
	}
	return filepath.Join(s.dir, name), nil
}

// Create makes the directory (mode 0700) if it does not exist.
func (s *DirStorage) Create() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("creating device state directory: %w", err)
	}
	return nil
}

// Lock takes the exclusive lock of the directory, without waiting.
func (s *DirStorage) Lock() error {
	if s.lock != nil {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(s.dir, lockFileName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("locking device state: %w", err)
	}
	held, err := tryLockFile(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("locking device state in %s: %w", s.dir, err)
	}
	if !held {
		f.Close()
		return fmt.Errorf("device state in %s is in use by another anom process: %w", s.dir, ErrInUse)
	}
	s.lock = f
	return nil
}

// Unlock drops the lock (closing the file drops it).
func (s *DirStorage) Unlock() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

// Get reads an object.
func (s *DirStorage) Get(name string) ([]byte, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

// Put replaces an object atomically (writeAtomic).
func (s *DirStorage) Put(name string, data []byte) error {
	if _, err := s.path(name); err != nil {
		return err
	}
	return writeAtomic(s.dir, name, data, s.rand)
}

// PutSecret replaces an object atomically, then overwrites the previous
// file's bytes through a descriptor opened before the rename, so that a
// plain file system does not keep them in freed blocks. The overwrite
// comes only after the new file is in place and synced: a crash leaves
// one whole object, and an error from the overwrite is a *committedError.
func (s *DirStorage) PutSecret(name string, data []byte) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	old, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil && !notExist(err) {
		return err
	}
	if old != nil {
		defer old.Close()
	}
	if err := writeAtomic(s.dir, name, data, s.rand); err != nil {
		return err
	}
	if old == nil {
		return nil
	}
	if err := overwriteFile(old, s.rand); err != nil {
		return &committedError{err}
	}
	return nil
}

// Delete removes an object and syncs the directory.
func (s *DirStorage) Delete(name string) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return syncDir(s.dir)
}

// List returns the objects of the directory. It first removes the
// temporary files a crash in the middle of a Put left.
func (s *DirStorage) List() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, tmpPrefix):
			if err := os.Remove(filepath.Join(s.dir, n)); err != nil && !notExist(err) {
				return nil, fmt.Errorf("removing leftover %s: %w", n, err)
			}
		case n == lockFileName || !validStorageName(n):
		default:
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// OpenLog opens a log file for reading.
func (s *DirStorage) OpenLog(name string) (io.ReadCloser, int64, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// AppendLog writes data at offset at of the log file, truncating what
// follows, and syncs the file (and the directory when it made the file).
func (s *DirStorage) AppendLog(name string, at int64, data []byte) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	isNew := fi.Size() == 0 && at == 0
	if fi.Size() != at {
		// Drop a torn frame (or a failed earlier append).
		if err := f.Truncate(at); err != nil {
			return fmt.Errorf("dropping a torn frame: %w", err)
		}
	}
	if _, err := f.WriteAt(data, at); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if isNew {
		return syncDir(s.dir)
	}
	return nil
}

// Shred overwrites a file with random bytes, syncs it, removes it and
// syncs the directory.
func (s *DirStorage) Shred(name string) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	if err := overwrite(p, s.rand); err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("removing %s: %w", name, err)
	}
	return syncDir(s.dir)
}

// Destroy removes the directory and all it holds, and syncs its parent.
func (s *DirStorage) Destroy() (int, error) {
	var errs []error
	ents, err := os.ReadDir(s.dir)
	if err != nil && !notExist(err) {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, err)
	}
	if err := syncDir(filepath.Dir(s.dir)); err != nil && !notExist(err) {
		errs = append(errs, err)
	}
	return len(ents), errors.Join(errs...)
}
