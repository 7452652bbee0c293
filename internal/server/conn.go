package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"google.golang.org/protobuf/proto"

	"anom/identity"
	anomv1 "anom/proto/anom/v1"
)

// session is one WebSocket connection.
//
// An idle session has no goroutine: on Linux one poller goroutine waits
// for any connection to become readable (epoll), and a readable session
// gets a goroutine that reads the messages that have arrived and ends
// (elsewhere a session reads on a goroutine of its own). Going back to
// the poller it also lets go of its TLS read buffers (tlsmem.go) and,
// once its requests are answered, of its device's rate limits, so an
// idle authenticated session costs about 4 KiB of heap, three quarters
// of it the TLS connection's. The reading
// goroutine decodes each message in arrival order, handles authentication
// itself (before the next frame is read), and hands every other request
// to the lane of the group it concerns (Send, Fetch, Ack, SetGroupTimer,
// CreateGroup) or to the session's general lane. A lane is a goroutine
// that exists while it has requests and runs them one at a time, in
// order, so a device's messages to a group keep their order; different
// lanes run concurrently, so a device's sends to several groups share the
// store's grouped commits. Answers carry the request id and may come out
// of order across lanes. At most maxInFlight requests are read ahead of
// their answers; then reading waits. Frames queued for the client are
// written in batches: by the goroutine that queues an answer when no write
// is under way, else by a writer goroutine started only while frames wait.
type session struct {
	s      *Server
	conn   net.Conn // nil in fuzz tests
	rd     wsReader
	ctx    context.Context
	cancel context.CancelFunc

	// Readiness polling (see poller).
	pollID int32
	raw    syscall.RawConn
	peek   [1]byte
	// arms counts armings: the atomic publishes the reading goroutine's
	// writes to the next one (the kernel orders them too, but the race
	// detector cannot see that).
	arms atomic.Uint32

	inMu     sync.Mutex
	lanes    map[string]*lane // lanes with work
	inflight int              // requests read and not yet answered
	inRoom   chan struct{}    // closed when inflight drops, if the reader waits
	closed   bool             // no more requests are taken
	parked   bool             // the reader waits for the poller
	work     sync.WaitGroup   // requests read and not yet finished

	wmu     sync.Mutex // serialises writes to conn
	wdl     int64      // write deadline set on conn, Unix ns; guarded by wmu
	outMu   sync.Mutex
	out     [][]byte      // frames waiting to be written
	writing bool          // a writer goroutine is running
	outDone bool          // the session is closing: nothing more is queued
	room    chan struct{} // closed when the queue drains, if a sender waits

	challenge []byte // set by Hello
	// preauthHead: the session fetched its one tree head before
	// authenticating (dispatch).
	preauthHead atomic.Bool
	// preauthPairing: the session published its one pairing request
	// before authenticating (pairing.go).
	preauthPairing atomic.Bool
	authTimer      *time.Timer // until authenticated; used by the reading goroutine
	// src is the source address the pre-authentication limits count
	// the session under; preauth says it holds a place among the
	// unauthenticated sessions (given back when it authenticates or
	// closes).
	src     netip.Addr
	preauth atomic.Bool

	authed atomic.Bool
	device identity.DeviceID
	devHex string
	cert   *identity.DeviceCertificate
	// limiter is the device's rate limits, held while requests are
	// read and unanswered (guarded by inMu: set when a request is
	// queued, dropped when the session goes idle or has closed).
	limiter *deviceLimiter

	// closeAfterAnswer makes the general lane close the session once the
	// current answer is written (a wiped device is revoked).
	closeAfterAnswer bool

	closeOnce sync.Once
}

func (s *Server) newSession(conn net.Conn) *session {
	// Not derived from the server's context (which would keep an entry
	// per session): shutdown closes every session, which cancels it.
	ctx, cancel := context.WithCancel(context.Background())
	c := &session{s: s, conn: conn, ctx: ctx, cancel: cancel}
	c.rd.Conn, c.rd.FromClient = conn, true
	return c
}

