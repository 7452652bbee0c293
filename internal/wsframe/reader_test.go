package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/gobwas/ws"
)

// clientFrame builds a client frame (masked unless unmasked is set).
func clientFrame(fin bool, op ws.OpCode, payload []byte, unmasked bool) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	mbit := byte(0x80)
	if unmasked {
		mbit = 0
	}
	n := len(payload)
	switch {
	case n < 126:
		out = append(out, mbit|byte(n))
	case n <= 0xffff:
		out = append(out, mbit|126, byte(n>>8), byte(n))
	default:
		out = append(out, mbit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	p := bytes.Clone(payload)
	if !unmasked {
		mask := [4]byte{0x12, 0x34, 0x56, 0x78}
		out = append(out, mask[:]...)
		ws.Cipher(p, mask, 0)
	}
	return append(out, p...)
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

// control is a control frame the reader asked to send.
type control struct {
	op      ws.OpCode
	payload []byte
}

func TestReadMessage(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70000)
	tests := []struct {
		name    string
		in      []byte
		max     int
		wantOp  ws.OpCode
		want    []byte
		wantCtl []control
		wantErr error // matched with errors.Is; nil: a message
		wantWS  ws.StatusCode
	}{
		{name: "binary", in: clientFrame(true, ws.OpBinary, []byte("hello"), false), wantOp: ws.OpBinary, want: []byte("hello")},
		{name: "empty binary", in: clientFrame(true, ws.OpBinary, nil, false), wantOp: ws.OpBinary, want: []byte{}},
		{name: "16-bit length", in: clientFrame(true, ws.OpBinary, big[:300], false), wantOp: ws.OpBinary, want: big[:300]},
		{name: "64-bit length", in: clientFrame(true, ws.OpBinary, big, false), max: 1 << 20, wantOp: ws.OpBinary, want: big},
		{name: "text", in: clientFrame(true, ws.OpText, []byte("hi"), false), wantOp: ws.OpText, want: []byte("hi")},
		{
			name: "fragmented with a ping inside",
			in: cat(clientFrame(false, ws.OpBinary, []byte("ab"), false), clientFrame(true, ws.OpPing, []byte("p"), false),
				clientFrame(false, ws.OpContinuation, []byte("cd"), false), clientFrame(true, ws.OpContinuation, []byte("e"), false)),
			wantOp: ws.OpBinary, want: []byte("abcde"), wantCtl: []control{{op: ws.OpPong, payload: []byte("p")}},
		},
		{name: "pong ignored", in: cat(clientFrame(true, ws.OpPong, nil, false), clientFrame(true, ws.OpBinary, []byte("x"), false)), wantOp: ws.OpBinary, want: []byte("x")},
		{name: "close", in: clientFrame(true, ws.OpClose, CloseBody(ws.StatusGoingAway), false), wantErr: ErrClosed, wantCtl: []control{{op: ws.OpClose, payload: CloseBody(ws.StatusGoingAway)}}},
		{name: "close without code", in: clientFrame(true, ws.OpClose, nil, false), wantErr: ErrClosed, wantCtl: []control{{op: ws.OpClose, payload: CloseBody(ws.StatusNormalClosure)}}},
		{name: "close with a reserved code", in: clientFrame(true, ws.OpClose, CloseBody(1005), false), wantErr: ErrClosed, wantCtl: []control{{op: ws.OpClose, payload: CloseBody(ws.StatusProtocolError)}}},
		{name: "unmasked", in: clientFrame(true, ws.OpBinary, []byte("x"), true), wantWS: ws.StatusProtocolError},
		{name: "reserved bits", in: func() []byte { b := clientFrame(true, ws.OpBinary, []byte("x"), false); b[0] |= 0x40; return b }(), wantWS: ws.StatusProtocolError},
		{name: "reserved opcode", in: clientFrame(true, 3, []byte("x"), false), wantWS: ws.StatusProtocolError},
		{name: "reserved control opcode", in: clientFrame(true, 0xb, nil, false), wantWS: ws.StatusProtocolError},
		{name: "continuation first", in: clientFrame(true, ws.OpContinuation, []byte("x"), false), wantWS: ws.StatusProtocolError},
		{name: "message inside a message", in: cat(clientFrame(false, ws.OpBinary, []byte("a"), false), clientFrame(true, ws.OpBinary, []byte("b"), false)), wantWS: ws.StatusProtocolError},
		{name: "fragmented control", in: clientFrame(false, ws.OpPing, nil, false), wantWS: ws.StatusProtocolError},
		{name: "oversized control", in: clientFrame(true, ws.OpPing, big[:126], false), wantWS: ws.StatusProtocolError},
		{name: "too big", in: clientFrame(true, ws.OpBinary, big[:101], false), max: 100, wantWS: ws.StatusMessageTooBig},
		{name: "too big across fragments", in: cat(clientFrame(false, ws.OpBinary, big[:60], false), clientFrame(true, ws.OpContinuation, big[:60], false)), max: 100, wantWS: ws.StatusMessageTooBig},
		{name: "length MSB", in: []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}, wantWS: ws.StatusProtocolError},
		{name: "truncated payload", in: clientFrame(true, ws.OpBinary, []byte("hello"), false)[:8], wantErr: io.ErrUnexpectedEOF},
		{name: "nothing", in: nil, wantErr: io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = 1024
			}
			// The first bytes arrive as if net/http had buffered them.
			split := min(3, len(tc.in))
			r := &Reader{Pre: tc.in[:split], Conn: bytes.NewReader(tc.in[split:]), FromClient: true}
			var ctl []control
			op, got, err := r.ReadMessage(max, func(op ws.OpCode, p []byte) error {
				ctl = append(ctl, control{op: op, payload: bytes.Clone(p)})
				return nil
			})
			var we *ProtocolError
			switch {
			case tc.wantWS != 0:
				if !errors.As(err, &we) || we.Code != tc.wantWS {
					t.Fatalf("error %v, want close code %d", err, tc.wantWS)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if op != tc.wantOp || !bytes.Equal(got, tc.want) || got == nil {
					t.Fatalf("got op %d %q, want op %d %q", op, got, tc.wantOp, tc.want)
				}
			}
			if len(ctl) != len(tc.wantCtl) {
				t.Fatalf("control answers %v, want %v", ctl, tc.wantCtl)
			}
			for i := range ctl {
				if ctl[i].op != tc.wantCtl[i].op || !bytes.Equal(ctl[i].payload, tc.wantCtl[i].payload) {
					t.Fatalf("control answer %d: %v, want %v", i, ctl[i], tc.wantCtl[i])
				}
			}
		})
	}
}

