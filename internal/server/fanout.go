package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"anom/internal/push"
	"anom/internal/store"
)

// Fan-out between servers. Each server pushes a new message to the
// sessions it holds (the hub, conn.go); the servers of a cluster also hand
// every push to a Fanout, which carries it to the others, and each server
// delivers what it receives to its own sessions of the devices named. One
// subscription per server, never one per device. Config.Fanout nil: one
// server alone, pushes stay in the hub. StoreFanout carries them through a
// log of the shared store; a NATS implementation (core subjects, no
// JetStream consumers, internal/natsfanout) plugs in at the same
// interface.

// Push is a frame to deliver to the sessions of some devices
// (push.Push, so that implementations of Fanout outside this package
// need not import it).
type Push = push.Push

// Fanout carries pushes between the servers of a cluster (push.Fanout).
type Fanout = push.Fanout

// publish hands pushes to the cluster's fan-out, if any, through the
// server's publisher: in order, batched, never holding up the sender.
func (s *Server) publish(pushes ...Push) {
	if s.cfg.Fanout == nil || len(pushes) == 0 {
		return
	}
	p := &s.pub
	p.mu.Lock()
	p.queue = append(p.queue, pushes...)
	if !p.running {
		p.running = true
		go s.publishLoop()
	}
	p.mu.Unlock()
}

// publisher queues pushes for the fan-out.
type publisher struct {
	mu      sync.Mutex
	queue   []Push
	running bool
}

// maxPublishBatch bounds the pushes of one Publish.
const maxPublishBatch = 256

func (s *Server) publishLoop() {
	p := &s.pub
	for {
		p.mu.Lock()
		if len(p.queue) == 0 || s.ctx.Err() != nil {
			p.running, p.queue = false, nil
			p.mu.Unlock()
			return
		}
		n := min(len(p.queue), maxPublishBatch)
		batch := make([]Push, n)
		copy(batch, p.queue)
		clear(p.queue[:n])
		p.queue = p.queue[n:]
		p.mu.Unlock()
		if err := s.cfg.Fanout.Publish(s.ctx, batch); err != nil && s.ctx.Err() == nil {
			s.log.Warn("publishing pushes to the cluster", "pushes", len(batch), "err", err)
		}
	}
}

// deliverPush pushes a frame from another server to this server's
// sessions of its devices.
func (s *Server) deliverPush(p Push) {
	for _, c := range s.hub.appendDevices(nil, p.Devices) {
		c.push(p.Frame)
	}
}

// subscribeFanout delivers the other servers' pushes until ctx ends,
// subscribing again after a failure.
func (s *Server) subscribeFanout(ctx context.Context) {
	for ctx.Err() == nil {
		err := s.cfg.Fanout.Subscribe(ctx, s.deliverPush)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("fan-out subscription ended; subscribing again", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// StoreFanout is a Fanout over a log of the servers' shared store: Publish
// appends the pushes, each server waits on the log and reads what the
// others appended. Entries older than StoreFanoutKeep are trimmed by the
// servers' sweeps.
type StoreFanout struct {
	st   store.Store
	node []byte
}

// LogFanout is the store log StoreFanout uses.
const LogFanout = "fanout"

// StoreFanoutKeep is how long StoreFanout's entries are kept.
const StoreFanoutKeep = time.Minute

// NewStoreFanout returns the fan-out of one server over st; node tells
// its own pushes apart (any value unique among the servers, for example
// random bytes).
func NewStoreFanout(st store.Store, node []byte) *StoreFanout {
	return &StoreFanout{st: st, node: append([]byte(nil), node...)}
}

// Publish implements Fanout.
func (f *StoreFanout) Publish(ctx context.Context, pushes []Push) error {
	entries := make([][]byte, len(pushes))
	for i, p := range pushes {
		entries[i] = encodeFanout(f.node, p)
	}
	for len(entries) > 0 {
		n, size := 0, 0
		for n < len(entries) && (n == 0 || size+len(entries[n]) <= store.MaxTxnBytes/2) {
			size += len(entries[n])
			n++
		}
		if _, err := f.st.Append(ctx, LogFanout, entries[:n]...); err != nil {
			return fmt.Errorf("publishing %d pushes: %w", n, err)
		}
		entries = entries[n:]
	}
	return nil
}

// Subscribe implements Fanout.
func (f *StoreFanout) Subscribe(ctx context.Context, deliver func(Push)) error {
	info, err := f.st.Info(ctx, LogFanout)
	if err != nil {
		return fmt.Errorf("subscribing to pushes: %w", err)
	}
	after := info.Last
	for {
		es, err := f.st.Read(ctx, LogFanout, after+1, 0)
		if err != nil {
			return fmt.Errorf("reading pushes: %w", err)
		}
		if len(es) == 0 {
			if _, err := f.st.Wait(ctx, LogFanout, after); err != nil {
				return err
			}
			continue
		}
		for _, e := range es {
			after = e.Seq
			node, p, err := decodeFanout(e.Data)
			if err != nil {
				continue // a push lost: its devices catch up from their cursors
			}
			if string(node) != string(f.node) {
				deliver(p)
			}
		}
	}
}

// Trim drops the entries older than StoreFanoutKeep.
func (f *StoreFanout) Trim(ctx context.Context, now time.Time) error {
	if err := f.st.TrimBefore(ctx, LogFanout, now.Add(-StoreFanoutKeep)); err != nil {
		return fmt.Errorf("trimming pushes: %w", err)
	}
	return nil
}

// Fields of a StoreFanout entry (protobuf wire format).
const (
	fanoutNode   = 1 // bytes: the publishing server
	fanoutDevice = 2 // string, repeated: a device ID in hex
	fanoutFrame  = 3 // bytes: the frame
)

func encodeFanout(node []byte, p Push) []byte {
	b := protowire.AppendTag(nil, fanoutNode, protowire.BytesType)
	b = protowire.AppendBytes(b, node)
	for _, d := range p.Devices {
		b = protowire.AppendTag(b, fanoutDevice, protowire.BytesType)
		b = protowire.AppendString(b, d)
	}
	b = protowire.AppendTag(b, fanoutFrame, protowire.BytesType)
	return protowire.AppendBytes(b, p.Frame)
}

var errFanoutEntry = errors.New("malformed push entry")

// decodeFanout decodes a StoreFanout entry; unknown fields are skipped.
func decodeFanout(b []byte) (node []byte, p Push, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, Push{}, fmt.Errorf("%w: %w", errFanoutEntry, protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.BytesType || num < fanoutNode || num > fanoutFrame {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, Push{}, fmt.Errorf("%w: %w", errFanoutEntry, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, Push{}, fmt.Errorf("%w: %w", errFanoutEntry, protowire.ParseError(n))
		}
		b = b[n:]
		switch num {
		case fanoutNode:
			node = v
		case fanoutDevice:
			p.Devices = append(p.Devices, string(v))
		case fanoutFrame:
			p.Frame = v
		}
	}
	if len(node) == 0 || len(p.Frame) == 0 {
		return nil, Push{}, fmt.Errorf("%w: no node or frame", errFanoutEntry)
	}
	return node, p, nil
}
