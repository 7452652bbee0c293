package server

import anomv1 "anom/proto/anom/v1"

// Request lanes: a session's requests, handled in order per group (and
// one general lane), with at most maxInFlight read ahead of their
// answers (see session).

// maxInFlight bounds the requests of one session read ahead of their
// answers.
const maxInFlight = 64

// lane is a queue of requests handled in order.
type lane struct {
	q []*anomv1.Frame
}

// waitInRoom waits until fewer than maxInFlight requests are unanswered.
func (c *session) waitInRoom() bool {
	for {
		c.inMu.Lock()
		if c.inflight < maxInFlight {
			c.inMu.Unlock()
			return true
		}
		if c.inRoom == nil {
			c.inRoom = make(chan struct{})
		}
		room := c.inRoom
		c.inMu.Unlock()
		select {
		case <-room:
		case <-c.ctx.Done():
			return false
		}
	}
}

// park records that the session waits for the poller: once every
// request read is answered it holds no rate limits.
func (c *session) park() {
	c.inMu.Lock()
	c.parked = true
	if c.inflight == 0 {
		c.dropLimiterLocked()
	}
	c.inMu.Unlock()
}

// dropLimiterLocked lets go of the device's rate limits; called with
// inMu held when no request uses them.
func (c *session) dropLimiterLocked() {
	if c.limiter != nil {
		c.s.rates.release(c.device, c.limiter, c.s.now())
		c.limiter = nil
	}
}

// finished records that a request has been answered (or dropped).
func (c *session) finished() {
	c.inMu.Lock()
	c.inflight--
	if c.inRoom != nil {
		close(c.inRoom)
		c.inRoom = nil
	}
	if c.inflight == 0 && c.parked {
		c.dropLimiterLocked()
	}
	c.inMu.Unlock()
	c.work.Done()
}

// laneKey returns the lane of a request: its group for group requests, ""
// for the others; ok is false for authentication requests.
func laneKey(f *anomv1.Frame) (key string, ok bool) {
	switch b := f.Body.(type) {
	case *anomv1.Frame_Hello, *anomv1.Frame_Auth, *anomv1.Frame_Activate:
		return "", false
	case *anomv1.Frame_Send:
		return "g" + string(b.Send.GetGroupId()), true
	case *anomv1.Frame_Fetch:
		return "g" + string(b.Fetch.GetGroupId()), true
	case *anomv1.Frame_Ack:
		return "g" + string(b.Ack.GetGroupId()), true
	case *anomv1.Frame_SetGroupTimer:
		return "g" + string(b.SetGroupTimer.GetGroupId()), true
	case *anomv1.Frame_CreateGroup:
		return "g" + string(b.CreateGroup.GetGroupId()), true
	}
	return "", true
}

// laneLoop handles a lane's requests in order until it is empty.
func (c *session) laneLoop(key string, l *lane) {
	for {
		c.inMu.Lock()
		if len(l.q) == 0 {
			delete(c.lanes, key)
			if len(c.lanes) == 0 {
				c.lanes = nil // an idle session keeps no map
			}
			c.inMu.Unlock()
			return
		}
		f := l.q[0]
		l.q[0] = nil
		l.q = l.q[1:]
		c.inMu.Unlock()
		resp := c.handle(c.ctx, f)
		if _, wipe := f.Body.(*anomv1.Frame_WipeConfirm); wipe && key == "" && c.closeAfterAnswer {
			c.closeWith(resp)
			c.finished()
			continue
		}
		c.answer(resp)
	}
}
