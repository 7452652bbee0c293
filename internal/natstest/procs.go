package natstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"anom/internal/proctest"
)

// Procs is a JetStream cluster of nats-server processes on loopback
// ports, for the fault tests that need what an in-process cluster cannot
// give: a node killed with SIGKILL, losing whatever it had not written.
// Each node fsyncs every write (sync_interval: always), as Cluster's do.
// The processes die with the test (and with the test binary, by a parent
// death signal where the system has one).
type Procs struct {
	t     testing.TB
	bin   string
	nodes []*proc
	nc    *nats.Conn // the cluster's view, for leader and replica state
	js    js.JetStream
}

type proc struct {
	name    string
	port    int // client port
	monPort int // monitoring (HTTP) port
	conf    string
	log     string
	mu      sync.Mutex
	cmd     *exec.Cmd     // nil while killed
	exited  chan struct{} // closed when cmd has exited
}

// StartProcs starts an n-node JetStream cluster of nats-server processes
// built from the nats-server version in go.mod, and waits until every
// node reports itself healthy. The nodes are killed when the test ends.
func StartProcs(t testing.TB, n int) *Procs {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: %d nodes", n)
	}
	bin, err := serverBinary()
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	ports := proctest.FreePorts(t, 3*n)
	var routes []string
	for i := 0; i < n; i++ {
		routes = append(routes, fmt.Sprintf("%q", fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+i])))
	}
	base := t.TempDir()
	p := &Procs{t: t, bin: bin}
	for i := 0; i < n; i++ {
		nd := &proc{name: fmt.Sprintf("n%d", i+1), port: ports[i], monPort: ports[2*n+i]}
		dir := filepath.Join(base, nd.name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatalf("natstest: %v", err)
		}
		conf := fmt.Sprintf(`server_name: %q
listen: "127.0.0.1:%d"
http: "127.0.0.1:%d"
jetstream {
  store_dir: %q
  sync_interval: always
  max_memory_store: 268435456
  max_file_store: 8589934592
}
`, nd.name, nd.port, nd.monPort, filepath.Join(dir, "js"))
		if n > 1 {
			conf += fmt.Sprintf("cluster {\n  name: %q\n  listen: \"127.0.0.1:%d\"\n  routes: [%s]\n}\n",
				ClusterName, ports[n+i], strings.Join(routes, ", "))
		}
		nd.conf = filepath.Join(dir, "nats.conf")
		nd.log = filepath.Join(dir, "nats.log")
		if err := os.WriteFile(nd.conf, []byte(conf), 0o600); err != nil {
			t.Fatalf("natstest: %v", err)
		}
		p.nodes = append(p.nodes, nd)
	}
	t.Cleanup(p.shutdown)
	for i := range p.nodes {
		if err := p.start(i); err != nil {
			t.Fatalf("natstest: %v", err)
		}
	}
	for i := range p.nodes {
		if err := p.WaitHealthy(i, 30*time.Second); err != nil {
			t.Fatalf("natstest: %v", err)
		}
	}
	nc, err := nats.Connect(strings.Join(p.URLs(), ","), nats.Name("natstest"), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("natstest: connecting to the cluster: %v", err)
	}
	p.nc = nc
	if p.js, err = js.New(nc); err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return p
}

// serverBinary returns the path of a nats-server binary of the version
// this module requires, building it (go build, into the user's cache
// directory) the first time.
var serverBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "anom-natstest")
	path := filepath.Join(dir, fmt.Sprintf("nats-server-v%s-%s-%s", server.VERSION, runtime.GOOS, runtime.GOARCH))
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("making the nats-server build directory: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", fmt.Errorf("making the nats-server build directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "nats-server")
	cmd := exec.Command("go", "build", "-o", out, "github.com/nats-io/nats-server/v2")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building nats-server v%s (go build github.com/nats-io/nats-server/v2; is the go command on PATH?): %v\n%s", server.VERSION, err, b)
	}
	// Renamed into place whole, so a concurrent test binary never runs a
	// half-written file.
	if err := os.Rename(out, path); err != nil {
		return "", fmt.Errorf("keeping the nats-server binary: %w", err)
	}
	return path, nil
})

// start starts node i's process and waits until it accepts clients.
func (p *Procs) start(i int) error {
	nd := p.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd != nil {
		return fmt.Errorf("node %s is running", nd.name)
	}
	logf, err := os.OpenFile(nd.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(p.bin, "-c", nd.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting node %s: %w", nd.name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	nd.cmd, nd.exited = cmd, exited
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/varz", nd.monPort))
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-exited:
			nd.cmd = nil
			return fmt.Errorf("node %s exited at start:\n%s", nd.name, tail(nd.log))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not listening after 20s:\n%s", nd.name, tail(nd.log))
		}
	}
}

