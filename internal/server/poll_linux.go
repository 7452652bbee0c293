package server

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller waits, on one goroutine, for any idle connection to become
// readable (epoll, one-shot per arming), so an idle session has no
// goroutine of its own. A readable connection gets a goroutine that reads
// what has arrived and re-arms it.
type poller struct {
	epfd int

	mu     sync.Mutex
	m      map[int32]*session
	next   int32
	closed bool
}

func newPoller() (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating epoll instance: %w", err)
	}
	p := &poller{epfd: fd, m: map[int32]*session{}}
	go p.run()
	return p, nil
}

// rawConn returns the connection's file descriptor access.
func rawConn(conn net.Conn) (syscall.RawConn, error) {
	type netConner interface{ NetConn() net.Conn }
	for {
		if nc, ok := conn.(netConner); ok {
			conn = nc.NetConn()
			continue
		}
		break
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("connection has no file descriptor")
	}
	return sc.SyscallConn()
}

// add registers a session's connection and arms it.
func (p *poller) add(c *session) error {
	rc, err := rawConn(c.conn)
	if err != nil {
		return err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("poller closed")
	}
	for {
		p.next++
		if p.next <= 0 {
			p.next = 1
		}
		if p.m[p.next] == nil {
			break
		}
	}
	c.pollID = p.next
	c.raw = rc
	p.m[c.pollID] = c
	p.mu.Unlock()
	// The buffers the TLS handshake grew are not needed while the
	// connection waits for its first message.
	releaseTLSBuffers(c.conn)
	c.arms.Add(1)
	if err := p.ctl(c, unix.EPOLL_CTL_ADD); err != nil {
		p.remove(c)
		return err
	}
	return nil
}

// arm asks for the next readable event of a registered connection.
func (p *poller) arm(c *session) error { return p.ctl(c, unix.EPOLL_CTL_MOD) }

func (p *poller) ctl(c *session, op int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: c.pollID}
	var err error
	// Inside Control the descriptor cannot be closed and reused by
	// another connection.
	cerr := c.raw.Control(func(fd uintptr) {
		err = unix.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	if cerr != nil {
		return fmt.Errorf("arming connection: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("arming connection: %w", err)
	}
	return nil
}

// remove forgets a session; closing its connection removes it from the
// epoll set.
func (p *poller) remove(c *session) {
	p.mu.Lock()
	if c.pollID != 0 && p.m[c.pollID] == c {
		delete(p.m, c.pollID)
	}
	p.mu.Unlock()
}

func (p *poller) run() {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, 100)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			unix.Close(p.epfd)
			return
		}
		if err != nil {
			p.mu.Unlock()
			if errors.Is(err, unix.EINTR) {
				continue
			}
			// Nothing sensible is left to do: sessions still end
			// when their connections are closed.
			return
		}
		ready := make([]*session, 0, n)
		for _, ev := range events[:n] {
			if c := p.m[ev.Fd]; c != nil {
				ready = append(ready, c)
			}
		}
		p.mu.Unlock()
		for _, c := range ready {
			go c.readReady()
		}
	}
}

// close stops the poller; registered sessions must be closed by the
// caller.
func (p *poller) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}
