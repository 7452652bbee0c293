package server

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/gobwas/ws"

	"anom/identity"
	anomv1 "anom/proto/anom/v1"
)

// hub tracks sessions: every open one (for shutdown), and the
// authenticated ones by device (for fan-out, revocation and wipe). It
// owns the readiness poller.
type hub struct {
	mu  sync.RWMutex
	gen atomic.Uint64 // advanced, under mu, by every add and remove
	// writerQ hands a session to a pooled writer that waits (unbuffered);
	// pooledWriters counts those writers (see writers.go).
	writerQ       chan *session
	pooledWriters atomic.Int32
	sessions      map[string][]*session // by device ID in hex
	open          map[*session]struct{}
	closing       bool

	pollOnce sync.Once
	poll     *poller
}

func newHub() *hub {
	return &hub{sessions: map[string][]*session{}, open: map[*session]struct{}{}, writerQ: make(chan *session)}
}

// poller returns the readiness poller, started on first use; nil where
// there is none.
func (h *hub) poller(log *slog.Logger) *poller {
	h.pollOnce.Do(func() {
		p, err := newPoller()
		if err != nil {
			log.Info("sessions read on goroutines of their own", "reason", err)
			return
		}
		h.mu.Lock()
		if h.closing {
			p.close()
		} else {
			h.poll = p
		}
		h.mu.Unlock()
	})
	return h.poll
}

// track registers an open session with the server's wait group; false
// once the server is shutting down.
func (h *hub) track(c *session) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.open[c] = struct{}{}
	c.s.wg.Add(1)
	return true
}

// untrack forgets a closed session whose requests are finished.
func (h *hub) untrack(c *session) {
	h.mu.Lock()
	_, ok := h.open[c]
	delete(h.open, c)
	p := h.poll
	h.mu.Unlock()
	if p != nil {
		p.remove(c)
	}
	if ok {
		c.s.wg.Done()
	}
}

// add registers an authenticated session unless the device has max
// sessions already.
func (h *hub) add(c *session, max int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.sessions[c.devHex]
	if len(list) >= max {
		return false
	}
	h.sessions[c.devHex] = append(list, c)
	h.gen.Add(1)
	return true
}

func (h *hub) remove(c *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gen.Add(1)
	list := h.sessions[c.devHex]
	for i, x := range list {
		if x == c {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(h.sessions, c.devHex)
	} else {
		h.sessions[c.devHex] = list
	}
}

// of returns the sessions of a device.
func (h *hub) of(id identity.DeviceID) []*session { return h.appendOf(nil, id) }

// appendOf appends the sessions of a device to out.
func (h *hub) appendOf(out []*session, id identity.DeviceID) []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return append(out, h.sessions[id.String()]...)
}

// appendDevices appends the sessions of devices, given in hex, to out,
// under one read lock.
func (h *hub) appendDevices(out []*session, lists ...[]string) []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, list := range lists {
		for _, d := range list {
			out = append(out, h.sessions[d]...)
		}
	}
	return out
}

// devicesAt returns the sessions of devices, given in hex, and the hub's
// generation they are of.
func (h *hub) devicesAt(devices []string) ([]*session, uint64) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []*session
	for _, d := range devices {
		out = append(out, h.sessions[d]...)
	}
	return out, h.gen.Load()
}

func (h *hub) all() []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []*session
	for _, list := range h.sessions {
		out = append(out, list...)
	}
	return out
}

// closeAll closes every session, telling authenticated ones why, and
// refuses new ones.
func (h *hub) closeAll() {
	h.mu.Lock()
	h.closing = true
	open := make([]*session, 0, len(h.open))
	for c := range h.open {
		open = append(open, c)
	}
	p := h.poll
	h.mu.Unlock()
	if p != nil {
		p.close()
	}
	for _, c := range open {
		if c.authed.Load() {
			c.kick(anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "server shutting down")
		} else {
			c.close(ws.StatusGoingAway, "server shutting down")
		}
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
