package server

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	"anom/internal/identity"
	anomv1 "anom/proto/anom/v1"
)

// session is one WebSocket connection. A reader goroutine handles
// requests one at a time, in order; a writer goroutine, started only while
// frames are queued, drains the bounded send queue. An idle session thus
// costs one goroutine and no queue.
type session struct {
	s      *Server
	ws     *websocket.Conn // nil in fuzz tests
	ctx    context.Context
	cancel context.CancelFunc

	outMu   sync.Mutex
	out     [][]byte      // frames waiting to be written
	writing bool          // a writer goroutine is running
	room    chan struct{} // closed when the queue drains, if the reader waits

	challenge []byte // set by Hello

	authed  atomic.Bool
	device  identity.DeviceID
	devHex  string
	cert    *identity.DeviceCertificate
	limiter *deviceLimiter

	// closeAfterAnswer makes the reader close the session once the
	// current answer is written (a wiped device is revoked).
	closeAfterAnswer bool

	closeOnce sync.Once
}

func (s *Server) newSession(ws *websocket.Conn) *session {
	ctx, cancel := context.WithCancel(s.ctx)
	return &session{s: s, ws: ws, ctx: ctx, cancel: cancel}
}

// serveWS upgrades to a WebSocket and runs the session until it ends.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.closing:
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	default:
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return // Accept has answered
	}
	ws.SetReadLimit(int64(s.limits.MaxFrameSize))
	c := s.newSession(ws)
	s.wg.Add(1)
	s.metrics.connections.Inc()
	// The session reads on a goroutine of its own so that the HTTP
	// handler returns and the request's state is freed: a connection
	// mostly sits idle for hours.
	go func() {
		defer s.wg.Done()
		defer s.metrics.connections.Dec()
		defer c.close(websocket.StatusNormalClosure, "")
		authTimer := time.AfterFunc(s.limits.AuthTimeout, func() {
			if !c.authed.Load() {
				c.kick(anomv1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "authentication timeout")
			}
		})
		defer authTimer.Stop()
		c.readLoop()
	}()
}

func (c *session) readLoop() {
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			return
		}
		var resp *anomv1.Frame
		if typ != websocket.MessageBinary {
			resp = errorFrame(0, errorf(anomv1.ErrorCode_ERROR_CODE_BAD_FRAME, "text message; frames are binary"))
		} else {
			resp = c.process(c.ctx, data)
		}
		if resp == nil {
			continue
		}
		if c.closeAfterAnswer {
			// Written directly (the connection allows concurrent
			// writes) so the answer is out before the close.
			if b, err := proto.Marshal(resp); err == nil {
				wctx, cancel := context.WithTimeout(c.ctx, time.Second)
				_ = c.ws.Write(wctx, websocket.MessageBinary, b)
				cancel()
			}
			c.kick(anomv1.ErrorCode_ERROR_CODE_REVOKED, "device revoked")
			return
		}
		if !c.sendWait(resp) {
			return
		}
	}
}

// writeLoop writes queued frames until the queue is empty, then ends.
func (c *session) writeLoop() {
	var batch [][]byte
	for {
		c.outMu.Lock()
		if len(c.out) == 0 || c.ctx.Err() != nil {
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
		c.outMu.Unlock()
		for i, b := range batch {
			wctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
			err := c.ws.Write(wctx, websocket.MessageBinary, b)
			cancel()
			batch[i] = nil
			if err != nil {
				c.close(websocket.StatusGoingAway, "write failed")
				c.outMu.Lock()
				c.writing, c.out = false, nil
				if c.room != nil {
					close(c.room)
					c.room = nil
				}
				c.outMu.Unlock()
				return
			}
		}
	}
}

// enqueue adds a frame to the send queue, starting the writer if needed.
// Called with outMu held.
func (c *session) enqueue(b []byte) {
	c.out = append(c.out, b)
	if !c.writing && c.ws != nil {
		c.writing = true
		go c.writeLoop()
	}
}

// sendWait queues a response, waiting for room: responses are never
// dropped, and a client that does not read stops being read.
func (c *session) sendWait(f *anomv1.Frame) bool {
	b, err := proto.Marshal(f)
	if err != nil {
		c.s.log.Error("encoding frame", "err", err)
		return false
	}
	for {
		c.outMu.Lock()
		if c.ctx.Err() != nil {
			c.outMu.Unlock()
			return false
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
	if c.ctx.Err() != nil {
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
	c.close(websocket.StatusPolicyViolation, "send queue full")
}

// kick tells the client why and closes the connection at once.
func (c *session) kick(code anomv1.ErrorCode, msg string) {
	if c.ws != nil {
		if b, err := proto.Marshal(&anomv1.Frame{Body: &anomv1.Frame_PushDisconnect{PushDisconnect: &anomv1.Disconnect{Code: code, Message: msg}}}); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			_ = c.ws.Write(ctx, websocket.MessageBinary, b)
			cancel()
		}
	}
	c.close(websocket.StatusPolicyViolation, msg)
}

func (c *session) close(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.cancel()
		if c.authed.Load() {
			c.s.hub.remove(c)
			c.s.metrics.authed.Dec()
		}
		if c.ws != nil {
			if code == websocket.StatusNormalClosure {
				_ = c.ws.Close(code, reason)
			} else {
				_ = c.ws.CloseNow()
			}
		}
	})
}

// hub tracks authenticated sessions by device, for fan-out, revocation
// and wipe.
type hub struct {
	mu       sync.RWMutex
	sessions map[identity.DeviceID]map[*session]struct{}
}

func newHub() *hub { return &hub{sessions: map[identity.DeviceID]map[*session]struct{}{}} }

// add registers an authenticated session unless the device has max
// sessions already.
func (h *hub) add(c *session, max int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.sessions[c.device]
	if len(m) >= max {
		return false
	}
	if m == nil {
		m = map[*session]struct{}{}
		h.sessions[c.device] = m
	}
	m[c] = struct{}{}
	return true
}

func (h *hub) remove(c *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.sessions[c.device]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(h.sessions, c.device)
		}
	}
}

// of returns the sessions of a device.
func (h *hub) of(id identity.DeviceID) []*session { return h.appendOf(nil, id) }

// appendOf appends the sessions of a device to out.
func (h *hub) appendOf(out []*session, id identity.DeviceID) []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.sessions[id] {
		out = append(out, c)
	}
	return out
}

func (h *hub) all() []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []*session
	for _, m := range h.sessions {
		for c := range m {
			out = append(out, c)
		}
	}
	return out
}

func (h *hub) closeAll() {
	for _, c := range h.all() {
		c.kick(anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "server shutting down")
	}
}

// kickDevice disconnects every session of a device.
func (s *Server) kickDevice(id identity.DeviceID, code anomv1.ErrorCode, msg string) {
	for _, c := range s.hub.of(id) {
		go c.kick(code, msg)
	}
}

// expireSessions disconnects sessions whose certificate has expired.
func (s *Server) expireSessions() {
	now := s.now()
	for _, c := range s.hub.all() {
		if !now.Before(c.cert.NotAfter) {
			go c.kick(anomv1.ErrorCode_ERROR_CODE_EXPIRED, "certificate expired")
		}
	}
}

func errorFrame(id uint64, err error) *anomv1.Frame {
	return &anomv1.Frame{Id: id, Body: &anomv1.Frame_Error{Error: toWire(err)}}
}
