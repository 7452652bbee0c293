package server

// Writers. A session's queue is written by a goroutine that exists only
// while frames wait, so an idle session has none. Starting a goroutine for
// every push costs more than handing the session to one that waits: a new
// goroutine is created and torn down, and starts on a small stack that it
// grows (copying it) on its way into crypto/tls. So up to maxPooledWriters
// writer goroutines, once started, stay and wait for the next session to
// write; when none is waiting, a push starts one as before, which stays
// if the pool has room. A writer held by a client that does not read
// (until the write timeout) is simply not waiting: pushes to others start
// writers of their own, as without the pool.

// maxPooledWriters bounds the writer goroutines kept waiting (each keeps a
// stack of some KiB).
const maxPooledWriters = 16

// startWriter has c's queue written by a waiting writer, or a new one.
// Called with c.outMu held and c.writing just set.
func (c *session) startWriter() {
	h := c.s.hub
	select {
	case h.writerQ <- c:
	default:
		go h.writer(c)
	}
}

// writer writes c's queue, then, if the pool has room, stays to write the
// queues handed to it until the server shuts down.
func (h *hub) writer(c *session) {
	c.writeLoop()
	if h.pooledWriters.Add(1) > maxPooledWriters {
		h.pooledWriters.Add(-1)
		return
	}
	defer h.pooledWriters.Add(-1)
	closing := c.s.closing
	for {
		select {
		case c := <-h.writerQ:
			c.writeLoop()
		case <-closing:
			return
		}
	}
}
