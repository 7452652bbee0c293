// Package push holds what the servers of a cluster hand each other
// when a device connected to one of them is to be pushed a frame that
// another one produced: the Push, and the Fanout interface that carries
// pushes between servers. The server (internal/server) publishes and
// delivers pushes through a Fanout; its implementations (a log of the
// shared store, server.StoreFanout; NATS core subjects,
// internal/natsfanout) live beside the code they need, and this package
// depends on nothing, so neither side imports the other.
package push

import "context"

// Push is a frame to deliver to the sessions of some devices.
type Push struct {
	Devices []string // device IDs in hex
	Frame   []byte   // the encoded Frame
}

// Fanout carries pushes between the servers of a cluster. A push is a
// wake-up, best effort: a device that misses one, or gets one twice,
// catches up from its cursor in the store, which alone is authoritative.
type Fanout interface {
	// Publish hands pushes, in order, to the other servers.
	Publish(ctx context.Context, pushes []Push) error
	// Subscribe calls deliver, in order, with every push other servers
	// publish from now on, until ctx ends; it returns ctx's error or why
	// it had to stop.
	Subscribe(ctx context.Context, deliver func(Push)) error
}
