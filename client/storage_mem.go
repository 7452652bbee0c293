package client

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
)

// MemStorage is a Storage in memory: state that lasts as long as the
// process (tests, and the base of a browser's IndexedDB storage). Handles
// made by Handle share the objects and the lock, as two opens of one
// directory do. Its zero value is not usable; use NewMemStorage.
type MemStorage struct {
	s      *memState
	locked bool // this handle holds the lock
}

type memState struct {
	mu      sync.Mutex
	created bool
	locked  bool
	objs    map[string][]byte
}

// NewMemStorage returns an empty storage.
func NewMemStorage() *MemStorage {
	return &MemStorage{s: &memState{objs: map[string][]byte{}}}
}

// Handle returns another handle to the same objects, with its own lock
// (as another process opening the same directory).
func (m *MemStorage) Handle() *MemStorage { return &MemStorage{s: m.s} }

func memNotExist(name string) error {
	return &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (m *MemStorage) check(name string) error {
	if !validStorageName(name) {
		return fmt.Errorf("storage: bad object name %q", name)
	}
	return nil
}

// Create marks the storage created.
func (m *MemStorage) Create() error {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	m.s.created = true
	return nil
}

// Lock takes the storage for this handle.
func (m *MemStorage) Lock() error {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	if m.locked {
		return nil
	}
	if !m.s.created {
		return fmt.Errorf("locking device state: %w", memNotExist("storage"))
	}
	if m.s.locked {
		return fmt.Errorf("device state in memory is in use by another client: %w", ErrInUse)
	}
	m.s.locked, m.locked = true, true
	return nil
}

// Unlock releases the lock if this handle holds it.
func (m *MemStorage) Unlock() error {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	if m.locked {
		m.s.locked, m.locked = false, false
	}
	return nil
}

// Get returns a copy of an object.
func (m *MemStorage) Get(name string) ([]byte, error) {
	if err := m.check(name); err != nil {
		return nil, err
	}
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	b, ok := m.s.objs[name]
	if !ok {
		return nil, memNotExist(name)
	}
	return bytes.Clone(b), nil
}

// Put stores a copy of data.
func (m *MemStorage) Put(name string, data []byte) error {
	if err := m.check(name); err != nil {
		return err
	}
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	if !m.s.created {
		return fmt.Errorf("storing %s: %w", name, memNotExist("storage"))
	}
	m.s.objs[name] = append([]byte{}, data...)
	return nil
}

// PutSecret stores a copy of data and zeroes the replaced bytes.
func (m *MemStorage) PutSecret(name string, data []byte) error {
	if err := m.check(name); err != nil {
		return err
	}
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	if !m.s.created {
		return fmt.Errorf("storing %s: %w", name, memNotExist("storage"))
	}
	clear(m.s.objs[name])
	m.s.objs[name] = append([]byte{}, data...)
	return nil
}

// Delete removes an object.
func (m *MemStorage) Delete(name string) error {
	if err := m.check(name); err != nil {
		return err
	}
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	delete(m.s.objs, name)
	return nil
}

// List returns the objects' names, sorted.
func (m *MemStorage) List() ([]string, error) {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	if !m.s.created {
		return nil, memNotExist("storage")
	}
	out := make([]string, 0, len(m.s.objs))
	for n := range m.s.objs {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// OpenLog returns a reader of a copy of the log.
func (m *MemStorage) OpenLog(name string) (io.ReadCloser, int64, error) {
	b, err := m.Get(name)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

// AppendLog sets the log to its first at bytes followed by data.
func (m *MemStorage) AppendLog(name string, at int64, data []byte) error {
	if err := m.check(name); err != nil {
		return err
	}
	if at < 0 {
		return fmt.Errorf("appending to %s: negative offset", name)
	}
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	if !m.s.created {
		return fmt.Errorf("appending to %s: %w", name, memNotExist("storage"))
	}
	b := m.s.objs[name]
	if int64(len(b)) > at {
		clear(b[at:])
		b = b[:at]
	} else {
		b = append(b, make([]byte, at-int64(len(b)))...)
	}
	m.s.objs[name] = append(b, data...)
	return nil
}

// Shred zeroes and removes an object.
func (m *MemStorage) Shred(name string) error {
	if err := m.check(name); err != nil {
		return err
	}
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	b, ok := m.s.objs[name]
	if !ok {
		return memNotExist(name)
	}
	clear(b)
	delete(m.s.objs, name)
	return nil
}

// Destroy zeroes and removes every object; the storage is then as never
// created.
func (m *MemStorage) Destroy() (int, error) {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	n := len(m.s.objs)
	for k, b := range m.s.objs {
		clear(b)
		delete(m.s.objs, k)
	}
	m.s.created = false
	return n, nil
}
