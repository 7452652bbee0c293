//go:build js

package idbstorage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"syscall/js"
	"testing"

	"anom/client"
	"anom/client/storagetest"
)

// These tests run in a browser (see browser_test.go, which runs them in
// headless Chromium from the host).

var dbSeq atomic.Int64

// freshName returns the name of a database no test used yet.
func freshName(t *testing.T) string {
	return fmt.Sprintf("test-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), dbSeq.Add(1))
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) (client.Storage, func() client.Storage) {
		name := freshName(t)
		st := New(name)
		t.Cleanup(func() { st.Close() })
		return st, func() client.Storage {
			o := New(name)
			t.Cleanup(func() { o.Close() })
			return o
		}
	})
}

func locked(t *testing.T) *Storage {
	t.Helper()
	st := New(freshName(t))
	if err := st.Create(); err != nil {
		t.Fatal(err)
	}
	if err := st.Lock(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestAttackWriteWithoutLock: a handle that does not hold the lock (a
// second tab) cannot change the state.
func TestAttackWriteWithoutLock(t *testing.T) {
	st := locked(t)
	if err := st.Put("r-1", []byte("mine")); err != nil {
		t.Fatal(err)
	}
	other := New(st.Name())
	defer other.Close()
	if err := other.Lock(); !errors.Is(err, client.ErrInUse) {
		t.Fatalf("second Lock: %v, want ErrInUse", err)
	}
	for what, err := range map[string]error{
		"Put":       other.Put("r-1", []byte("theirs")),
		"PutSecret": other.PutSecret("key", []byte("theirs")),
		"Delete":    other.Delete("r-1"),
		"AppendLog": other.AppendLog("l-1", 0, []byte("theirs")),
		"Shred":     other.Shred("r-1"),
	} {
		if err == nil {
			t.Errorf("%s by a handle without the lock succeeded", what)
		}
	}
	if _, err := other.Destroy(); err == nil {
		t.Error("Destroy by a handle without the lock succeeded")
	}
	got, err := other.Get("r-1")
	if err != nil || string(got) != "mine" {
		t.Fatalf("object after refused writes = %q, %v", got, err)
	}
}

// TestLogChunks: appends over many chunks, over a torn tail inside a chunk
// and past the chunk limit (a rewrite as one chunk) keep the content the
// suite's model gives.
func TestLogChunks(t *testing.T) {
	st := locked(t)
	var want []byte
	appendBoth := func(at int64, data []byte) {
		t.Helper()
		if err := st.AppendLog("l-1", at, data); err != nil {
			t.Fatalf("AppendLog(%d, %d bytes): %v", at, len(data), err)
		}
		want = appendAt(want, at, data)
		r, size, err := st.OpenLog("l-1")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || int64(len(got)) != size {
			t.Fatalf("reading the log: %d bytes of %d, %v", len(got), size, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("after AppendLog(%d, %d bytes): log has %d bytes, differs from the %d wanted", at, len(data), len(got), len(want))
		}
	}
	for i := range maxChunks + 10 {
		frame := bytes.Repeat([]byte{byte(i)}, 1+i%7)
		at := int64(len(want))
		switch i % 13 {
		case 5: // over a torn tail inside the last chunk
			at -= 1
		case 9: // over the last chunks
			at = max(0, at-3)
		}
		appendBoth(at, frame)
	}
	lens, err := st.meta("l-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(lens) >= maxChunks {
		t.Fatalf("log has %d chunks, want a rewrite past %d", len(lens), maxChunks)
	}
	appendBoth(int64(len(want))+3, []byte("past the end"))
}

// TestShredAndDestroy: after Shred the object is gone from both stores,
// and after Destroy the database holds no record at all.
func TestShredAndDestroy(t *testing.T) {
	st := locked(t)
	if err := st.PutSecret("key", bytes.Repeat([]byte("k"), 100)); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendLog("l-1", 0, []byte("frame")); err != nil {
		t.Fatal(err)
	}
	if err := st.Shred("key"); err != nil {
		t.Fatal(err)
	}
	if n := countRecords(t, st); n != 2+1 { // l-1's meta and chunk, "created"
		t.Fatalf("%d records after Shred, want 3", n)
	}
	n, err := st.Destroy()
	if err != nil || n != 1 {
		t.Fatalf("Destroy = %d, %v; want 1", n, err)
	}
	if n := countRecords(t, st); n != 0 {
		t.Fatalf("%d records after Destroy, want 0", n)
	}
}

func countRecords(t *testing.T, st *Storage) int {
	t.Helper()
	stores := []string{storeMeta, storeChunks, storeSys}
	r, err := st.txn(false, stores, func(tx js.Value) []js.Value {
		var out []js.Value
		for _, n := range stores {
			out = append(out, store(tx, n).Call("count"))
		}
		return out
	})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, v := range r {
		total += v.Int()
	}
	return total
}

// TestUpgradeNotBlocked: another tab opening the database at a newer
// version (a newer app) is not blocked by this handle's connection, and
// the handle opens the database again on its next use.
func TestUpgradeNotBlocked(t *testing.T) {
	st := locked(t)
	if err := st.Put("r-1", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	v := st.db.Get("version").Int()
	req := js.Global().Get("indexedDB").Call("open", st.Name(), v+1)
	blocked := js.FuncOf(func(js.Value, []js.Value) any {
		t.Error("the upgrade was blocked by the storage's connection")
		return nil
	})
	defer blocked.Release()
	req.Set("onblocked", blocked)
	db, err := wait(req)
	if err != nil {
		t.Fatalf("upgrading: %v", err)
	}
	db.Call("close")
	got, err := st.Get("r-1")
	if err != nil || string(got) != "kept" {
		t.Fatalf("Get after another's upgrade = %q, %v", got, err)
	}
}
