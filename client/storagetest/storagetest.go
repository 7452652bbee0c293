// Package storagetest is the conformance suite of client.Storage: every
// implementation (the directory one, the in-memory one, a browser's) must
// pass Run.
package storagetest

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"slices"
	"testing"

	"anom/client"
)

// Factory makes a storage that was never created and returns it with a
// function opening another handle to the same state, as a second process
// (or a reload of the page) would.
type Factory func(t *testing.T) (st client.Storage, another func() client.Storage)

// Run runs the suite on the storages that newStorage makes.
func Run(t *testing.T, newStorage Factory) {
	t.Run("NotCreated", func(t *testing.T) { testNotCreated(t, newStorage) })
	t.Run("Objects", func(t *testing.T) { testObjects(t, newStorage) })
	t.Run("Names", func(t *testing.T) { testNames(t, newStorage) })
	t.Run("Lock", func(t *testing.T) { testLock(t, newStorage) })
	t.Run("Logs", func(t *testing.T) { testLogs(t, newStorage) })
	t.Run("Secrets", func(t *testing.T) { testSecrets(t, newStorage) })
	t.Run("Destroy", func(t *testing.T) { testDestroy(t, newStorage) })
	t.Run("Durable", func(t *testing.T) { testDurable(t, newStorage) })
}

func created(t *testing.T, f Factory) (client.Storage, func() client.Storage) {
	t.Helper()
	st, another := f(t)
	if err := st.Create(); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := st.Create(); err != nil {
		t.Fatalf("Create again: %v", err)
	}
	if err := st.Lock(); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	t.Cleanup(func() { st.Unlock() })
	return st, another
}

func mustGet(t *testing.T, st client.Storage, name string, want []byte) {
	t.Helper()
	got, err := st.Get(name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %q, want %q", name, got, want)
	}
}

func mustMissing(t *testing.T, st client.Storage, name string) {
	t.Helper()
	if got, err := st.Get(name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get(%q) of a missing object = %q, %v; want fs.ErrNotExist", name, got, err)
	}
}

func mustList(t *testing.T, st client.Storage, want ...string) {
	t.Helper()
	got, err := st.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if want == nil {
		want = []string{}
	}
	if got == nil {
		got = []string{}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("List = %q, want %q", got, want)
	}
}

