package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// RunOptions tune Run; the zero value means the defaults.
type RunOptions struct {
	// SyncEvery is how often Run re-reads the transparency log while
	// connected (a device added under the user's name shows as
	// EventNewOwnDevice) and checks the offline auto-wipe while not; 0
	// means one minute.
	SyncEvery time.Duration
	// ReconnectMin is the wait before reconnecting after the connection
	// is lost; it doubles after every failed attempt up to ReconnectMax.
	// Each wait is drawn between half and all of it, so that devices cut
	// off together do not come back together. 0 means 2 seconds, and 0
	// ReconnectMax one minute.
	ReconnectMin, ReconnectMax time.Duration
	// Timeout bounds each connection attempt and each sync; 0 means 30
	// seconds.
	Timeout time.Duration
}

func (o RunOptions) withDefaults() RunOptions {
	if o.SyncEvery <= 0 {
		o.SyncEvery = time.Minute
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = 2 * time.Second
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = time.Minute
	}
	o.ReconnectMax = max(o.ReconnectMax, o.ReconnectMin)
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	return o
}

// Run keeps an activated device connected until ctx is done, the client
// is closed or wiped, or the server refuses the device:
//
//   - while not connected it connects (Connect: authentication and
//     catch-up on every group), at once and then after a lost connection
//     with capped, jittered exponential backoff, reporting each success
//     as EventConnected;
//   - while not connected it also checks the offline auto-wipe
//     (CheckOverdue) before every attempt and every SyncEvery;
//   - while connected it re-reads the transparency log every SyncEvery
//     (Sync), reporting a failure as EventSyncFailed.
//
// It returns ctx's error, ErrClosed after Close, ErrWiped after a wipe,
// ErrNotActivated, or the *ServerError of a revoked (REVOKED) or expired
// (EXPIRED) device. Only one Run should run at a time.
func (c *Client) Run(ctx context.Context, o RunOptions) error {
	o = o.withDefaults()
	tick := time.NewTicker(o.SyncEvery)
	defer tick.Stop()
	wait := o.ReconnectMin
	for {
		if err := c.stopped(ctx); err != nil {
			return err
		}
		if cn := c.live(); cn != nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-c.stop:
				return c.stopped(ctx)
			case <-cn.done:
				wait = o.ReconnectMin
				if err := c.sleep(ctx, jitter(wait)); err != nil {
					return err
				}
			case <-tick.C:
				sctx, cancel := context.WithTimeout(ctx, o.Timeout)
				err := c.Sync(sctx)
				cancel()
				if err != nil && ctx.Err() == nil {
					c.log.Warn("checking in with the server", "err", err)
					c.emit(Event{Type: EventSyncFailed, Err: err})
				}
			}
			continue
		}
		if err := c.CheckOverdue(); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, o.Timeout)
		err := c.Connect(cctx)
		cancel()
		if err == nil {
			c.emit(Event{Type: EventConnected})
			continue
		}
		if fatalConnectError(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Info("not connected", "err", err, "retry in", wait)
		if err := c.sleep(ctx, jitter(wait)); err != nil {
			return err
		}
		wait = min(2*wait, o.ReconnectMax)
	}
}

// live returns the connection if it has not ended.
func (c *Client) live() *conn {
	cn, err := c.current()
	if err != nil {
		return nil
	}
	select {
	case <-cn.done:
		return nil
	default:
		return cn
	}
}

// fatalConnectError reports whether a Connect error ends Run.
func fatalConnectError(err error) bool {
	return IsCode(err, CodeRevoked) || IsCode(err, CodeExpired) ||
		errors.Is(err, ErrWiped) || errors.Is(err, ErrNotActivated) || errors.Is(err, ErrClosed)
}

// stopped returns why Run must end now, or nil.
func (c *Client) stopped(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-c.stop:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return ErrWiped
	}
	return fmt.Errorf("running: %w", ErrClosed)
}

// sleep waits d, or returns why Run must end.
func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stop:
		return c.stopped(ctx)
	case <-t.C:
		return nil
	}
}

// jitter draws a wait between half and all of d.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}