func TestAppendFrame(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		p := bytes.Repeat([]byte{7}, n)
		b := AppendFrame([]byte("prefix"), ws.OpBinary, p)
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Fatal("prefix lost")
		}
		r := bytes.NewReader(b[len("prefix"):])
		h, err := ws.ReadHeader(r)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !h.Fin || h.OpCode != ws.OpBinary || h.Masked || h.Length != int64(n) || h.Rsv != 0 {
			t.Fatalf("%d bytes: header %+v", n, h)
		}
		if r.Len() != n {
			t.Fatalf("%d bytes: %d left after the header", n, r.Len())
		}
	}
}

// FuzzReadMessage feeds arbitrary bytes to the frame reader: it must
// return messages within the limit or an error, never panic or loop.
func FuzzReadMessage(f *testing.F) {
	f.Add(clientFrame(true, ws.OpBinary, []byte("hello"), false))
	f.Add(cat(clientFrame(false, ws.OpText, []byte("ab"), false), clientFrame(true, ws.OpPing, []byte("p"), false), clientFrame(true, ws.OpContinuation, []byte("c"), false)))
	f.Add(clientFrame(true, ws.OpClose, CloseBody(ws.StatusNormalClosure), false))
	f.Add(clientFrame(true, ws.OpBinary, bytes.Repeat([]byte("y"), 300), false))
	f.Add(clientFrame(true, ws.OpBinary, []byte("x"), true))
	f.Add([]byte{0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 4096
		r := &Reader{Conn: bytes.NewReader(data), FromClient: true}
		for range len(data) + 1 {
			op, msg, err := r.ReadMessage(max, func(ws.OpCode, []byte) error { return nil })
			if err != nil {
				return
			}
			if len(msg) > max || (op != ws.OpBinary && op != ws.OpText) {
				t.Fatalf("message of %d bytes, op %d", len(msg), op)
			}
		}
		t.Fatal("more messages than input bytes")
	})
}