func readLog(t *testing.T, st client.Storage, name string) []byte {
	t.Helper()
	r, size, err := st.OpenLog(name)
	if err != nil {
		t.Fatalf("OpenLog(%q): %v", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading log %q: %v", name, err)
	}
	if int64(len(b)) != size {
		t.Fatalf("log %q: size %d, read %d bytes", name, size, len(b))
	}
	return b
}

// testNotCreated: a storage never created cannot be locked, and says so
// with fs.ErrNotExist (Open reports "no device state" from it).
func testNotCreated(t *testing.T, f Factory) {
	st, _ := f(t)
	if err := st.Lock(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Lock before Create: %v, want fs.ErrNotExist", err)
	}
	if err := st.Unlock(); err != nil {
		t.Fatalf("Unlock when not locked: %v", err)
	}
}

func testObjects(t *testing.T, f Factory) {
	st, _ := created(t, f)
	mustList(t, st)
	mustMissing(t, st, "r-a")
	big := bytes.Repeat([]byte{0xa5}, 1<<20)
	in := []byte("alpha")
	for name, v := range map[string][]byte{"r-a": in, "r-b": big, "hint": {}, "key": []byte("k")} {
		if err := st.Put(name, v); err != nil {
			t.Fatalf("Put(%q): %v", name, err)
		}
	}
	in[0] = 'X' // Put keeps its own copy
	mustGet(t, st, "r-a", []byte("alpha"))
	mustGet(t, st, "r-b", big)
	mustGet(t, st, "hint", nil)
	got, _ := st.Get("r-a")
	got[0] = 'Y' // and Get returns one
	mustGet(t, st, "r-a", []byte("alpha"))
	mustList(t, st, "hint", "key", "r-a", "r-b")

	if err := st.Put("r-a", []byte("replaced")); err != nil {
		t.Fatal(err)
	}
	mustGet(t, st, "r-a", []byte("replaced"))
	if err := st.Delete("r-a"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	mustMissing(t, st, "r-a")
	if err := st.Delete("r-a"); err != nil {
		t.Fatalf("Delete of a missing object: %v", err)
	}
	mustList(t, st, "hint", "key", "r-b")
}

func testNames(t *testing.T, f Factory) {
	st, _ := created(t, f)
	for _, bad := range []string{"", ".", "..", "../x", "a/b", `a\b`, "a b", "a\x00", string(make([]byte, 256))} {
		if err := st.Put(bad, []byte("x")); err == nil {
			t.Errorf("Put(%q) accepted a bad name", bad)
		}
		if err := st.AppendLog(bad, 0, []byte("x")); err == nil {
			t.Errorf("AppendLog(%q) accepted a bad name", bad)
		}
	}
	long := string(bytes.Repeat([]byte{'l'}, 255))
	for _, good := range []string{"r-0123456789abcdef", "l-ff", "key", "A_Z-09", long} {
		if err := st.Put(good, []byte(good)); err != nil {
			t.Errorf("Put(%q): %v", good, err)
		}
		mustGet(t, st, good, []byte(good))
	}
}

// testLock: while one handle holds the lock, another's Lock fails at once
// with ErrInUse; after Unlock it succeeds.
func testLock(t *testing.T, f Factory) {
	st, another := created(t, f)
	if err := st.Lock(); err != nil {
		t.Fatalf("Lock by the holder again: %v", err)
	}
	second := another()
	if err := second.Lock(); !errors.Is(err, client.ErrInUse) {
		t.Fatalf("second Lock while held: %v, want ErrInUse", err)
	}
	if err := second.Unlock(); err != nil {
		t.Fatalf("Unlock of a handle that failed to lock: %v", err)
	}
	if err := st.Lock(); err != nil {
		t.Fatalf("the holder lost its lock to a failed Lock: %v", err)
	}
	if err := st.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if err := second.Lock(); err != nil {
		t.Fatalf("Lock after the holder unlocked: %v", err)
	}
	if err := st.Lock(); !errors.Is(err, client.ErrInUse) {
		t.Fatalf("first handle locking again while the second holds it: %v, want ErrInUse", err)
	}
	if err := second.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := st.Lock(); err != nil {
		t.Fatalf("Lock after the second unlocked: %v", err)
	}
}

func testLogs(t *testing.T, f Factory) {
	st, _ := created(t, f)
	if _, _, err := st.OpenLog("l-1"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenLog of a missing log: %v, want fs.ErrNotExist", err)
	}
	if err := st.AppendLog("l-1", 0, []byte("one")); err != nil {
		t.Fatalf("AppendLog creating: %v", err)
	}
	if err := st.AppendLog("l-1", 3, []byte("two")); err != nil {
		t.Fatalf("AppendLog: %v", err)
	}
	if got := readLog(t, st, "l-1"); string(got) != "onetwo" {
		t.Fatalf("log = %q", got)
	}
	// A torn frame after offset 3 is dropped by the next append there.
	if err := st.AppendLog("l-1", 3, []byte("2")); err != nil {
		t.Fatal(err)
	}
	if got := readLog(t, st, "l-1"); string(got) != "one2" {
		t.Fatalf("log after appending over a torn tail = %q, want %q", got, "one2")
	}
	// Past the end: zeros up to at.
	if err := st.AppendLog("l-1", 6, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := readLog(t, st, "l-1"); string(got) != "one2\x00\x00x" {
		t.Fatalf("log after appending past the end = %q", got)
	}
	// A log is an object: listed, read, replaced and deleted as one.
	mustList(t, st, "l-1")
	mustGet(t, st, "l-1", []byte("one2\x00\x00x"))
	if err := st.Put("l-1", []byte("rewritten")); err != nil {
		t.Fatal(err)
	}
	if got := readLog(t, st, "l-1"); string(got) != "rewritten" {
		t.Fatalf("log after Put = %q", got)
	}
	if err := st.Delete("l-1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.OpenLog("l-1"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenLog of a deleted log: %v", err)
	}
	// A reader opened before an append sees a consistent prefix.
	big := bytes.Repeat([]byte("frame"), 10000)
	if err := st.AppendLog("l-2", 0, big); err != nil {
		t.Fatal(err)
	}
	if got := readLog(t, st, "l-2"); !bytes.Equal(got, big) {
		t.Fatalf("big log read back %d bytes, want %d", len(got), len(big))
	}
}

func testSecrets(t *testing.T, f Factory) {
	st, _ := created(t, f)
	if err := st.PutSecret("key", []byte("first key")); err != nil {
		t.Fatalf("PutSecret creating: %v", err)
	}
	if err := st.PutSecret("key", []byte("second")); err != nil {
		t.Fatalf("PutSecret replacing: %v", err)
	}
	mustGet(t, st, "key", []byte("second"))
	if err := st.Shred("key"); err != nil {
		t.Fatalf("Shred: %v", err)
	}
	mustMissing(t, st, "key")
	if err := st.Shred("key"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Shred of a missing object: %v, want fs.ErrNotExist", err)
	}
	mustList(t, st)
}

func testDestroy(t *testing.T, f Factory) {
	st, another := created(t, f)
	for _, n := range []string{"key", "hint", "r-1", "r-2"} {
		if err := st.Put(n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AppendLog("l-1", 0, []byte("entry")); err != nil {
		t.Fatal(err)
	}
	if err := st.Shred("key"); err != nil {
		t.Fatal(err)
	}
	n, err := st.Destroy()
	if err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	// A directory also holds its lock file.
	if n < 4 || n > 5 {
		t.Fatalf("Destroy removed %d objects, want 4", n)
	}
	st.Unlock()
	other := another()
	if err := other.Lock(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Lock of a destroyed storage: %v, want fs.ErrNotExist", err)
	}
	mustMissing(t, other, "r-1")
	mustMissing(t, other, "hint")
	if _, _, err := other.OpenLog("l-1"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenLog after Destroy: %v", err)
	}
	// It can be made again, empty.
	if err := other.Create(); err != nil {
		t.Fatal(err)
	}
	if err := other.Lock(); err != nil {
		t.Fatal(err)
	}
	defer other.Unlock()
	mustList(t, other)
}

// testDurable: what one handle wrote, another handle reads after it let go.
func testDurable(t *testing.T, f Factory) {
	st, another := created(t, f)
	if err := st.Put("r-x", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := st.PutSecret("key", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendLog("l-x", 0, []byte("log")); err != nil {
		t.Fatal(err)
	}
	if err := st.Unlock(); err != nil {
		t.Fatal(err)
	}
	other := another()
	if err := other.Lock(); err != nil {
		t.Fatal(err)
	}
	defer other.Unlock()
	mustGet(t, other, "r-x", []byte("kept"))
	mustGet(t, other, "key", []byte("secret"))
	if got := readLog(t, other, "l-x"); string(got) != "log" {
		t.Fatalf("log read by another handle = %q", got)
	}
	mustList(t, other, "key", "l-x", "r-x")
}
