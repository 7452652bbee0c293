package loadgen

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"google.golang.org/protobuf/proto"

	"anom/internal/wire"
	anomv1 "anom/proto/anom/v1"
)

// fakeServer is the server end of a net.Pipe: it reads the client's
// frames and writes frames of its own.
type fakeServer struct {
	t  *testing.T
	nc net.Conn
	in chan ws.Frame // the client's frames, unmasked
}

func newFakePair(t *testing.T, h Handlers) (*Conn, *fakeServer) {
	cl, sv := net.Pipe()
	s := &fakeServer{t: t, nc: sv, in: make(chan ws.Frame, 16)}
	go func() {
		defer close(s.in)
		for {
			f, err := ws.ReadFrame(sv)
			if err != nil {
				return
			}
			if !f.Header.Masked {
				t.Errorf("client frame not masked")
			}
			ws.Cipher(f.Payload, f.Header.Mask, 0)
			s.in <- f
		}
	}()
	c := newConn(cl, nil, h)
	t.Cleanup(func() { c.Close(); sv.Close() })
	return c, s
}

func (s *fakeServer) next() ws.Frame {
	s.t.Helper()
	select {
	case f, ok := <-s.in:
		if !ok {
			s.t.Fatal("client connection ended")
		}
		return f
	case <-time.After(5 * time.Second):
		s.t.Fatal("no frame from the client")
	}
	return ws.Frame{}
}

// request reads the client's next frame as a request.
func (s *fakeServer) request() *anomv1.Frame {
	s.t.Helper()
	f := s.next()
	if f.Header.OpCode != ws.OpBinary || !f.Header.Fin {
		s.t.Fatalf("client sent %+v, want one binary frame", f.Header)
	}
	r := &anomv1.Frame{}
	if err := proto.Unmarshal(f.Payload, r); err != nil {
		s.t.Fatal(err)
	}
	return r
}

func (s *fakeServer) write(b []byte) {
	s.t.Helper()
	if _, err := s.nc.Write(b); err != nil {
		s.t.Fatal(err)
	}
}

func (s *fakeServer) send(f *anomv1.Frame) {
	s.t.Helper()
	b, err := proto.Marshal(f)
	if err != nil {
		s.t.Fatal(err)
	}
	s.write(frameBytes(ws.OpBinary, true, b))
}

func frameBytes(op ws.OpCode, fin bool, payload []byte) []byte {
	var buf bytes.Buffer
	if err := ws.WriteFrame(&buf, ws.Frame{Header: ws.Header{Fin: fin, OpCode: op, Length: int64(len(payload))}, Payload: payload}); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func TestSenderAnswers(t *testing.T) {
	c, s := newFakePair(t, Handlers{})
	snd := c.Sender()
	ctx := context.Background()
	type result struct {
		seq uint64
		err error
	}
	res := make(chan result, 1)
	send := func(rec []byte) {
		go func() {
			seq, err := snd.Send(ctx, []byte("grp"), []byte("msg"), rec)
			res <- result{seq, err}
		}()
	}

	send(nil)
	r := s.request()
	if sd := r.GetSend(); sd == nil || string(sd.GroupId) != "grp" || string(sd.Message) != "msg" || sd.EscrowRecord != nil {
		t.Fatalf("request %v", r)
	}
	s.send(&anomv1.Frame{Id: r.Id, Body: &anomv1.Frame_Sent{Sent: &anomv1.Sent{Seq: 41}}})
	if got := <-res; got.err != nil || got.seq != 41 {
		t.Fatalf("Send = %d, %v; want 41", got.seq, got.err)
	}

	send([]byte("record"))
	r = s.request()
	if string(r.GetSend().GetEscrowRecord()) != "record" {
		t.Fatalf("escrow record not sent: %v", r)
	}
	s.send(&anomv1.Frame{Id: r.Id, Body: &anomv1.Frame_Error{Error: &anomv1.Error{Code: anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD, Message: "bad"}}})
	var se *ServerError
	if got := <-res; !errors.As(got.err, &se) || se.Code != anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD {
		t.Fatalf("Send error %v, want ESCROW_RECORD", got.err)
	}

	// An abandoned request's late answer does not reach the next one.
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		_, err := snd.Send(cctx, []byte("grp"), []byte("msg"), nil)
		res <- result{err: err}
	}()
	late := s.request()
	cancel()
	if got := <-res; !errors.Is(got.err, context.Canceled) {
		t.Fatalf("abandoned Send: %v", got.err)
	}
	s.send(&anomv1.Frame{Id: late.Id, Body: &anomv1.Frame_Sent{Sent: &anomv1.Sent{Seq: 1}}})
	send(nil)
	r = s.request()
	s.send(&anomv1.Frame{Id: r.Id, Body: &anomv1.Frame_Sent{Sent: &anomv1.Sent{Seq: 2}}})
	if got := <-res; got.err != nil || got.seq != 2 {
		t.Fatalf("Send after an abandoned one = %d, %v; want 2", got.seq, got.err)
	}

	// Call still works on the same connection.
	go func() {
		r := s.request()
		s.send(&anomv1.Frame{Id: r.Id, Body: &anomv1.Frame_Ok{Ok: &anomv1.Ok{}}})
	}()
	if a, err := c.Call(ctx, &anomv1.Frame{Body: &anomv1.Frame_ListGroups{ListGroups: &anomv1.ListGroups{}}}); err != nil || a.GetOk() == nil {
		t.Fatalf("Call = %v, %v", a, err)
	}
}

