//go:build !linux

package server

import "errors"

// poller is Linux only (epoll); elsewhere every session reads on a
// goroutine of its own.
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.New("no poller on this system") }

func (p *poller) add(c *session) error { return errors.New("no poller on this system") }
func (p *poller) arm(c *session) error { return errors.New("no poller on this system") }
func (p *poller) remove(c *session)    {}
func (p *poller) close()               {}
