//go:build js

package idbstorage

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"syscall/js"

	"anom/client"
)

const (
	storeMeta   = "meta"   // name -> chunk sizes (encodeMeta)
	storeChunks = "chunks" // [name, index] -> Uint8Array
	storeSys    = "sys"    // "created" -> true while the storage exists
	createdKey  = "created"
	// maxChunks is how many chunks a log may have before its next append
	// rewrites it as one.
	maxChunks = 256
)

// Storage is a client.Storage in one IndexedDB database. Its methods block
// the calling goroutine until IndexedDB has answered, so they must not be
// called from a JavaScript callback (js.FuncOf) itself: call them from a
// goroutine, as the client does. It is not safe for concurrent use.
type Storage struct {
	name string
	db   js.Value // the open connection; undefined until first use
	// onVersion is db's versionchange handler.
	onVersion js.Func
	// lock is the Web Lock held, nil when not held.
	lock *webLock
}

var _ client.Storage = (*Storage)(nil)

// New returns the storage in the IndexedDB database name of this page's
// origin (the database is opened on first use; Create makes the storage).
// Two Storage values of one name are two handles to the same state, as two
// tabs would have.
func New(name string) *Storage { return &Storage{name: name, db: js.Undefined()} }

// Name returns the database's name.
func (s *Storage) Name() string { return s.name }

var jsUint8Array = js.Global().Get("Uint8Array")

func notExist(name string) error {
	return &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// validName reports whether name is one a client.Storage accepts.
func validName(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func checkName(name string) error {
	if !validName(name) {
		return fmt.Errorf("storage: bad object name %q", name)
	}
	return nil
}

// checkWrite refuses a change by a handle that does not hold the lock: two
// tabs writing one device's state would lose messages.
func (s *Storage) checkWrite(op, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if s.lock == nil {
		return fmt.Errorf("indexeddb %s: %s %s without holding the storage's lock", s.name, op, name)
	}
	return nil
}

// jsErr turns a thrown value or a DOMException into an error.
func jsErr(v js.Value) error {
	if v.IsUndefined() || v.IsNull() {
		return errors.New("indexeddb: transaction aborted")
	}
	if v.Type() == js.TypeObject && v.Get("name").Type() == js.TypeString {
		return fmt.Errorf("indexeddb: %s: %s", v.Get("name").String(), v.Get("message").String())
	}
	return fmt.Errorf("indexeddb: %s", v.Call("toString").String())
}

// try runs fn, turning a JavaScript exception it throws into an error.
func try(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			je, ok := r.(js.Error)
			if !ok {
				panic(r)
			}
			err = jsErr(je.Value)
		}
	}()
	fn()
	return nil
}

// wait waits for an IDBRequest (or IDBOpenDBRequest) to succeed or fail.
func wait(req js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	ok := js.FuncOf(func(js.Value, []js.Value) any {
		ch <- result{v: req.Get("result")}
		return nil
	})
	fail := js.FuncOf(func(js.Value, []js.Value) any {
		ch <- result{err: jsErr(req.Get("error"))}
		return nil
	})
	defer ok.Release()
	defer fail.Release()
	req.Set("onsuccess", ok)
	req.Set("onerror", fail)
	r := <-ch
	req.Set("onsuccess", js.Null())
	req.Set("onerror", js.Null())
	return r.v, r.err
}

// open opens the database, making its stores the first time.
func (s *Storage) open() (js.Value, error) {
	if !s.db.IsUndefined() {
		return s.db, nil
	}
	db, err := s.openVersion(0)
	if err != nil {
		return db, err
	}
	// A database of this name made by someone else without the stores
	// (a page opening it to look) is upgraded to have them.
	if !hasStores(db) {
		v := db.Get("version").Int() + 1
		db.Call("close")
		if db, err = s.openVersion(v); err != nil {
			return db, err
		}
	}
	// Another tab upgrading the database (a newer app) must not wait
	// for this one: let go, and open again on next use.
	if s.onVersion.Truthy() {
		s.onVersion.Release() // that of a connection closed before
	}
	s.onVersion = js.FuncOf(func(js.Value, []js.Value) any {
		db.Call("close")
		if s.db.Equal(db) {
			s.db = js.Undefined()
		}
		return nil
	})
	db.Set("onversionchange", s.onVersion)
	s.db = db
	return db, nil
}

func hasStores(db js.Value) bool {
	have := db.Get("objectStoreNames")
	for _, n := range []string{storeMeta, storeChunks, storeSys} {
		if !have.Call("contains", n).Bool() {
			return false
		}
	}
	return true
}

