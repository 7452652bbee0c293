package server

import (
	"bytes"
	"crypto/tls"
	"net"
	"reflect"
	"sync"
	"unsafe"
)

// Releasing an idle TLS connection's read buffers.
//
// A crypto/tls.Conn keeps the buffers it reads records into for as long
// as it lives and never shrinks them (Go issue 43563): the raw input
// buffer, sized by the largest record read, and the handshake buffer.
// Both are sized by the client's hello, which with a post-quantum key
// share (X25519MLKEM768) is about 1.7 KB: 2 KiB and 1.5 KiB of heap per
// connection, about half of what an idle authenticated session costs. No
// API frees them, so releaseTLSBuffers resets them, when they hold no
// data, to the zero values the connection started with; the next read
// allocates what it needs again.
//
// This reaches into unexported fields of tls.Conn. tlsBuffers finds them
// by name and type when the package loads, and if this Go release lays
// tls.Conn out differently (no such fields, or other types) releasing is
// off and connections keep their buffers, as before; a test fails then so
// that the change is noticed (TestTLSBufferLayout). The fields are
// touched only under the connection's read lock (the mutex embedded in
// its input half, which every Read holds), and only when the buffers are
// empty, so no data can be lost.

// tlsBufferLayout is where the read state lies inside a tls.Conn.
type tlsBufferLayout struct {
	ok                   bool
	in                   uintptr // halfConn, whose first field is its sync.Mutex
	rawInput, input, hnd uintptr
}

var tlsBuffers = findTLSBuffers()

func findTLSBuffers() tlsBufferLayout {
	t := reflect.TypeFor[tls.Conn]()
	field := func(name string, want reflect.Type) (uintptr, bool) {
		f, ok := t.FieldByName(name)
		if !ok || len(f.Index) != 1 || (want != nil && f.Type != want) {
			return 0, false
		}
		return f.Offset, true
	}
	var l tlsBufferLayout
	var ok [4]bool
	l.rawInput, ok[0] = field("rawInput", reflect.TypeFor[bytes.Buffer]())
	l.input, ok[1] = field("input", reflect.TypeFor[bytes.Reader]())
	l.hnd, ok[2] = field("hand", reflect.TypeFor[bytes.Buffer]())
	l.in, ok[3] = field("in", nil)
	if ok != [4]bool{true, true, true, true} {
		return tlsBufferLayout{}
	}
	in, _ := t.FieldByName("in")
	if in.Type.Kind() != reflect.Struct || in.Type.NumField() == 0 {
		return tlsBufferLayout{}
	}
	mu := in.Type.Field(0)
	if !mu.Anonymous || mu.Offset != 0 || mu.Type != reflect.TypeFor[sync.Mutex]() {
		return tlsBufferLayout{}
	}
	l.ok = true
	return l
}

// releaseTLSBuffers frees the read buffers of a TLS connection that has
// nothing buffered; it reports whether it did. Other connections are left
// alone. Call it after the handshake, when the connection goes idle.
func releaseTLSBuffers(conn net.Conn) bool {
	tc, ok := conn.(*tls.Conn)
	if !ok || !tlsBuffers.ok {
		return false
	}
	p := unsafe.Pointer(tc)
	mu := (*sync.Mutex)(unsafe.Add(p, tlsBuffers.in))
	raw := (*bytes.Buffer)(unsafe.Add(p, tlsBuffers.rawInput))
	input := (*bytes.Reader)(unsafe.Add(p, tlsBuffers.input))
	hand := (*bytes.Buffer)(unsafe.Add(p, tlsBuffers.hnd))
	mu.Lock()
	defer mu.Unlock()
	if raw.Len() != 0 || input.Len() != 0 || hand.Len() != 0 {
		return false
	}
	*raw, *input, *hand = bytes.Buffer{}, bytes.Reader{}, bytes.Buffer{}
	return true
}
