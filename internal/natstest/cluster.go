// Package natstest runs an in-process NATS JetStream cluster on loopback
// ports for tests: three nodes (or any number) with their data in
// temporary directories, fsyncing every write (sync_interval: always), with
// helpers to stop a node and start it again on the same ports and data.
package natstest

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"anom/internal/proctest"
)

// ClusterName is the name of the NATS cluster the nodes form.
const ClusterName = "anom-test"

// Cluster is a running in-process JetStream cluster.
type Cluster struct {
	t     testing.TB
	mu    sync.Mutex
	nodes []*node
}

type node struct {
	opts *server.Options
	srv  *server.Server // nil while stopped
}

// Start starts an n-node JetStream cluster and waits until it has elected
// a meta leader. The cluster shuts down when the test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: %d nodes", n)
	}
	ports := proctest.FreePorts(t, 2*n)
	var routes []string
	for i := 0; i < n; i++ {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+i]))
	}
	base := t.TempDir()
	c := &Cluster{t: t}
	for i := 0; i < n; i++ {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       ports[i],
			JetStream:  true,
			StoreDir:   filepath.Join(base, fmt.Sprintf("n%d", i+1)),
			// Every write is fsynced before it counts towards the quorum.
			SyncAlways:         true,
			JetStreamMaxMemory: 256 << 20,
			JetStreamMaxStore:  8 << 30,
			NoLog:              true,
			NoSigs:             true,
		}
		if n > 1 {
			o.Cluster = server.ClusterOpts{Name: ClusterName, Host: "127.0.0.1", Port: ports[n+i]}
			o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		}
		c.nodes = append(c.nodes, &node{opts: o})
	}
	t.Cleanup(c.Shutdown)
	for i := range c.nodes {
		if err := c.start(i); err != nil {
			t.Fatalf("natstest: %v", err)
		}
	}
	if err := c.WaitReady(30 * time.Second); err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return c
}

func (c *Cluster) start(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	nd := c.nodes[i]
	if nd.srv != nil {
		return fmt.Errorf("node %d is running", i)
	}
	opts := *nd.opts
	s, err := server.NewServer(&opts)
	if err != nil {
		return fmt.Errorf("creating node %s: %w", opts.ServerName, err)
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("node %s not ready for connections after 20s", opts.ServerName)
	}
	nd.srv = s
	return nil
}

// URLs returns the client URLs of all nodes, running or not.
func (c *Cluster) URLs() []string {
	var urls []string
	for _, nd := range c.nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", nd.opts.Port))
	}
	return urls
}

// URL returns the client URLs joined with commas, as nats.Connect takes them.
func (c *Cluster) URL() string { return strings.Join(c.URLs(), ",") }

// Server returns node i's server, nil while it is stopped.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// Len is the number of nodes.
func (c *Cluster) Len() int { return len(c.nodes) }

// Stop shuts node i down (its data stays for Restart).
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Restart starts a stopped node i again on its ports and data.
func (c *Cluster) Restart(i int) error {
	return c.start(i)
}

// StreamLeader returns the index of the node leading the named stream of
// the global account, or -1.
func (c *Cluster) StreamLeader(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, nd := range c.nodes {
		if nd.srv != nil && nd.srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// StreamCurrent reports whether node i has a replica of the stream that is
// caught up with its leader.
func (c *Cluster) StreamCurrent(i int, stream string) bool {
	s := c.Server(i)
	if s == nil {
		return false
	}
	return s.JetStreamIsStreamCurrent(server.DEFAULT_GLOBAL_ACCOUNT, stream)
}

// WaitReady waits until every running node has JetStream enabled and the
// cluster has a meta leader that all running nodes follow.
func (c *Cluster) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if c.ready() {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("cluster has no JetStream meta leader")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *Cluster) ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	leader := false
	for _, nd := range c.nodes {
		if nd.srv == nil {
			continue
		}
		if !nd.srv.JetStreamEnabled() || !nd.srv.JetStreamIsCurrent() {
			return false
		}
		if nd.srv.JetStreamIsLeader() {
			leader = true
		}
	}
	return leader
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	for i := range c.nodes {
		c.Stop(i)
	}
}

// Interest returns how many subscriptions of the global account match
// subject on the node named server (a ServerName, as a client's
// nats.Conn.ConnectedServerName gives it): its own clients' and, once
// routed, one for each other node with a matching subscription. 0 if
// there is no such node running.
func (c *Cluster) Interest(server, subject string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nd := range c.nodes {
		if nd.srv != nil && nd.opts.ServerName == server {
			return nd.srv.GlobalAccount().Interest(subject)
		}
	}
	return 0
}