// serveWS upgrades to a WebSocket and runs the session until it ends.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.closing:
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	default:
	}
	src := sourceOf(r.RemoteAddr)
	if !s.preauth.acquire(src) {
		s.metrics.preauthRefused.Inc()
		total, bySource := s.preauth.counts(src)
		s.log.Debug("refusing an unauthenticated session", "source", sourceString(src), "unauthenticated", total, "from_source", bySource)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many unauthenticated connections", http.StatusServiceUnavailable)
		return
	}
	conn, pre, err := upgrade(w, r)
	if err != nil {
		s.preauth.release(src)
		s.log.Debug("websocket upgrade failed", "err", err)
		return // the upgrade has answered
	}
	c := s.newSession(conn)
	c.rd.Pre = pre
	c.src = src
	c.preauth.Store(true)
	if !s.hub.track(c) {
		c.releasePreauth()
		conn.Close()
		return
	}
	s.metrics.connections.Inc()
	c.authTimer = time.AfterFunc(s.limits.AuthTimeout, func() {
		if !c.authed.Load() {
			c.kick(anomv1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "authentication timeout")
		}
	})
	// The HTTP handler returns so that the request's state is freed: a
	// connection mostly sits idle for hours.
	if p := s.hub.poller(s.log); p != nil && len(pre) == 0 {
		if err := p.add(c); err == nil {
			return
		}
	}
	go c.readLoop()
}

// releasePreauth gives back the session's place among the
// unauthenticated sessions, if it holds one.
func (c *session) releasePreauth() {
	if c.preauth.CompareAndSwap(true, false) {
		c.s.preauth.release(c.src)
	}
}

// frameLimit is the largest message the session may send next: small
// until it has authenticated (authentication is handled before the next
// message is read, so the limit in force is always the right one).
func (c *session) frameLimit() int {
	if c.authed.Load() {
		return c.s.limits.MaxFrameSize
	}
	return c.s.limits.MaxPreAuthFrameSize
}

// readLoop reads and queues messages until the connection fails or
// closes (a session without the poller).
func (c *session) readLoop() {
	for {
		op, data, err := c.rd.ReadMessage(c.frameLimit(), c.control)
		if err != nil {
			c.endRead(err)
			return
		}
		if !c.deliver(op, data) {
			c.endRead(c.ctx.Err())
			return
		}
	}
}

// readReady reads what a readable connection has (whole messages, even
// if that means waiting for the rest of one), then re-arms the poller.
func (c *session) readReady() {
	c.arms.Load()
	for {
		op, data, err := c.rd.ReadMessage(c.frameLimit(), c.control)
		if err != nil {
			c.endRead(err)
			return
		}
		if !c.deliver(op, data) {
			c.endRead(c.ctx.Err())
			return
		}
		more, err := c.buffered()
		if err != nil {
			c.endRead(err)
			return
		}
		if !more {
			break
		}
	}
	// Idle until the poller wakes it: the TLS layer's read buffers
	// (empty now) are freed rather than held for hours, and so are the
	// rate limits once every request is answered.
	releaseTLSBuffers(c.conn)
	c.park()
	c.arms.Add(1)
	if err := c.s.hub.poll.arm(c); err != nil {
		c.endRead(err)
	}
}

// longAgo is a deadline in the past: a read with it only returns what is
// buffered already.
var longAgo = time.Unix(1, 0)