func TestPushHandlers(t *testing.T) {
	type got struct {
		group string
		msgs  []string
	}
	pushes := make(chan got, 4)
	frames := make(chan *anomv1.Frame, 4)
	c, s := newFakePair(t, Handlers{
		Messages: func(p *Pushed) {
			g := got{group: string(p.GroupID)}
			for _, m := range p.Messages {
				g.msgs = append(g.msgs, string(m.Message))
			}
			pushes <- g
		},
		Frame: func(f *anomv1.Frame) { frames <- f },
	})
	s.send(&anomv1.Frame{Body: &anomv1.Frame_PushMessages{PushMessages: &anomv1.Messages{GroupId: []byte("g1"),
		Messages: []*anomv1.GroupMessage{{Seq: 1, Message: []byte("a")}, {Seq: 2, Message: []byte("b")}}}}})
	if p := <-pushes; p.group != "g1" || len(p.msgs) != 2 || p.msgs[0] != "a" || p.msgs[1] != "b" {
		t.Errorf("push %+v", p)
	}
	// A push the fast reader leaves to proto.Unmarshal (its body twice,
	// which proto merges) still reaches the Messages handler.
	one, _ := proto.Marshal(&anomv1.Frame{Body: &anomv1.Frame_PushMessages{PushMessages: &anomv1.Messages{GroupId: []byte("g3"),
		Messages: []*anomv1.GroupMessage{{Message: []byte("c")}}}}})
	two, _ := proto.Marshal(&anomv1.Frame{Body: &anomv1.Frame_PushMessages{PushMessages: &anomv1.Messages{
		Messages: []*anomv1.GroupMessage{{Message: []byte("d")}}}}})
	if _, ok := wire.ViewFrame(append(one, two...)); ok {
		t.Fatal("the fast reader took a frame with its body twice")
	}
	s.write(frameBytes(ws.OpBinary, true, append(one, two...)))
	if p := <-pushes; p.group != "g3" || len(p.msgs) != 2 || p.msgs[0] != "c" || p.msgs[1] != "d" {
		t.Errorf("merged push %+v", p)
	}
	s.send(&anomv1.Frame{Body: &anomv1.Frame_PushDeviceAdded{PushDeviceAdded: &anomv1.DeviceAdded{}}})
	if f := <-frames; f.GetPushDeviceAdded() == nil {
		t.Errorf("frame handler got %v", f)
	}
	// A fragmented message with a ping between its frames: the ping is
	// answered and the message put together.
	b, _ := proto.Marshal(&anomv1.Frame{Body: &anomv1.Frame_PushMessages{PushMessages: &anomv1.Messages{GroupId: []byte("g2"),
		Messages: []*anomv1.GroupMessage{{Message: bytes.Repeat([]byte("z"), 10000)}}}}})
	s.write(frameBytes(ws.OpBinary, false, b[:5000]))
	s.write(frameBytes(ws.OpPing, true, []byte("hi")))
	if f := s.next(); f.Header.OpCode != ws.OpPong || string(f.Payload) != "hi" {
		t.Errorf("ping answered with %+v %q", f.Header, f.Payload)
	}
	s.write(frameBytes(ws.OpContinuation, true, b[5000:]))
	if p := <-pushes; p.group != "g2" || len(p.msgs) != 1 || len(p.msgs[0]) != 10000 {
		t.Errorf("fragmented push: group %q, %d messages", p.group, len(p.msgs))
	}
	// A disconnect push ends the connection with its code.
	s.send(&anomv1.Frame{Body: &anomv1.Frame_PushDisconnect{PushDisconnect: &anomv1.Disconnect{Code: anomv1.ErrorCode_ERROR_CODE_REVOKED}}})
	<-c.Done()
	var se *ServerError
	if !errors.As(c.Err(), &se) || se.Code != anomv1.ErrorCode_ERROR_CODE_REVOKED {
		t.Errorf("connection ended with %v, want REVOKED", c.Err())
	}
	if _, err := c.Sender().Send(context.Background(), nil, []byte("m"), nil); err == nil {
		t.Error("Send on an ended connection succeeded")
	}
}

