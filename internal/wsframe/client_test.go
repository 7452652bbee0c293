package wsframe

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gobwas/ws"
)

// serverFrame builds a server frame with gobwas/ws's own encoder.
func serverFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	var buf bytes.Buffer
	if err := ws.WriteFrame(&buf, ws.Frame{Header: ws.Header{Fin: fin, OpCode: op, Length: int64(len(payload))}, Payload: payload}); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// TestReadServerFrames reads as a client does: unmasked frames only, a
// ping answered, a close echoed and returned with its code and reason.
func TestReadServerFrames(t *testing.T) {
	big := bytes.Repeat([]byte("z"), 10000)
	in := cat(serverFrame(ws.OpBinary, false, big[:5000]), serverFrame(ws.OpPing, true, []byte("hi")),
		serverFrame(ws.OpContinuation, true, big[5000:]), serverFrame(ws.OpText, true, nil),
		serverFrame(ws.OpClose, true, []byte{0x03, 0xf0, 'b', 'y', 'e'}))
	r := &Reader{Pre: in[:1], Conn: bytes.NewReader(in[1:])}
	var ctl []control
	read := func() (ws.OpCode, []byte, error) {
		return r.ReadMessage(1<<20, func(op ws.OpCode, p []byte) error {
			ctl = append(ctl, control{op: op, payload: bytes.Clone(p)})
			return nil
		})
	}
	op, msg, err := read()
	if err != nil || op != ws.OpBinary || !bytes.Equal(msg, big) {
		t.Fatalf("fragmented message: op %d, %d bytes, %v", op, len(msg), err)
	}
	PutBuffer(msg)
	if len(ctl) != 1 || ctl[0].op != ws.OpPong || string(ctl[0].payload) != "hi" {
		t.Fatalf("ping answered with %v", ctl)
	}
	if op, msg, err = read(); err != nil || op != ws.OpText || msg == nil || len(msg) != 0 {
		t.Fatalf("empty message: op %d %q %v", op, msg, err)
	}
	_, _, err = read()
	var ce *CloseError
	if !errors.As(err, &ce) || !errors.Is(err, ErrClosed) || ce.Code != 1008 || ce.Reason != "bye" {
		t.Fatalf("close: %v", err)
	}
	if len(ctl) != 2 || ctl[1].op != ws.OpClose || !bytes.Equal(ctl[1].payload, []byte{0x03, 0xf0}) {
		t.Fatalf("close answered with %v", ctl)
	}

	// A masked server frame is a protocol error.
	r = &Reader{Conn: bytes.NewReader(clientFrame(true, ws.OpBinary, []byte("x"), false))}
	var pe *ProtocolError
	if _, _, err := read(); !errors.As(err, &pe) || !errors.Is(err, ErrProtocol) || pe.Code != ws.StatusProtocolError {
		t.Fatalf("masked server frame: %v", err)
	}
	// So is a message over the limit.
	r = &Reader{Conn: bytes.NewReader([]byte{0x82, 127, 0, 0, 0, 0, 0x01, 0, 0, 0})}
	if _, _, err := read(); !errors.As(err, &pe) || pe.Code != ws.StatusMessageTooBig {
		t.Fatalf("message over the limit: %v", err)
	}
	// An error from the control callback ends the read.
	r = &Reader{Conn: bytes.NewReader(serverFrame(ws.OpPing, true, nil))}
	stop := errors.New("stop")
	if _, _, err := r.ReadMessage(100, func(ws.OpCode, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("control error: %v", err)
	}
}

// TestMaskFrame checks a client frame against gobwas/ws's decoder.
func TestMaskFrame(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 70000} {
		p := bytes.Repeat([]byte{7}, n)
		b := MaskFrame(ws.OpBinary, append(make([]byte, HeaderRoom), p...))
		f, err := ws.ReadFrame(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !f.Header.Fin || f.Header.OpCode != ws.OpBinary || !f.Header.Masked || f.Header.Rsv != 0 {
			t.Fatalf("%d bytes: header %+v", n, f.Header)
		}
		ws.Cipher(f.Payload, f.Header.Mask, 0)
		if !bytes.Equal(f.Payload, p) {
			t.Fatalf("%d bytes: payload differs", n)
		}
		// And the server's reader takes it.
		r := &Reader{Conn: bytes.NewReader(b), FromClient: true}
		if _, msg, err := r.ReadMessage(1<<20, nil); err != nil || !bytes.Equal(msg, p) {
			t.Fatalf("%d bytes: read back %d bytes, %v", n, len(msg), err)
		}
	}
}

// FuzzReadServerFrames reads arbitrary bytes as server frames: errors,
// never panics, and never a message over the limit.
func FuzzReadServerFrames(f *testing.F) {
	f.Add(serverFrame(ws.OpBinary, true, []byte("hello")))
	f.Add(append(serverFrame(ws.OpBinary, false, []byte("hel")), serverFrame(ws.OpContinuation, true, []byte("lo"))...))
	f.Add(append(serverFrame(ws.OpPing, true, []byte("p")), serverFrame(ws.OpBinary, true, bytes.Repeat([]byte("y"), 300))...))
	f.Add(serverFrame(ws.OpClose, true, []byte{0x03, 0xe8}))
	f.Add([]byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 70 << 10
		r := &Reader{Conn: bytes.NewReader(b)}
		for {
			_, msg, err := r.ReadMessage(limit, func(ws.OpCode, []byte) error { return nil })
			if err != nil {
				return // every error ends the connection
			}
			if len(msg) > limit {
				t.Fatalf("message of %d bytes over the limit", len(msg))
			}
			PutBuffer(msg)
		}
	})
}

// benchmarkRead reads 1,200-byte messages, one frame each, from bytes
// already in memory: the framing's own cost per message.
func benchmarkRead(b *testing.B, frame []byte, fromClient bool) {
	in := bytes.Repeat(frame, 1000)
	br := bytes.NewReader(in)
	r := &Reader{Conn: br, FromClient: fromClient}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%1000 == 0 {
			br.Reset(in)
		}
		_, m, err := r.ReadMessage(1<<20, nil)
		if err != nil {
			b.Fatal(err)
		}
		PutBuffer(m)
	}
}

func BenchmarkReadClientFrame(b *testing.B) {
	benchmarkRead(b, clientFrame(true, ws.OpBinary, bytes.Repeat([]byte{1}, 1200), false), true)
}

func BenchmarkReadServerFrame(b *testing.B) {
	benchmarkRead(b, serverFrame(ws.OpBinary, true, bytes.Repeat([]byte{1}, 1200)), false)
}

func BenchmarkMaskFrame(b *testing.B) {
	buf := make([]byte, HeaderRoom+1200)
	b.ReportAllocs()
	for b.Loop() {
		MaskFrame(ws.OpBinary, buf)
	}
}
