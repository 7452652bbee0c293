package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"anom/internal/loadgen"
	"anom/internal/server"
	"anom/internal/store/jetstream"
)

// anom bench --cluster: the message scenario against a cluster on this
// machine, all in this process: three NATS JetStream nodes (nats-server
// as a library, each fsyncing every write, as natstest's test cluster and
// the jetstream package recommend), and two anom servers on the JetStream
// store (three replicas), each with a NATS connection of its own and the
// fan-out `anom server --nats` uses. The load spreads every group's
// members over both servers, so pushes cross between them.

// Sizes of the bench cluster.
const (
	benchNATSNodes   = 3
	benchAnomServers = 2
)

// clusterRefused are the bench flags that make no sense with --cluster:
// they reach an external server, run the server as a process of its own,
// or belong to the memory scenario, which measures one server.
var clusterRefused = []string{
	"addr", "data", "metrics", "server-process", "idle-in-process", "heap-profile",
	"server-memory-limit", "server-gogc", "idle-conns", "settle", "idle-points", "gc-wait",
}

// checkCluster refuses flag combinations --cluster cannot run, and
// narrows the default scenario to messages.
func (f *benchFlags) checkCluster(fs *flag.FlagSet) error {
	var bad []string
	for _, name := range clusterRefused {
		if isFlagSet(fs, name) {
			bad = append(bad, "--"+name)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("--cluster runs its own cluster in this process and measures messages only: drop %s", strings.Join(bad, ", "))
	}
	if isFlagSet(fs, "scenario") && f.scenario != "messages" {
		return fmt.Errorf("--cluster --scenario %s: the cluster bench has the message scenario only (the memory scenario measures one server: run it without --cluster)", f.scenario)
	}
	f.scenario = "messages"
	return nil
}

// clusterNetwork starts the bench cluster on a fresh temporary network and
// returns the environment for about devices devices.
func (f *benchFlags) clusterNetwork(ctx context.Context, devices int, withEscrow bool) (*benchNet, error) {
	online := f.online
	if online <= 0 || online > devices {
		online = devices
	}
	if need := 2*online + 1000; need > f.fileLimit {
		return nil, fmt.Errorf("--cluster holds both ends of %d connections in this process, %d descriptors with NATS, over its limit of %d: give --online %d or fewer", online, need, f.fileLimit, (f.fileLimit-1000)/2)
	}
	dir, err := os.MkdirTemp("", "anom-bench-cluster-")
	if err != nil {
		return nil, err
	}
	var cleanup []func()
	closeAll := func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	fail := func(err error) (*benchNet, error) { closeAll(); return nil, err }
	netDir := filepath.Join(dir, "net")
	cleanup = append(cleanup, func() { os.RemoveAll(dir) })
	k, err := f.newBenchKeys(ctx, netDir, withEscrow)
	if err != nil {
		return fail(err)
	}
	root, policy, esc, pool, tc, logger := k.root, k.policy, k.escrow, k.pool, k.tls, k.logger

	start := time.Now()
	nodes, err := startBenchNATS(filepath.Join(dir, "nats"), benchNATSNodes, f.verbose)
	if err != nil {
		return fail(err)
	}
	cleanup = append(cleanup, func() {
		for _, s := range nodes {
			s.Shutdown()
			s.WaitForShutdown()
		}
	})
	var urls []string
	for _, s := range nodes {
		urls = append(urls, s.ClientURL())
	}
	fmt.Printf("NATS JetStream cluster of %d nodes in this process (every write fsynced before it counts), ready in %.1fs: %s\n",
		len(nodes), time.Since(start).Seconds(), strings.Join(urls, ","))

	var targets []*loadgen.Target
	var servers []*benchServer
	// The servers' shared secret for the fan-out (a network's blob key;
	// made for the run).
	fanSecret := make([]byte, 32)
	rand.Read(fanSecret)
	// The servers start one after the other: the first creates the
	// streams, and each rebuilds the transparency log from the store.
	for i := range benchAnomServers {
		st, err := jetstream.Open(ctx, jetstream.Options{URLs: urls, Replicas: benchNATSNodes, Name: fmt.Sprintf("anom bench server %d", i+1)})
		if err != nil {
			return fail(fmt.Errorf("opening the JetStream store for server %d: %w", i+1, err))
		}
		cleanup = append(cleanup, func() { st.Close() })
		fan, err := clusterFanout(st, fanSecret, logger.With("server", i+1))
		if err != nil {
			return fail(fmt.Errorf("the NATS fan-out of server %d: %w", i+1, err))
		}
		cleanup = append(cleanup, func() { fan.Close() })
		reg := prometheus.NewRegistry()
		srv, err := server.New(ctx, server.Config{Store: st, RootPublic: root.Public(), Directory: k.dirKey, Countersign: k.cs, CountersignCert: k.csCert,
			TLS: tc, Name: "bench", Logger: logger.With("server", i+1), EscrowPolicy: policy, Fanout: fan, Registry: reg})
		if err != nil {
			return fail(fmt.Errorf("starting anom server %d: %w", i+1, err))
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(sctx, l) }()
		cleanup = append(cleanup, func() {
			cancel()
			if err := <-done; err != nil {
				fmt.Fprintf(os.Stderr, "anom server %d: %v\n", i+1, err)
			}
		})
		servers = append(servers, &benchServer{srv: srv, reg: reg, addr: l.Addr().String()})
		targets = append(targets, &loadgen.Target{Addr: l.Addr().String(), Roots: pool, ServerName: "bench", TLSServerName: "127.0.0.1", Sources: sources(devices)})
		fmt.Printf("anom server %d running in this process on %s (JetStream store, 3 replicas)\n", i+1, l.Addr())
	}
	env := &loadgen.Env{Target: targets[0], Spread: targets, Out: os.Stdout, Workers: f.workers}
	env.Provision = func(ctx context.Context, prefix string, n int, progress func(int)) ([]*loadgen.Device, error) {
		return loadgen.ProvisionInProcess(ctx, servers[0].srv, root, prefix, n, f.workers, progress)
	}
	return &benchNet{env: env, close: closeAll, escrow: esc, servers: servers}, nil
}

// benchServer is one anom server of the bench cluster.
type benchServer struct {
	srv  *server.Server
	reg  *prometheus.Registry
	addr string
}

// serverCounts are what one server of the bench cluster did, from its
// metrics.
type serverCounts struct {
	Addr string
	// Messages is the group messages it accepted (all kinds); Pushes the
	// frames it pushed to its devices; Conflicts the group-log appends it
	// had to retry because the other server had appended first.
	Messages, Pushes, Conflicts float64
}

// counts reads the server's metrics.
func (b *benchServer) counts() (serverCounts, error) {
	c := serverCounts{Addr: b.addr}
	fams, err := b.reg.Gather()
	if err != nil {
		return c, fmt.Errorf("reading the metrics of the server on %s: %w", b.addr, err)
	}
	for _, fam := range fams {
		var p *float64
		switch fam.GetName() {
		case "anom_group_messages_total":
			p = &c.Messages
		case "anom_pushes_total":
			p = &c.Pushes
		case "anom_group_append_conflicts_total":
			p = &c.Conflicts
		default:
			continue
		}
		for _, m := range fam.GetMetric() {
			*p += m.GetCounter().GetValue()
		}
	}
	return c, nil
}

// startBenchNATS starts an n-node JetStream cluster on loopback ports,
// with its data under dir, and waits until it has a meta leader that
// every node follows.
func startBenchNATS(dir string, n int, verbose bool) ([]*natsserver.Server, error) {
	ports, err := freeLoopbackPorts(2 * n)
	if err != nil {
		return nil, err
	}
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+i]))
	}
	var nodes []*natsserver.Server
	stop := func() {
		for _, s := range nodes {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
	for i := range n {
		o := &natsserver.Options{
			ServerName: fmt.Sprintf("bench-n%d", i+1),
			Host:       "127.0.0.1",
			Port:       ports[i],
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			// Every write is fsynced before it counts towards the
			// quorum, as Pebble fsyncs before a message is acknowledged.
			SyncAlways:         true,
			JetStreamMaxMemory: 256 << 20,
			JetStreamMaxStore:  8 << 30,
			NoLog:              !verbose,
			NoSigs:             true,
			Cluster:            natsserver.ClusterOpts{Name: "anom-bench", Host: "127.0.0.1", Port: ports[n+i]},
			Routes:             natsserver.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := natsserver.NewServer(o)
		if err != nil {
			stop()
			return nil, fmt.Errorf("creating NATS node %s: %w", o.ServerName, err)
		}
		if verbose {
			s.ConfigureLogger()
		}
		go s.Start()
		nodes = append(nodes, s)
		if !s.ReadyForConnections(20 * time.Second) {
			stop()
			return nil, fmt.Errorf("NATS node %s not ready for connections after 20s", o.ServerName)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for !benchNATSReady(nodes) {
		if time.Now().After(deadline) {
			stop()
			return nil, errors.New("the bench's NATS cluster elected no JetStream meta leader in 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nodes, nil
}

// benchNATSReady says whether every node has JetStream on and follows a
// meta leader one of them is.
func benchNATSReady(nodes []*natsserver.Server) bool {
	leader := false
	for _, s := range nodes {
		if !s.JetStreamEnabled() || !s.JetStreamIsCurrent() {
			return false
		}
		leader = leader || s.JetStreamIsLeader()
	}
	return leader
}

// freeLoopbackPorts reserves n distinct loopback ports by listening on
// them, then releases them for the NATS nodes to take.
func freeLoopbackPorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserving a port for NATS: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