// tail returns the end of a log file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// URLs returns the client URLs of all nodes, running or not.
func (p *Procs) URLs() []string {
	var urls []string
	for _, nd := range p.nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", nd.port))
	}
	return urls
}

// Len is the number of nodes.
func (p *Procs) Len() int { return len(p.nodes) }

// Name returns node i's server name ("n1", "n2", ...).
func (p *Procs) Name(i int) string { return p.nodes[i].name }

// Index returns the index of the node named name, or -1.
func (p *Procs) Index(name string) int {
	for i, nd := range p.nodes {
		if nd.name == name {
			return i
		}
	}
	return -1
}

// Kill kills node i with SIGKILL and waits until it has exited: what it
// had not written is lost, as in a crash. Its data stays for Restart.
func (p *Procs) Kill(i int) {
	p.t.Helper()
	nd := p.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return
	}
	if err := nd.cmd.Process.Kill(); err != nil {
		p.t.Errorf("natstest: killing node %s: %v", nd.name, err)
	}
	<-nd.exited
	nd.cmd = nil
}

// Restart starts killed node i again on its ports and data, and waits
// until it accepts clients (not until it has caught up: see
// StreamCurrent and WaitHealthy).
func (p *Procs) Restart(i int) error { return p.start(i) }

// WaitHealthy waits until node i's health check (/healthz) passes: its
// JetStream is up and its streams have caught up with their leaders.
func (p *Procs) WaitHealthy(i int, timeout time.Duration) error {
	nd := p.nodes[i]
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", nd.monPort)
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for {
		resp, err := http.Get(url)
		if err == nil {
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(b.String()))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not healthy after %v (%s)", nd.name, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// streamCluster returns the cluster part of the stream's info, as the
// stream's leader sees it.
func (p *Procs) streamCluster(ctx context.Context, stream string) (*js.ClusterInfo, error) {
	st, err := p.js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	ci := st.CachedInfo().Cluster
	if ci == nil {
		return nil, fmt.Errorf("stream %s: no cluster information (not clustered?)", stream)
	}
	return ci, nil
}

// StreamLeader returns the index of the node leading the stream.
func (p *Procs) StreamLeader(ctx context.Context, stream string) (int, error) {
	ci, err := p.streamCluster(ctx, stream)
	if err != nil {
		return -1, err
	}
	i := p.Index(ci.Leader)
	if i < 0 {
		return -1, fmt.Errorf("stream %s has no leader among the nodes (leader %q)", stream, ci.Leader)
	}
	return i, nil
}

// StreamCurrent reports whether node i holds a replica of the stream that
// is caught up with the leader: it is the leader, or the leader sees its
// replica online, current and with no lag.
func (p *Procs) StreamCurrent(ctx context.Context, stream string, i int) (bool, error) {
	ci, err := p.streamCluster(ctx, stream)
	if err != nil {
		return false, err
	}
	name := p.nodes[i].name
	if ci.Leader == name {
		return true, nil
	}
	for _, r := range ci.Replicas {
		if r.Name == name {
			return r.Current && !r.Offline && r.Lag == 0, nil
		}
	}
	return false, nil
}

// MoveStreamLeader asks the stream's leader to step down in favour of
// node to, and waits until node to leads the stream.
func (p *Procs) MoveStreamLeader(ctx context.Context, stream string, to int) error {
	want := p.nodes[to].name
	for {
		ci, err := p.streamCluster(ctx, stream)
		if err == nil && ci.Leader == want {
			return nil
		}
		if err == nil && ci.Leader != "" {
			req, _ := json.Marshal(server.JSApiLeaderStepdownRequest{Placement: &server.Placement{Preferred: want}})
			resp, err := p.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, req)
			if err != nil && ctx.Err() != nil {
				return fmt.Errorf("moving the leader of %s to %s: %w", stream, want, err)
			}
			if err == nil {
				var r server.JSApiStreamLeaderStepDownResponse
				if err := json.Unmarshal(resp.Data, &r); err != nil {
					return fmt.Errorf("moving the leader of %s to %s: decoding the answer: %w", stream, want, err)
				}
				if r.Error != nil && !strings.Contains(r.Error.Description, "already leader") {
					return fmt.Errorf("moving the leader of %s to %s: %v", stream, want, r.Error)
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("moving the leader of %s to %s: %w", stream, want, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// shutdown kills every node and closes the view's connection.
func (p *Procs) shutdown() {
	if p.nc != nil {
		p.nc.Close()
	}
	for i := range p.nodes {
		p.Kill(i)
	}
}
