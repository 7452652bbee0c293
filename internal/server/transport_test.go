package server

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	anomv1 "anom/proto/anom/v1"
)

// write sends a request without waiting for its answer and returns its id.
func (c *client) write(f *anomv1.Frame) uint64 {
	c.t.Helper()
	f.Id = c.id.Add(1)
	b, err := proto.Marshal(f)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.ws.Write(context.Background(), websocket.MessageBinary, b); err != nil {
		c.t.Fatal(err)
	}
	return f.Id
}

// answers collects n answers, by request id.
func (c *client) answers(n int) map[uint64]*anomv1.Frame {
	c.t.Helper()
	out := map[uint64]*anomv1.Frame{}
	for len(out) < n {
		select {
		case r := <-c.resp:
			if out[r.Id] != nil {
				c.t.Fatalf("two answers to request %d", r.Id)
			}
			out[r.Id] = r
		case <-c.closed:
			c.t.Fatalf("connection closed after %d of %d answers", len(out), n)
		case <-time.After(10 * time.Second):
			c.t.Fatalf("%d of %d answers", len(out), n)
		}
	}
	return out
}

// TestPipelinedSends sends many messages to one group without waiting:
// each is answered once, and the group log has them in the order sent
// (ascending request ids get ascending sequences), as does the other
// member's push stream.
func TestPipelinedSends(t *testing.T) {
	n := newNetwork(t, func(c *Config) {
		c.Limits.RequestsPerSecond = 1e6
		c.Limits.RequestBurst = 1e6
	})
	g := gid("pipeline")
	alice, bob := setupGroup(t, n, g)
	const count = 200
	ids := make([]uint64, count)
	for i := range ids {
		m, err := alice.group.Encrypt([]byte{byte(i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = alice.write(send(g, m, nil))
	}
	got := alice.answers(count)
	var last uint64
	for i, id := range ids {
		r := got[id]
		if r.GetError() != nil {
			t.Fatalf("send %d: %v", i, r.GetError())
		}
		seq := r.GetSent().GetSeq()
		if seq <= last {
			t.Fatalf("send %d got seq %d after %d: order lost", i, seq, last)
		}
		last = seq
	}
	last = 0
	for i := range count {
		p := bob.nextPush()
		for _, gm := range p.GetPushMessages().GetMessages() {
			if gm.GetSeq() <= last {
				t.Fatalf("push %d: seq %d after %d", i, gm.GetSeq(), last)
			}
			last = gm.GetSeq()
		}
	}
}

// TestPipelinedRequests sends requests for many groups and general
// requests at once, more than are taken in flight: every one is answered
// exactly once.
func TestPipelinedRequests(t *testing.T) {
	n := newNetwork(t, func(c *Config) {
		c.Limits.RequestsPerSecond = 1e6
		c.Limits.RequestBurst = 1e6
	})
	alice := n.activate("alice", n.codes(1, 1)[0])
	const count = 3 * maxInFlight
	for i := range count {
		var f *anomv1.Frame
		switch i % 3 {
		case 0:
			f = &anomv1.Frame{Body: &anomv1.Frame_CreateGroup{CreateGroup: &anomv1.CreateGroup{GroupId: gid("g" + string(rune('a'+i%26)) + string(rune('a'+i/26)))}}}
		case 1:
			f = &anomv1.Frame{Body: &anomv1.Frame_GetEscrowPolicy{GetEscrowPolicy: &anomv1.GetEscrowPolicy{}}}
		default:
			f = &anomv1.Frame{Body: &anomv1.Frame_ListGroups{ListGroups: &anomv1.ListGroups{}}}
		}
		alice.write(f)
	}
	for id, r := range alice.answers(count) {
		if r.GetError() != nil {
			t.Fatalf("request %d: %v", id, r.GetError())
		}
	}
}

// TestWebSocketControl: a ping is answered with a pong, a text message
// with a BAD_FRAME error, and a close with a close.
func TestWebSocketControl(t *testing.T) {
	n := newNetwork(t, nil)
	c := n.dial()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := c.ws.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-c.resp:
		if code(r) != anomv1.ErrorCode_ERROR_CODE_BAD_FRAME {
			t.Fatalf("answer to a text message: %v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to a text message")
	}
	if err := c.ws.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("closing: %v", err)
	}
}

// TestShutdownClosesUnauthenticated: shutting down does not wait for the
// authentication timeout of connections that never authenticated.
func TestShutdownClosesUnauthenticated(t *testing.T) {
	n := newNetwork(t, func(c *Config) { c.Limits.AuthTimeout = time.Hour })
	c := n.dial()
	c.hello()
	done := make(chan struct{})
	go func() { n.stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("shutdown waits for an unauthenticated connection")
	}
	select {
	case <-c.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open after shutdown")
	}
}