// openVersion opens the database at version v (0: the current one, or 1
// for a new database), making the stores missing in an upgrade.
func (s *Storage) openVersion(v int) (js.Value, error) {
	idb := js.Global().Get("indexedDB")
	if !idb.Truthy() {
		return js.Undefined(), errors.New("indexeddb: not available in this browser")
	}
	var req js.Value
	err := try(func() {
		if v == 0 {
			req = idb.Call("open", s.name)
		} else {
			req = idb.Call("open", s.name, v)
		}
	})
	if err != nil {
		return js.Undefined(), fmt.Errorf("opening database %s: %w", s.name, err)
	}
	upgrade := js.FuncOf(func(js.Value, []js.Value) any {
		db := req.Get("result")
		have := db.Get("objectStoreNames")
		for _, n := range []string{storeMeta, storeChunks, storeSys} {
			if !have.Call("contains", n).Bool() {
				db.Call("createObjectStore", n)
			}
		}
		return nil
	})
	defer upgrade.Release()
	req.Set("onupgradeneeded", upgrade)
	db, err := wait(req)
	req.Set("onupgradeneeded", js.Null())
	if err != nil {
		return js.Undefined(), fmt.Errorf("opening database %s: %w", s.name, err)
	}
	return db, nil
}

// txn runs one transaction over stores: issue makes its requests without
// waiting for them; txn then waits for the transaction to complete (a
// read-write one with strict durability: on disk) and returns the
// requests' results, in order. If anything fails, nothing is changed.
func (s *Storage) txn(write bool, stores []string, issue func(tx js.Value) []js.Value) ([]js.Value, error) {
	db, err := s.open()
	if err != nil {
		return nil, err
	}
	mode := "readonly"
	opts := map[string]any{}
	if write {
		mode = "readwrite"
		opts["durability"] = "strict"
	}
	names := make([]any, len(stores))
	for i, n := range stores {
		names[i] = n
	}
	var tx js.Value
	if err := try(func() { tx = db.Call("transaction", names, mode, opts) }); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	complete := js.FuncOf(func(js.Value, []js.Value) any {
		done <- nil
		return nil
	})
	abort := js.FuncOf(func(js.Value, []js.Value) any {
		done <- jsErr(tx.Get("error"))
		return nil
	})
	defer complete.Release()
	defer abort.Release()
	tx.Set("oncomplete", complete)
	tx.Set("onabort", abort)
	var reqs []js.Value
	err = try(func() {
		reqs = issue(tx)
		// Commit now rather than when the requests' success events
		// have run: a page that the browser froze (a hidden tab) must
		// not hold a transaction open, blocking the other tabs.
		if tx.Get("commit").Type() == js.TypeFunction {
			tx.Call("commit")
		}
	})
	if err != nil {
		try(func() { tx.Call("abort") })
		<-done
		return nil, err
	}
	if err := <-done; err != nil {
		return nil, err
	}
	out := make([]js.Value, len(reqs))
	for i, r := range reqs {
		out[i] = r.Get("result")
	}
	return out, nil
}

func store(tx js.Value, name string) js.Value { return tx.Call("objectStore", name) }

func chunkKey(name string, i int) js.Value { return js.ValueOf([]any{name, i}) }

// chunksFrom is the key range of an object's chunks from index i on.
func chunksFrom(name string, i int) js.Value {
	return js.Global().Get("IDBKeyRange").Call("bound", chunkKey(name, i), js.ValueOf([]any{name, math.Inf(1)}))
}

func toJS(b []byte) js.Value {
	u := jsUint8Array.New(len(b))
	js.CopyBytesToJS(u, b)
	return u
}

// encodeMeta encodes the sizes of an object's chunks.
func encodeMeta(lens []int) js.Value {
	b := binary.AppendUvarint(nil, uint64(len(lens)))
	for _, l := range lens {
		b = binary.AppendUvarint(b, uint64(l))
	}
	return toJS(b)
}

func decodeMeta(name string, v js.Value) ([]int, error) {
	bad := fmt.Errorf("indexeddb: object %s has a damaged chunk record", name)
	if !v.InstanceOf(jsUint8Array) {
		return nil, bad
	}
	b := make([]byte, v.Length())
	js.CopyBytesToGo(b, v)
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, bad
	}
	b = b[k:]
	lens := make([]int, n)
	for i := range lens {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > math.MaxInt32 {
			return nil, bad
		}
		lens[i], b = int(l), b[k:]
	}
	if len(b) != 0 {
		return nil, bad
	}
	return lens, nil
}

func sum(lens []int) int64 {
	var n int64
	for _, l := range lens {
		n += int64(l)
	}
	return n
}

