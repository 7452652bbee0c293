package pebble

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"anom/internal/store"
)

// gateFS holds WAL fsyncs while closed, so a test can look at the store
// while a write is applied but not yet durable.
type gateFS struct {
	vfs.FS
	g *gate
}

type gate struct {
	mu      sync.Mutex
	closed  bool
	open    chan struct{} // closed when the gate reopens
	blocked chan struct{} // receives when a sync blocks
}

func newGate() *gate { return &gate{open: make(chan struct{}), blocked: make(chan struct{}, 100)} }

func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed, g.open = true, make(chan struct{})
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		g.closed = false
		close(g.open)
	}
}

func (g *gate) pass() {
	g.mu.Lock()
	closed, open := g.closed, g.open
	g.mu.Unlock()
	if closed {
		g.blocked <- struct{}{}
		<-open
	}
}

func (f gateFS) wrap(file vfs.File, name string, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return file, err
	}
	return gateFile{file, f.g}, nil
}

func (f gateFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.Create(name, cat)
	return f.wrap(file, name, err)
}

func (f gateFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.ReuseForWrite(oldname, newname, cat)
	return f.wrap(file, newname, err)
}

type gateFile struct {
	vfs.File
	g *gate
}

func (f gateFile) Sync() error     { f.g.pass(); return f.File.Sync() }
func (f gateFile) SyncData() error { f.g.pass(); return f.File.SyncData() }
func (f gateFile) SyncTo(n int64) (bool, error) {
	f.g.pass()
	return f.File.SyncTo(n)
}

// TestReadersSeeOnlyDurable: Pebble makes a batch visible before its WAL
// fsync; the store must not show it to readers (nor answer its writer)
// until the fsync is done.
func TestReadersSeeOnlyDurable(t *testing.T) {
	g := newGate()
	s, err := Open(t.TempDir(), Options{fs: gateFS{vfs.Default, g}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer g.release()
	ctx := context.Background()
	if _, err := s.Append(ctx, "g", []byte("a")); err != nil {
		t.Fatal(err)
	}

	g.shut()
	done := make(chan error, 2)
	go func() {
		_, err := s.Append(ctx, "g", []byte("b"))
		done <- err
	}()
	go func() {
		_, err := s.Put(ctx, "dir", "k", []byte("v"))
		done <- err
	}()
	select {
	case <-g.blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("no WAL sync started")
	}
	time.Sleep(20 * time.Millisecond) // let the second write be applied too
	select {
	case err := <-done:
		t.Fatalf("write returned before its fsync: %v", err)
	default:
	}
	entries, err := s.Read(ctx, "g", 1, 0)
	if err != nil || len(entries) != 1 {
		t.Fatalf("while fsync pending: read %d entries, %v; want only the durable one", len(entries), err)
	}
	if info, err := s.Info(ctx, "g"); err != nil || info.Last != 1 {
		t.Fatalf("while fsync pending: info %+v, %v", info, err)
	}
	if _, err := s.Get(ctx, "dir", "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("while fsync pending: get = %v, want ErrNotFound", err)
	}
	// The committer itself sees the pending write: a conditional append
	// conditioned on the durable state conflicts rather than forks the log.
	confl := make(chan error, 1)
	go func() {
		_, err := s.AppendIf(ctx, "g", 1, []byte("fork"))
		confl <- err
	}()

	g.release()
	for i := 0; i < 2; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var ce *store.ConflictError
	if err := <-confl; !errors.As(err, &ce) || ce.Last != 2 {
		t.Fatalf("AppendIf on the durable state while a write was pending: %v, want conflict at 2", err)
	}
	entries, err = s.Read(ctx, "g", 1, 0)
	if err != nil || len(entries) != 2 || string(entries[1].Data) != "b" {
		t.Fatalf("after fsync: %d entries, %v", len(entries), err)
	}
	if e, err := s.Get(ctx, "dir", "k"); err != nil || string(e.Value) != "v" {
		t.Fatalf("after fsync: get %q, %v", e.Value, err)
	}
}

var errInjected = errors.New("injected fsync failure")

type failFS struct {
	vfs.FS
	fail *atomic.Bool
}

func (f failFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.Create(name, cat)
	if err != nil || !strings.HasSuffix(name, ".log") {
		return file, err
	}
	return failFile{file, f.fail}, nil
}

type failFile struct {
	vfs.File
	fail *atomic.Bool
}

func (f failFile) SyncData() error {
	if f.fail.Load() {
		return errInjected
	}
	return f.File.SyncData()
}
func (f failFile) Sync() error {
	if f.fail.Load() {
		return errInjected
	}
	return f.File.Sync()
}
func (f failFile) SyncTo(n int64) (bool, error) {
	if f.fail.Load() {
		return false, errInjected
	}
	return f.File.SyncTo(n)
}

// TestFsyncFailure: a failed WAL fsync fails the write, and every later
// write, instead of carrying on over a WAL in an unknown state (fsyncgate);
// readers keep the last durable state.
func TestFsyncFailure(t *testing.T) {
	var fail atomic.Bool
	s, err := Open(t.TempDir(), Options{fs: failFS{vfs.Default, &fail}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Append(ctx, "g", []byte("a")); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	if _, err := s.Append(ctx, "g", []byte("b")); !errors.Is(err, errInjected) {
		t.Fatalf("append while fsync fails: %v", err)
	}
	fail.Store(false)
	if _, err := s.Put(ctx, "dir", "k", nil); !errors.Is(err, errInjected) {
		t.Fatalf("write after a failed fsync: %v, want the fsync error", err)
	}
	if info, err := s.Info(ctx, "g"); err != nil || info.Last != 1 {
		t.Fatalf("info after failure: %+v, %v", info, err)
	}
	if err := s.Close(); err == nil {
		t.Fatal("close after failed fsync reported no error")
	}
}