func TestConnEnds(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		check func(error) bool
	}{
		{"close frame", frameBytes(ws.OpClose, true, []byte{0x03, 0xf0, 'b', 'y', 'e'}), func(err error) bool {
			var ce *CloseError
			return errors.As(err, &ce) && ce.Code == 1008 && ce.Reason == "bye"
		}},
		{"masked frame", func() []byte {
			var buf bytes.Buffer
			ws.WriteFrame(&buf, ws.MaskFrame(ws.NewBinaryFrame([]byte("x"))))
			return buf.Bytes()
		}(), func(err error) bool { return errors.Is(err, errProtocol) }},
		{"continuation first", frameBytes(ws.OpContinuation, true, []byte("x")), func(err error) bool { return errors.Is(err, errProtocol) }},
		{"over the limit", []byte{0x82, 127, 0, 0, 0, 0, 0x01, 0, 0, 0}, func(err error) bool { return errors.Is(err, errProtocol) }},
		{"bad frame", []byte{0x82, 3, 0xff, 0xff, 0xff}, func(err error) bool { return err != nil && !errors.Is(err, errProtocol) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := newFakePair(t, Handlers{})
			go s.nc.Write(tt.frame)
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("connection did not end")
			}
			if !tt.check(c.Err()) {
				t.Errorf("ended with %v", c.Err())
			}
		})
	}
}

// discardConn is a net.Conn whose writes go nowhere.
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error)      { return len(b), nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) Close() error                     { return nil }

// BenchmarkDispatchPush is the reading side's work per push once its
// bytes are in: routing it and reading its messages, without allocating.
func BenchmarkDispatchPush(b *testing.B) {
	// The push of wire's tests and benchmarks: two messages, one an
	// escrowed application message, one a commit with a Welcome.
	push, err := proto.Marshal(&anomv1.Frame{Body: &anomv1.Frame_PushMessages{PushMessages: &anomv1.Messages{
		GroupId: []byte("group"), Last: 9,
		Messages: []*anomv1.GroupMessage{
			{Seq: 8, TimeMs: 1700000000000, SenderDevice: []byte("dev-a"), Message: bytes.Repeat([]byte{3}, 200), Epoch: 4, EscrowRecord: []byte("rec")},
			{Seq: 9, TimeMs: -5, Message: []byte("commit"), Welcome: []byte("welcome"), AddedDevices: [][]byte{[]byte("x"), []byte("y")}, Epoch: 5},
		},
	}}})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	c := &Conn{handlers: Handlers{Messages: func(p *Pushed) { n += len(p.Messages) }}}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.dispatch(push); err != nil {
			b.Fatal(err)
		}
	}
	if n == 0 {
		b.Fatal("no messages")
	}
}

// BenchmarkSendFrame is the sending side's work per message before the
// TLS write: encoding the Send, the WebSocket header and the mask.
func BenchmarkSendFrame(b *testing.B) {
	c := &Conn{nc: discardConn{}, waiting: map[uint64]waiter{}}
	group, msg := []byte("group-0123456789"), bytes.Repeat([]byte{1}, 1100)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = wire.AppendSendFrame(append(buf[:0], make([]byte, ws.MaxHeaderSize)...), c.nextID.Add(1), group, msg, nil)
		if err := c.writeMessage(ws.OpBinary, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSchedule: the scheduled times are 1/rate apart from the start, and
// a sender more than a second behind finds at most a second of them, the
// rest dropped.
func TestSchedule(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const rate = 500
	tokens := Schedule(ctx, rate)
	first := <-tokens
	for i := 1; i < 50; i++ {
		at := <-tokens
		if want := first.Add(time.Duration(i) * time.Second / rate); !at.Equal(want) {
			t.Fatalf("send %d scheduled at +%v, want +%v", i, at.Sub(first), want.Sub(first))
		}
	}
	time.Sleep(1600 * time.Millisecond) // fall behind
	if n := len(tokens); n != rate {
		t.Fatalf("%d scheduled sends waiting after falling behind, want a second's worth (%d)", n, rate)
	}
	cancel()
}