// meta reads an object's chunk sizes; a missing object gives fs.ErrNotExist.
func (s *Storage) meta(name string) ([]int, error) {
	r, err := s.txn(false, []string{storeMeta}, func(tx js.Value) []js.Value {
		return []js.Value{store(tx, storeMeta).Call("get", name)}
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if r[0].IsUndefined() {
		return nil, notExist(name)
	}
	return decodeMeta(name, r[0])
}

// Create makes the storage (its database, and the record saying it
// exists).
func (s *Storage) Create() error {
	_, err := s.txn(true, []string{storeSys}, func(tx js.Value) []js.Value {
		return []js.Value{store(tx, storeSys).Call("put", true, createdKey)}
	})
	if err != nil {
		return fmt.Errorf("creating device storage %s: %w", s.name, err)
	}
	return nil
}

// created reports whether Create made the storage (and Destroy did not
// remove it since).
func (s *Storage) created() (bool, error) {
	r, err := s.txn(false, []string{storeSys}, func(tx js.Value) []js.Value {
		return []js.Value{store(tx, storeSys).Call("get", createdKey)}
	})
	if err != nil {
		return false, err
	}
	return !r[0].IsUndefined(), nil
}

// Get returns an object's content.
func (s *Storage) Get(name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	r, err := s.txn(false, []string{storeMeta, storeChunks}, func(tx js.Value) []js.Value {
		return []js.Value{
			store(tx, storeMeta).Call("get", name),
			store(tx, storeChunks).Call("getAll", chunksFrom(name, 0)),
		}
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if r[0].IsUndefined() {
		return nil, notExist(name)
	}
	lens, err := decodeMeta(name, r[0])
	if err != nil {
		return nil, err
	}
	chunks := r[1]
	if chunks.Length() != len(lens) {
		return nil, fmt.Errorf("indexeddb: object %s has %d chunks, its record says %d", name, chunks.Length(), len(lens))
	}
	out := make([]byte, sum(lens))
	off := 0
	for i, l := range lens {
		c := chunks.Index(i)
		if !c.InstanceOf(jsUint8Array) || c.Length() != l {
			return nil, fmt.Errorf("indexeddb: object %s: chunk %d is not the size its record says", name, i)
		}
		off += js.CopyBytesToGo(out[off:off+l], c)
	}
	return out, nil
}

// Put replaces an object with data, in one transaction.
func (s *Storage) Put(name string, data []byte) error {
	if err := s.checkWrite("storing", name); err != nil {
		return err
	}
	_, err := s.txn(true, []string{storeMeta, storeChunks}, func(tx js.Value) []js.Value {
		ch := store(tx, storeChunks)
		ch.Call("delete", chunksFrom(name, 0))
		ch.Call("put", toJS(data), chunkKey(name, 0))
		store(tx, storeMeta).Call("put", encodeMeta([]int{len(data)}), name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing %s: %w", name, err)
	}
	return nil
}

// PutSecret is Put. IndexedDB replaces a record's value in place as far as
// a page can tell; whether the backend's files still hold the old bytes
// until a compaction is beyond its reach (see the package comment).
func (s *Storage) PutSecret(name string, data []byte) error { return s.Put(name, data) }

// Delete removes an object; a missing one is not an error.
func (s *Storage) Delete(name string) error {
	if err := s.checkWrite("deleting", name); err != nil {
		return err
	}
	_, err := s.txn(true, []string{storeMeta, storeChunks}, func(tx js.Value) []js.Value {
		store(tx, storeChunks).Call("delete", chunksFrom(name, 0))
		store(tx, storeMeta).Call("delete", name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

// List returns the objects' names, sorted.
func (s *Storage) List() ([]string, error) {
	r, err := s.txn(false, []string{storeMeta, storeSys}, func(tx js.Value) []js.Value {
		return []js.Value{
			store(tx, storeSys).Call("get", createdKey),
			store(tx, storeMeta).Call("getAllKeys"),
		}
	})
	if err != nil {
		return nil, fmt.Errorf("listing device storage: %w", err)
	}
	if r[0].IsUndefined() {
		return nil, notExist(s.name)
	}
	keys := r[1]
	out := make([]string, 0, keys.Length())
	for i := range keys.Length() {
		// IndexedDB orders string keys by UTF-16 code unit, which for
		// these ASCII names is Go's order.
		out = append(out, keys.Index(i).String())
	}
	return out, nil
}

// OpenLog returns a reader of a log's content.
func (s *Storage) OpenLog(name string) (io.ReadCloser, int64, error) {
	b, err := s.Get(name)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

// AppendLog makes the log its first at bytes followed by data. An append
// at the end adds one chunk; one before the end (over a torn frame)
// rewrites the chunk holding offset at and drops those after it.
func (s *Storage) AppendLog(name string, at int64, data []byte) error {
	if err := s.checkWrite("appending to", name); err != nil {
		return err
	}
	if at < 0 {
		return fmt.Errorf("appending to %s: negative offset", name)
	}
	lens, err := s.meta(name)
	if errors.Is(err, fs.ErrNotExist) {
		lens, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("appending to %s: %w", name, err)
	}
	size := sum(lens)
	if len(lens) >= maxChunks {
		old, err := s.Get(name)
		if err != nil {
			return fmt.Errorf("appending to %s: %w", name, err)
		}
		return s.Put(name, appendAt(old, at, data))
	}
	k := len(lens) // the chunk the append writes
	var chunk []byte
	if at >= size {
		chunk = appendAt(nil, at-size, data)
	} else {
		start := int64(0)
		for k = 0; start+int64(lens[k]) <= at; k++ {
			start += int64(lens[k])
		}
		r, err := s.txn(false, []string{storeChunks}, func(tx js.Value) []js.Value {
			return []js.Value{store(tx, storeChunks).Call("get", chunkKey(name, k))}
		})
		if err != nil {
			return fmt.Errorf("appending to %s: %w", name, err)
		}
		if !r[0].InstanceOf(jsUint8Array) || r[0].Length() != lens[k] {
			return fmt.Errorf("indexeddb: object %s: chunk %d is not the size its record says", name, k)
		}
		chunk = make([]byte, at-start, at-start+int64(len(data)))
		js.CopyBytesToGo(chunk, r[0])
		chunk = append(chunk, data...)
	}
	lens = append(lens[:k], len(chunk))
	_, err = s.txn(true, []string{storeMeta, storeChunks}, func(tx js.Value) []js.Value {
		ch := store(tx, storeChunks)
		ch.Call("delete", chunksFrom(name, k))
		ch.Call("put", toJS(chunk), chunkKey(name, k))
		store(tx, storeMeta).Call("put", encodeMeta(lens), name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("appending to %s: %w", name, err)
	}
	return nil
}

// appendAt returns b's first at bytes (zeros where b is shorter) followed
// by data.
func appendAt(b []byte, at int64, data []byte) []byte {
	if int64(len(b)) >= at {
		b = b[:at]
	} else {
		b = append(b, make([]byte, at-int64(len(b)))...)
	}
	return append(b, data...)
}

// Shred overwrites an object's chunks with random bytes in a committed
// transaction, then removes it in another.
func (s *Storage) Shred(name string) error {
	if err := s.checkWrite("shredding", name); err != nil {
		return err
	}
	lens, err := s.meta(name)
	if err != nil {
		return err
	}
	noise := make([][]byte, len(lens))
	for i, l := range lens {
		noise[i] = make([]byte, l)
		if _, err := rand.Read(noise[i]); err != nil {
			return fmt.Errorf("shredding %s: %w", name, err)
		}
	}
	_, err = s.txn(true, []string{storeChunks}, func(tx js.Value) []js.Value {
		ch := store(tx, storeChunks)
		for i, n := range noise {
			ch.Call("put", toJS(n), chunkKey(name, i))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("shredding %s: overwriting: %w", name, err)
	}
	_, err = s.txn(true, []string{storeMeta, storeChunks}, func(tx js.Value) []js.Value {
		store(tx, storeChunks).Call("delete", chunksFrom(name, 0))
		store(tx, storeMeta).Call("delete", name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("shredding %s: removing: %w", name, err)
	}
	return nil
}

// Destroy removes every object and the record that the storage exists, in
// one transaction, and returns how many objects there were.
func (s *Storage) Destroy() (int, error) {
	if s.lock == nil {
		return 0, fmt.Errorf("indexeddb %s: destroying without holding the storage's lock", s.name)
	}
	r, err := s.txn(true, []string{storeMeta, storeChunks, storeSys}, func(tx js.Value) []js.Value {
		count := store(tx, storeMeta).Call("count")
		for _, n := range []string{storeMeta, storeChunks, storeSys} {
			store(tx, n).Call("clear")
		}
		return []js.Value{count}
	})
	if err != nil {
		return 0, fmt.Errorf("destroying device storage %s: %w", s.name, err)
	}
	return r[0].Int(), nil
}

// Close releases the lock and closes the database connection; the handle
// opens it again if used.
func (s *Storage) Close() error {
	err := s.Unlock()
	if !s.db.IsUndefined() {
		s.db.Set("onversionchange", js.Null())
		s.db.Call("close")
		s.db = js.Undefined()
	}
	if s.onVersion.Truthy() {
		s.onVersion.Release()
		s.onVersion = js.Func{}
	}
	return err
}