// buffered says whether more of the client's data is buffered above the
// socket (the TLS layer may have read a record ahead), where readiness
// polling would not see it. It reads at most one byte, kept for the next
// read.
func (c *session) buffered() (bool, error) {
	if len(c.rd.Pre) > 0 {
		return true, nil
	}
	if err := c.conn.SetReadDeadline(longAgo); err != nil {
		return false, err
	}
	n, err := c.conn.Read(c.peek[:])
	if derr := c.conn.SetReadDeadline(time.Time{}); derr != nil {
		return false, derr
	}
	if n > 0 {
		c.rd.Pre = c.peek[:n]
		return true, nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return false, nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return false, err
}

// endRead closes the session after reading stopped with err.
func (c *session) endRead(err error) {
	var we *wsError
	switch {
	case errors.As(err, &we):
		c.close(we.Code, we.Msg)
	case errors.Is(err, errWSClosed):
		c.close(ws.StatusNormalClosure, "")
	default:
		c.close(ws.StatusGoingAway, "")
	}
}

// deliver takes a message for handling, waiting while too many requests
// are unanswered; false if the session is closed. The message is decoded
// here, in arrival order, and handed to its lane; authentication is
// handled here, before the next frame is read.
func (c *session) deliver(op ws.OpCode, data []byte) bool {
	if !c.waitInRoom() {
		return false
	}
	c.inMu.Lock()
	if c.closed {
		c.inMu.Unlock()
		return false
	}
	c.work.Add(1)
	c.inflight++
	c.parked = false
	c.inMu.Unlock()
	if op == ws.OpText {
		putReadBuf(data)
		c.answer(errorFrame(0, errorf(anomv1.ErrorCode_ERROR_CODE_BAD_FRAME, "text message; frames are binary")))
		return true
	}
	f, bad := c.decode(data)
	putReadBuf(data) // decoding copies what it keeps
	if bad != nil {
		c.answer(bad)
		return true
	}
	key, ok := laneKey(f)
	if !ok || !c.authed.Load() {
		c.answer(c.handle(c.ctx, f))
		if c.authTimer != nil && c.authed.Load() {
			// Freed now rather than when it would fire.
			c.authTimer.Stop()
			c.authTimer = nil
		}
		return true
	}
	c.inMu.Lock()
	if c.limiter == nil {
		c.limiter = c.s.rates.acquire(c.device)
	}
	l := c.lanes[key]
	if l == nil {
		if c.lanes == nil {
			c.lanes = map[string]*lane{}
		}
		l = &lane{}
		c.lanes[key] = l
		go c.laneLoop(key, l)
	}
	l.q = append(l.q, f)
	c.inMu.Unlock()
	return true
}

// answer queues a request's answer and marks the request finished.
func (c *session) answer(resp *anomv1.Frame) {
	if resp != nil {
		c.sendWait(resp)
	}
	c.finished()
}

// closeWith writes a last answer, then closes the session.
func (c *session) closeWith(resp *anomv1.Frame) {
	if b, err := proto.Marshal(resp); err == nil {
		c.writeDirect(ws.OpBinary, b, time.Second)
	}
	c.kick(anomv1.ErrorCode_ERROR_CODE_REVOKED, "device revoked")
}

// control answers a control frame (pong, close reply) at once.
func (c *session) control(op ws.OpCode, payload []byte) error {
	c.writeDirect(op, payload, time.Second)
	return nil
}

// writeDirect writes one frame now, outside the queue (a close, a pong,
// a last word before the connection is cut).
func (c *session) writeDirect(op ws.OpCode, b []byte, timeout time.Duration) {
	if c.conn == nil {
		return
	}
	deadline := time.Now().Add(timeout)
	// A batch to a client that does not read can hold the connection
	// for up to its write timeout; a frame written directly (a
	// disconnect before a revocation cuts the session, say) does not
	// wait that long: after its own timeout it is dropped.
	for !c.wmu.TryLock() {
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(time.Millisecond)
	}
	bp := writeBufs.Get().(*[]byte)
	buf := appendFrame((*bp)[:0], op, b)
	_ = c.conn.SetWriteDeadline(deadline)
	c.wdl = deadline.UnixNano()
	_, _ = c.conn.Write(buf)
	c.wmu.Unlock()
	putWriteBuf(bp, buf)
}

func putWriteBuf(bp *[]byte, buf []byte) {
	if cap(buf) > writeBufSize+64 {
		return // grown for a large frame: let it go
	}
	*bp = buf[:0]
	writeBufs.Put(bp)
}

// A batch to a client that does not read fails after writeTimeout at
// most, and after writeTimeout-deadlineSlack at least (see writeBatch).
const (
	writeTimeout  = 10 * time.Second
	deadlineSlack = time.Second
)

// writeLoop writes queued frames until the queue is empty, then ends.
// Everything queued when it looks is written as one batch: one TLS record
// and one system call per writeBufSize bytes.
func (c *session) writeLoop() {
	var batch [][]byte
	for {
		c.outMu.Lock()
		if len(c.out) == 0 || c.outDone {
			c.writing = false
			c.out = nil
			if c.room != nil {
				close(c.room)
				c.room = nil
			}
			c.outMu.Unlock()
			return
		}
		batch, c.out = c.out, batch[:0]
		if c.room != nil {
			close(c.room)
			c.room = nil
		}
		c.outMu.Unlock()
		if err := c.writeBatch(batch); err != nil {
			c.close(ws.StatusGoingAway, "write failed")
			c.outMu.Lock()
			c.writing, c.out = false, nil
			if c.room != nil {
				close(c.room)
				c.room = nil
			}
			c.outMu.Unlock()
			return
		}
		clear(batch)
	}
}

func (c *session) writeBatch(batch [][]byte) error {
	bp := writeBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// Renewing the deadline costs more than a small write (a timer is
	// reset): it is renewed only when less than writeTimeout-deadlineSlack
	// is left, so a batch has at least that long.
	if now := time.Now(); c.wdl < now.Add(writeTimeout-deadlineSlack).UnixNano() {
		d := now.Add(writeTimeout)
		if err := c.conn.SetWriteDeadline(d); err != nil {
			return err
		}
		c.wdl = d.UnixNano()
	}
	for _, b := range batch {
		if len(buf) > 0 && len(buf)+len(b)+ws.MaxHeaderSize > writeBufSize {
			if _, err := c.conn.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		buf = appendFrame(buf, ws.OpBinary, b)
	}
	var err error
	if len(buf) > 0 {
		_, err = c.conn.Write(buf)
	}
	putWriteBuf(bp, buf)
	return err
}

// enqueue adds a frame to the send queue, starting the writer if needed.
// Called with outMu held.
func (c *session) enqueue(b []byte) {
	c.out = append(c.out, b)
	if !c.writing && c.conn != nil {
		c.writing = true
		c.startWriter()
	}
}

// sendWait queues a response, waiting for room: responses are never
// dropped, and a client that does not read stops being read. If no write
// is under way, the calling goroutine writes the queue itself, saving a
// hand-off to a writer goroutine.
func (c *session) sendWait(f *anomv1.Frame) bool {
	b, err := proto.Marshal(f)
	if err != nil {
		c.s.log.Error("encoding frame", "err", err)
		return false
	}
	for {
		c.outMu.Lock()
		if c.outDone {
			c.outMu.Unlock()
			return false
		}
		if !c.writing && c.conn != nil {
			c.out = append(c.out, b)
			c.writing = true
			c.outMu.Unlock()
			c.writeLoop()
			return true
		}
		if len(c.out) < c.s.limits.SendQueue {
			c.enqueue(b)
			c.outMu.Unlock()
			return true
		}
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		c.outMu.Unlock()
		select {
		case <-room:
		case <-c.ctx.Done():
			return false
		}
	}
}

// push queues a server push without waiting; a session whose queue is full
// is closed (it catches up from its cursor when it reconnects).
func (c *session) push(b []byte) {
	c.outMu.Lock()
	if c.outDone {
		c.outMu.Unlock()
		return
	}
	if len(c.out) < c.s.limits.SendQueue {
		c.enqueue(b)
		c.outMu.Unlock()
		c.s.metrics.pushes.Inc()
		return
	}
	c.outMu.Unlock()
	c.s.metrics.slowClosures.Inc()
	c.s.log.Info("closing slow session", "device", c.devHex)
	c.close(ws.StatusPolicyViolation, "send queue full")
}

// kick tells the client why and closes the connection at once.
func (c *session) kick(code anomv1.ErrorCode, msg string) {
	if b, err := proto.Marshal(&anomv1.Frame{Body: &anomv1.Frame_PushDisconnect{PushDisconnect: &anomv1.Disconnect{Code: code, Message: msg}}}); err == nil {
		c.writeDirect(ws.OpBinary, b, 500*time.Millisecond)
	}
	c.close(ws.StatusPolicyViolation, msg)
}

// close ends the session: it sends a close frame with code and reason (a
// normal closure answers the client's own close frame, sent already by
// the reader), closes the connection, and once the requests taken are
// finished, lets the server's shutdown go on.
func (c *session) close(code ws.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.cancel()
		// Pushes check this rather than the context: it sits with the
		// queue, which a push touches anyway.
		c.outMu.Lock()
		c.outDone = true
		c.outMu.Unlock()
		if c.authed.Load() {
			c.s.hub.remove(c)
			c.s.metrics.authed.Dec()
		}
		c.releasePreauth()
		if c.conn == nil {
			return
		}
		if code != ws.StatusNormalClosure {
			if len(reason) > ws.MaxControlFramePayloadSize-2 {
				reason = reason[:ws.MaxControlFramePayloadSize-2]
			}
			c.writeDirect(ws.OpClose, append(closeBody(code), reason...), 100*time.Millisecond)
		}
		_ = c.conn.Close()
		c.inMu.Lock()
		c.closed = true
		c.inMu.Unlock()
		go func() {
			c.work.Wait()
			c.inMu.Lock()
			c.dropLimiterLocked()
			c.inMu.Unlock()
			c.s.hub.untrack(c)
			c.s.metrics.connections.Dec()
		}()
	})
}

func errorFrame(id uint64, err error) *anomv1.Frame {
	return &anomv1.Frame{Id: id, Body: &anomv1.Frame_Error{Error: toWire(err)}}
}
