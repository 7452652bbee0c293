package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"anom/escrow"
	"anom/identity"
	"anom/internal/adminapi"
	"anom/internal/loadgen"
	"anom/internal/server"
	"anom/internal/store/pebble"
	anomv1 "anom/proto/anom/v1"
)

func init() {
	register(command{name: "bench", summary: "load generator: durable msgs/s, send-to-deliver latency, memory with idle connections", run: runBench})
}

type benchFlags struct {
	addr, data, scenario   string
	metricsAddr            string
	devices, groups        int
	online, size, window   int
	rate, idleConns        int
	idlePoints             int
	workers                int
	duration, warmup       time.Duration
	settle, gcWait         time.Duration
	idleInProcess, verbose bool
	serverProcess          bool
	fileLimit              int
	heapProfile            string
	cpuProfile             string
	phaseProfile           string
	escrow, skipThroughput bool
	cluster                bool
	escrowRecords          int
	serverMemLimit         string
	serverGOGC, childGOGC  string
	mix                    string
}

func runBench(ctx context.Context, args []string) error {
	f, err := parseBenchFlags(args)
	if err != nil {
		return err
	}
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	lim, err := raiseFileLimit()
	if err != nil {
		return fmt.Errorf("raising the open file limit: %w", err)
	}
	f.fileLimit = int(lim)
	fmt.Printf("open file limit %d per process\n", lim)
	fmt.Println("note: devices, certificates, authentication and MLS group membership are real; application messages are opaque 1 KiB-class payloads framed as MLS PrivateMessages (the server never decrypts, so the load does not run MLS encryption per device)")
	if f.scenario != "idle" {
		if _, err := benchMessages(ctx, f); err != nil {
			return err
		}
	}
	if f.scenario != "messages" {
		if err := benchIdle(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// parseBenchFlags reads anom bench's flags and refuses combinations that
// cannot work, before anything is started.
func parseBenchFlags(args []string) (*benchFlags, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var f benchFlags
	fs.BoolVar(&f.cluster, "cluster", false, "run the message scenario against a cluster in this process instead of one server on Pebble: three NATS JetStream nodes (every write fsynced) and two anom servers on the JetStream store (3 replicas), with each group's members spread over both servers; the workload flags are the same")
	fs.StringVar(&f.addr, "addr", "", "host:port of a running server to load (needs --data, its network directory); empty starts one on a fresh temporary network")
	fs.StringVar(&f.metricsAddr, "metrics", defaultMetricsListen, "with --addr: host:port of that server's metrics listener (its --metrics-listen), read for the memory figures")
	fs.StringVar(&f.data, "data", "", "with --addr: the network's data directory (root key and CA; codes go to the server through its admin API, signed with the admin key in DATA.admin)")
	fs.StringVar(&f.scenario, "scenario", "all", "messages (throughput and latency), idle (memory with idle connections) or all")
	fs.IntVar(&f.devices, "devices", 12000, "devices activated for the message scenario")
	fs.IntVar(&f.groups, "groups", 300, "groups the devices are spread over")
	fs.IntVar(&f.online, "online", 0, "devices connected during the message scenario (0: all); the rest are offline members")
	fs.IntVar(&f.size, "size", 1024, "application ciphertext bytes per message")
	fs.IntVar(&f.window, "window", 1, "sends each connected device keeps outstanding in the throughput phase")
	fs.IntVar(&f.rate, "rate", 10000, "offered load of the latency phase, msgs/s (negative: skip the phase)")
	fs.BoolVar(&f.skipThroughput, "skip-throughput", false, "skip the maximum-throughput phase of the message scenario (measure latency only)")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured time of each message phase")
	fs.DurationVar(&f.warmup, "warmup", 2*time.Second, "unmeasured time before each message phase; the throughput phase's also lasts until every sender has had a message acknowledged (at most a minute more), since thousands of devices' first round is slower than the steady state")
	fs.IntVar(&f.idleConns, "idle-conns", 100000, "idle authenticated connections for the memory scenario")
	fs.DurationVar(&f.settle, "settle", 5*time.Second, "idle time before memory is measured")
	fs.IntVar(&f.idlePoints, "idle-points", 2, "memory scenario: measure at this many evenly spaced connection counts; the growth per connection is taken between the last two")
	fs.DurationVar(&f.gcWait, "gc-wait", 0, "memory scenario: wait up to this long at each point for a garbage collection, so the server's live heap is counted (the Go runtime collects at least every 2m; 0: report it only if one happened)")
	fs.BoolVar(&f.idleInProcess, "idle-in-process", false, "run the memory scenario's server in this process (its RSS then includes the load's connections)")
	fs.IntVar(&f.workers, "workers", 128, "concurrent activations and connection attempts")
	fs.BoolVar(&f.serverProcess, "server-process", false, "run the server as a separate `anom server` process (automatic when one process cannot hold both ends of the connections)")
	fs.BoolVar(&f.verbose, "v", false, "server logs to stderr")
	fs.StringVar(&f.heapProfile, "heap-profile", "", "write a heap profile of this process here while the memory scenario's connections are up (useful with --idle-in-process)")
	fs.StringVar(&f.serverMemLimit, "server-memory-limit", "", "memory limit of a separate server process (anom server --memory-limit, say 950MiB; with --idle-in-process, of this process): the Go runtime then collects garbage and returns memory to the system to stay under it; empty: none")
	fs.StringVar(&f.serverGOGC, "server-gogc", "", "GOGC of a separate server process; empty: anom server's own policy (GOGC 100 to 400 from the live heap), except where the memory scenario projects to more connections than it measures: there 100, what the policy picks at the projected live heap")
	fs.StringVar(&f.cpuProfile, "cpu-profile", "", "write a CPU profile of this process (load and, unless the server runs as its own process, server) here")
	fs.BoolVar(&f.escrow, "escrow", false, "message scenario under a real escrow policy (made for the run: 2 of 3 custodians, keys made for the run; with --addr, the network's own): every message carries an escrow record sealed to the escrow key (escrow.Seal) and signed by the sending device, for the network, group, epoch, the sender's leaf and device, a generation of its own and a claimed time near the server's, which the server verifies and countersigns. The payloads are opaque, so each group's exporter secret is a random stand-in and the sealed plaintext a stand-in of --size bytes (the server can check neither, as in a real network). Records are sealed before each phase, not while it is measured")
	fs.StringVar(&f.mix, "mix", "", "message scenario: \"anom\" runs a realistic mix instead of the worst case (groups of equal size, all online): 80% of messages in 1:1 chats (2 started by each online device), 15% in small groups (5 members, online/2 of them), 5% in large groups (40 members, devices/250 of them), members spread over online and offline devices, a quarter of --devices online unless --online says otherwise, and escrow on unless --escrow=false (--groups is not used)")
	fs.IntVar(&f.escrowRecords, "escrow-records", 0, "with --escrow: records sealed per sender for the throughput phase (0: enough for 160,000 messages in all, at least 4 each); a sender that runs out stops, and the result says so")
	fs.StringVar(&f.phaseProfile, "phase-cpu-profile", "", "write a CPU profile of this process covering only each message phase's measured time (no activation, connection, group setup or warm-up), one file per phase: the phase name goes before the extension (cpu.prof: cpu.throughput.prof, cpu.latency.prof)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: anom bench takes flags only (anom bench --help lists them)", fs.Args())
	}
	if f.cpuProfile != "" && f.phaseProfile != "" {
		return nil, errors.New("--cpu-profile and --phase-cpu-profile cannot both be given (one CPU profile at a time)")
	}
	if f.scenario != "all" && f.scenario != "messages" && f.scenario != "idle" {
		return nil, fmt.Errorf("--scenario %q: want messages, idle or all", f.scenario)
	}
	if f.cluster {
		if err := f.checkCluster(fs); err != nil {
			return nil, err
		}
	}
	switch f.mix {
	case "":
	case "anom":
		// Escrow on, as on the network the mix is modelled on, unless
		// --escrow=false asks to measure without it.
		set := false
		fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == "escrow" })
		if !set {
			f.escrow = true
		}
	default:
		return nil, fmt.Errorf("--mix %q: the only mix is anom (empty: the worst case)", f.mix)
	}
	if f.addr != "" && f.data == "" {
		return nil, errors.New("--addr needs --data, the network directory of that server")
	}
	return &f, nil
}

// raiseFileLimit raises RLIMIT_NOFILE as far as allowed (the hard limit
// too when running as root).
func raiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	want := l.Max
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n > want {
			want = n
		}
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}); err != nil {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, err
		}
		return l.Cur, nil
	}
	return want, nil
}

// benchNet is the network a scenario runs against.
type benchNet struct {
	env   *loadgen.Env
	close func()
	// escrow is set when messages must carry escrow records.
	escrow *loadgen.EscrowConfig
	// servers are the anom servers of a bench cluster (--cluster); nil
	// otherwise.
	servers []*benchServer
}

// benchResult is what the message scenario measured, and with --cluster
// what each server did.
type benchResult struct {
	*loadgen.MessagesResult
	servers []serverCounts
}

func benchMessages(ctx context.Context, f *benchFlags) (*benchResult, error) {
	var mix *loadgen.MixConfig
	if f.mix != "" {
		fmt.Printf("\n== messages: %d devices, the %s mix ==\n", f.devices, f.mix)
		mix = &loadgen.MixConfig{}
	} else {
		fmt.Printf("\n== messages: %d devices in %d groups ==\n", f.devices, f.groups)
	}
	online := f.online
	if mix != nil && online <= 0 {
		online = max(1, f.devices/4)
	}
	if online <= 0 || online > f.devices {
		online = f.devices
	}
	var n *benchNet
	var err error
	if f.cluster {
		n, err = f.clusterNetwork(ctx, f.devices, f.escrow)
	} else {
		child := f.serverProcess || 2*online+1000 > f.fileLimit
		if child && !f.serverProcess && f.addr == "" {
			fmt.Printf("%d connections need %d descriptors in one process, over its limit of %d: the server runs as a separate process\n", online, 2*online, f.fileLimit)
		}
		n, err = f.network(ctx, f.devices, child, f.escrow)
	}
	if err != nil {
		return nil, err
	}
	defer n.close()
	if n.escrow != nil {
		n.escrow.PerSender = f.escrowRecords
	}
	res, err := loadgen.Messages(ctx, n.env, loadgen.MessagesConfig{
		Devices: f.devices, Groups: f.groups, Online: f.online, Size: f.size, Window: f.window,
		Duration: f.duration, Warmup: f.warmup, Rate: f.rate, Measure: f.phaseProfiler(), Escrow: n.escrow,
		SkipThroughput: f.skipThroughput, Mix: mix,
	})
	var se *loadgen.ServerError
	if err != nil && !f.escrow && errors.As(err, &se) && se.Code == anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD {
		return nil, fmt.Errorf("%w (--escrow sends them)", err)
	}
	if err != nil {
		return nil, err
	}
	out := &benchResult{MessagesResult: res}
	cfg := res.Config
	fmt.Printf("\nresult: %d devices (%d connected), %d groups of up to %d members, %d-byte ciphertexts\n",
		cfg.Devices, cfg.Online, cfg.Groups, res.GroupSize, cfg.Size)
	if m := res.Mix; m != nil {
		shares := [3]int{m.Config.PairShare, m.Config.SmallShare, m.Config.LargeShare}
		for k, name := range loadgen.KindNames {
			if m.Groups[k] > 0 {
				fmt.Printf("  %s: %d chats, %.1f members each, %d%% of messages\n", name, m.Groups[k], float64(m.Members[k])/float64(m.Groups[k]), shares[k])
			}
		}
	}
	if n.servers != nil {
		fmt.Printf("  cluster: %d NATS JetStream nodes (3 replicas, every write fsynced), %d anom servers, each group's members spread over them; in all, from each server's metrics:\n", benchNATSNodes, len(n.servers))
		for i, s := range n.servers {
			c, err := s.counts()
			if err != nil {
				return nil, err
			}
			out.servers = append(out.servers, c)
			fmt.Printf("    server %d on %s: %.0f group messages accepted, %.0f frames pushed, %.0f group-log appends retried after the other server's\n", i+1, c.Addr, c.Messages, c.Pushes, c.Conflicts)
		}
	}
	if n.escrow != nil {
		fmt.Println("  escrow on: every message carried a device-signed escrow record, which the server verified (Ed25519) and countersigned before acknowledging it")
	} else {
		fmt.Println("  escrow off: no escrow policy, so the server checks no records (--escrow measures with them)")
	}
	if r := res.Throughput; r != nil {
		fmt.Printf("  durable throughput: %.0f msgs/s acknowledged (Sent after the fsync), %.0f pushes/s to online members; send-to-ack p50 %v p99 %v; %d errors\n",
			r.PerSecond(), r.DeliveriesPerSecond(), r.AckP50, r.AckP99, r.Errors)
		printKinds(res, r)
		printEscrowPhase(r)
	}
	if r := res.Latency; r != nil {
		fmt.Printf("  at %d msgs/s offered: %.0f msgs/s acknowledged, %.0f pushes/s; send-to-deliver p50 %v p99 %v max %v (send-to-ack p50 %v p99 %v); %d errors\n",
			r.Offered, r.PerSecond(), r.DeliveriesPerSecond(), r.DeliverP50, r.DeliverP99, r.DeliverMax, r.AckP50, r.AckP99, r.Errors)
		printKinds(res, r)
		printEscrowPhase(r)
	}
	return out, nil
}

// printKinds says, in a mix, how the phase's messages went by kind of chat.
func printKinds(res *loadgen.MessagesResult, r *loadgen.PhaseResult) {
	if res.Mix == nil || r.Acked == 0 {
		return
	}
	var parts []string
	for k, name := range loadgen.KindNames {
		parts = append(parts, fmt.Sprintf("%s %.1f%%", name, 100*float64(r.ByKind[k])/float64(r.Acked)))
	}
	fmt.Printf("    messages by chat: %s\n", strings.Join(parts, ", "))
}

// phaseProfiler returns the hook that profiles each measured phase with
// --phase-cpu-profile; nil without it.
func (f *benchFlags) phaseProfiler() func(phase string, start bool) {
	if f.phaseProfile == "" {
		return nil
	}
	var pf *os.File
	return func(phase string, start bool) {
		if !start {
			if pf != nil {
				pprof.StopCPUProfile()
				pf.Close()
				fmt.Printf("  CPU profile of the measured %s phase in %s\n", phase, pf.Name())
				pf = nil
			}
			return
		}
		ext := filepath.Ext(f.phaseProfile)
		name := strings.TrimSuffix(f.phaseProfile, ext) + "." + phase + ext
		var err error
		if pf, err = os.Create(name); err != nil {
			fmt.Fprintf(os.Stderr, "phase CPU profile: %v\n", err)
			return
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			fmt.Fprintf(os.Stderr, "phase CPU profile: %v\n", err)
			pf.Close()
			pf = nil
		}
	}
}

func printEscrowPhase(r *loadgen.PhaseResult) {
	e := r.Escrow
	if e == nil {
		return
	}
	fmt.Printf("    escrow: %d records sealed before the phase in %.1fs; ", e.Sealed, e.SealTime.Seconds())
	if e.RanOut > 0 {
		fmt.Printf("WARNING: %d senders ran out of records before the end and stopped, so the load offered less than it could (raise --escrow-records)\n", e.RanOut)
	} else {
		fmt.Println("no sender ran out")
	}
}

func benchIdle(ctx context.Context, f *benchFlags) error {
	want := f.idleConns
	conns := f.idleConns
	perProc := f.fileLimit - 1000
	if f.idleInProcess {
		perProc = f.fileLimit/2 - 1000
	}
	if conns > perProc {
		conns = perProc
		fmt.Printf("\nthe open file limit (%d per process; raising it needs CAP_SYS_RESOURCE, which this process lacks) caps a server at about %d connections: measuring %d and projecting %d from the growth per connection\n",
			f.fileLimit, perProc, conns, want)
	}
	fmt.Printf("\n== idle: %d authenticated connections ==\n", conns)
	f.childGOGC = f.serverGOGC
	if f.childGOGC == "" && conns < want && !f.idleInProcess {
		// anom server lets a small heap grow by 256 MiB before a
		// collection (gc.go); at the projected count the live heap is
		// larger and its policy is GOGC=100, so that is what is measured
		// (checked against the projected live heap below).
		f.childGOGC = "100"
	}
	n, err := f.network(ctx, conns, !f.idleInProcess, false)
	f.childGOGC = ""
	if err != nil {
		return err
	}
	defer n.close()
	if f.idleInProcess && f.addr == "" && f.serverMemLimit != "" {
		gc, _, err := applyMemoryLimit(f.serverMemLimit)
		if err != nil {
			return err
		}
		fmt.Printf("this process (server and load): %s\n", gc)
	}
	cfg := loadgen.IdleConfig{Conns: conns, Points: f.idlePoints, Settle: f.settle, GCWait: f.gcWait}
	if f.heapProfile != "" {
		cfg.Measured = func() error { return writeHeapProfile(f.heapProfile) }
	}
	res, err := loadgen.Idle(ctx, n.env, cfg)
	if err != nil {
		return err
	}
	where := "the server process"
	if f.idleInProcess && f.addr == "" {
		where = "this process (server and load together)"
	}
	last := res.Last()
	gcs := last.Memory.GCSettings()
	if f.serverMemLimit == "" && !f.idleInProcess && f.addr == "" && last.Memory.MemoryLimit > 0 {
		gcs += " (anom server's automatic limit)"
	}
	fmt.Printf("\nresult: %d idle authenticated connections (connected in %.1fs); server garbage collector: %s\n",
		res.Conns, res.ConnectTime.Seconds(), gcs)
	fmt.Printf("  memory of %s:\n  %12s %10s %20s %24s %11s %10s\n", where, "connections", "RSS", "heap in use+stacks", "live heap (at last GC)", "goroutines", "idle GCs")
	row := func(p loadgen.IdlePoint, idleGCs string) {
		m := p.Memory
		live := "-"
		if m.LiveHeap > 0 {
			live = mibs(m.LiveHeap)
			if !p.LiveCurrent {
				live += " (stale)"
			}
		}
		fmt.Printf("  %12d %10s %20s %24s %11d %10s\n", p.Conns, mibs(m.RSS), mibs(m.HeapInuse+m.StackInuse), live, m.Goroutines, idleGCs)
	}
	row(loadgen.IdlePoint{Memory: res.Before}, "")
	for _, p := range res.Points {
		row(p, strconv.FormatUint(p.IdleGCs, 10))
	}
	if l := last.Memory.MemoryLimit; l > 0 {
		fmt.Printf("  the memory limit is %s: RSS with %d connections is %.0f%% of it (the limit counts the Go runtime's memory, not the program's code)\n",
			mibs(l), last.Conns, 100*float64(last.Memory.RSS)/float64(l))
	}
	rss, hs, live := res.Growth()
	from := "between the last two rows"
	if len(res.Points) == 1 {
		from = "from the first row"
	}
	liveS := "not counted (no collection with the connections up; see --gc-wait)"
	if !math.IsNaN(live) {
		liveS = fmt.Sprintf("%.1f KiB", live/1024)
	}
	fmt.Printf("  per connection (%s): RSS %.1f KiB, heap in use + stacks %.1f KiB, live heap %s\n", from, rss/1024, hs/1024, liveS)
	if conns < want {
		prss, phs, plive := res.Project(want)
		fmt.Printf("  projected to %d connections (the last row plus %d times the growth per connection): RSS %s, heap in use + stacks %s", want, want-last.Conns, mibs(uint64(prss)), mibs(uint64(phs)))
		if !math.IsNaN(plive) {
			fmt.Printf(", live heap %s", mibs(uint64(plive)))
		}
		fmt.Println()
		if !math.IsNaN(plive) && f.serverGOGC == "" && !f.idleInProcess {
			fmt.Printf("  at that live heap anom server's own policy is GOGC=%d (measured with GOGC=%d)\n", gcPercent(uint64(plive)), last.Memory.GOGC)
		}
		if l := last.Memory.MemoryLimit; l > 0 && last.Memory.RSS > l/10*8 {
			fmt.Printf("  note: under a memory limit memory does not grow in proportion to connections; this projection holds for a limit scaled with them (limit - RSS before, times %d/%d, plus RSS before)\n", want, last.Conns)
		}
	}
	return nil
}

func mibs(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// network starts (or, with --addr, reaches) a server and returns the
// environment for a scenario that needs about devices devices. With
// child, the server runs as a separate `anom server` process whose
// devices are activated before it starts.
func (f *benchFlags) network(ctx context.Context, devices int, child, withEscrow bool) (*benchNet, error) {
	if f.addr != "" {
		return f.external(ctx, withEscrow)
	}
	dir, err := os.MkdirTemp("", "anom-bench-")
	if err != nil {
		return nil, err
	}
	cleanup := []func(){func() { os.RemoveAll(dir); os.RemoveAll(dataDir(dir).AdminDir()); os.RemoveAll(dataDir(dir).RootDir()) }}
	closeAll := func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	fail := func(err error) (*benchNet, error) { closeAll(); return nil, err }
	k, err := f.newBenchKeys(ctx, dir, withEscrow)
	if err != nil {
		return fail(err)
	}
	d, root, policy, esc, pool, tc, logger := k.d, k.root, k.policy, k.escrow, k.pool, k.tls, k.logger
	st, err := pebble.Open(d.Path("store"), pebble.Options{})
	if err != nil {
		return fail(err)
	}
	storeOpen := true
	cleanup = append(cleanup, func() {
		if storeOpen {
			st.Close()
		}
	})
	srv, err := server.New(ctx, server.Config{Store: st, RootPublic: root.Public(), Directory: k.dirKey, Countersign: k.cs, CountersignCert: k.csCert,
		TLS: tc, Name: "bench", Logger: logger, EscrowPolicy: policy})
	if err != nil {
		return fail(err)
	}
	target := &loadgen.Target{Roots: pool, ServerName: "bench", TLSServerName: "127.0.0.1"}
	env := &loadgen.Env{Target: target, Out: os.Stdout, Workers: f.workers}
	if child {
		// Activate every device now, through the server's Go API, then
		// hand the store to a separate server process.
		fmt.Printf("activating %d devices before starting the server process\n", devices)
		start := time.Now()
		devs, err := loadgen.ProvisionInProcess(ctx, srv, root, "d", devices, f.workers, progressEvery(time.Second, devices, "devices activated"))
		if err != nil {
			return fail(err)
		}
		fmt.Printf("  %d devices activated in %.1fs\n", devices, time.Since(start).Seconds())
		storeOpen = false
		if err := st.Close(); err != nil {
			return fail(err)
		}
		addr, metricsAddr, stop, err := startChild(ctx, dir, f.verbose, f.serverMemLimit, f.childGOGC)
		if err != nil {
			return fail(err)
		}
		cleanup = append(cleanup, stop)
		target.Addr, target.MetricsAddr = addr, metricsAddr
		target.Sources = sources(devices)
		used := false
		env.Provision = func(ctx context.Context, prefix string, n int, progress func(int)) ([]*loadgen.Device, error) {
			if used || n != len(devs) {
				return nil, errors.New("the server process has its devices activated beforehand only")
			}
			used = true
			if progress != nil {
				progress(n)
			}
			return devs, nil
		}
		env.Memory = func(ctx context.Context) (loadgen.Memory, error) { return loadgen.ScrapeMemory(ctx, target) }
		return &benchNet{env: env, close: closeAll, escrow: esc}, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.Close()
		return fail(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- srv.Serve(sctx, l) }()
	go func() { done <- srv.ServeMetrics(sctx, ml) }()
	cleanup = append(cleanup, func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				fmt.Fprintf(os.Stderr, "server: %v\n", err)
			}
		}
	})
	target.Addr, target.MetricsAddr = l.Addr().String(), ml.Addr().String()
	target.Sources = sources(devices)
	env.Provision = func(ctx context.Context, prefix string, n int, progress func(int)) ([]*loadgen.Device, error) {
		return loadgen.ProvisionInProcess(ctx, srv, root, prefix, n, f.workers, progress)
	}
	env.Memory = func(ctx context.Context) (loadgen.Memory, error) { return loadgen.ScrapeMemory(ctx, target) }
	fmt.Printf("server running in this process on %s (store %s)\n", target.Addr, d.Path("store"))
	return &benchNet{env: env, close: closeAll, escrow: esc}, nil
}

// sources spreads n connections over loopback source addresses,
// 25,000 per address. Each run takes its addresses from a 127.X.0.0/16
// of its own (X drawn at random), so that benches running at the same
// time do not share, and run out of, the ephemeral ports of one address.
func sources(n int) []net.IP {
	var out []net.IP
	for i := 0; i*25000 < n || i == 0; i++ {
		out = append(out, net.IPv4(127, sourceNet, byte(1+(i+1)/250), byte(2+(i+1)%250)))
	}
	return out
}

var sourceNet = byte(1 + mrand.IntN(250))

func progressEvery(every time.Duration, total int, what string) func(int) {
	var last time.Time
	start := time.Now()
	return func(d int) {
		if time.Since(last) >= every || d == total {
			if !last.IsZero() || d == total {
				fmt.Printf("  [%5.1fs] %s %d/%d\n", time.Since(start).Seconds(), what, d, total)
			}
			last = time.Now()
		}
	}
}

// startChild runs `anom server` on dir as a child process and waits until
// it accepts connections. It returns the client and metrics addresses.
func startChild(ctx context.Context, dir string, verbose bool, memLimit, gogc string) (string, string, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", "", nil, err
	}
	var addrs [2]string
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", "", nil, err
		}
		addrs[i] = l.Addr().String()
		l.Close()
	}
	addr, metricsAddr := addrs[0], addrs[1]
	args := []string{"server", "--data", dir, "--listen", addr, "--metrics-listen", metricsAddr}
	if memLimit != "" {
		args = append(args, "--memory-limit", memLimit)
		fmt.Printf("server process memory limit (--memory-limit) %s\n", memLimit)
	}
	cmd := exec.Command(exe, args...)
	if gogc != "" {
		cmd.Env = append(os.Environ(), "GOGC="+gogc)
		fmt.Printf("server process GOGC=%s\n", gogc)
	}
	var logw io.Writer = io.Discard
	if verbose {
		logw = os.Stderr
	} else if lf, err := os.Create(filepath.Join(dir, "server.log")); err == nil {
		logw = lf
	}
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Start(); err != nil {
		return "", "", nil, fmt.Errorf("starting server process: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	// The server listens on its client address before it has loaded its
	// state (a new network's transparency log, say), and on its metrics
	// address only once it has: it is ready when both answer.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if dialable(addr) && dialable(metricsAddr) {
			break
		}
		select {
		case err := <-exited:
			return "", "", nil, fmt.Errorf("server process exited: %v (log in %s)", err, filepath.Join(dir, "server.log"))
		case <-ctx.Done():
			stop()
			return "", "", nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return "", "", nil, errors.New("server process did not start listening")
		}
	}
	fmt.Printf("server running as process %d on %s (metrics on %s)\n", cmd.Process.Pid, addr, metricsAddr)
	return addr, metricsAddr, stop, nil
}

// dialable says whether a TCP connection to addr can be made.
func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// external reaches a running server: codes are issued by a distributor of
// the bench's own, certified with the network's root key and sent to the
// server through its admin API (signed with the admin key beside the data
// directory); devices activate over the wire.
func (f *benchFlags) external(ctx context.Context, withEscrow bool) (*benchNet, error) {
	d := dataDir(f.data)
	root, err := d.RootKey()
	if err != nil {
		return nil, err
	}
	_, esc, err := benchEscrow(d, root.Public(), withEscrow)
	if err != nil {
		return nil, err
	}
	pool, err := d.CAPool()
	if err != nil {
		return nil, err
	}
	ni, err := d.Info()
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(f.addr)
	if err != nil {
		return nil, fmt.Errorf("--addr: %w", err)
	}
	target := &loadgen.Target{Addr: f.addr, MetricsAddr: f.metricsAddr, Roots: pool, ServerName: ni.Name}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		target.Sources = sources(max(f.devices, f.idleConns))
	}
	env := &loadgen.Env{Target: target, Out: os.Stdout, Workers: f.workers}
	env.Provision = func(ctx context.Context, prefix string, n int, progress func(int)) ([]*loadgen.Device, error) {
		return provisionExternal(ctx, target, root, d, prefix, n, f.workers, progress)
	}
	env.Memory = func(ctx context.Context) (loadgen.Memory, error) { return loadgen.ScrapeMemory(ctx, target) }
	return &benchNet{env: env, close: func() {}, escrow: esc}, nil
}

// benchKeys is what the servers and load of a bench run on a fresh network
// need of it.
type benchKeys struct {
	d      dataDir
	root   *identity.RootKey
	policy []byte // the signed escrow policy; nil without escrow
	escrow *loadgen.EscrowConfig
	pool   *x509.CertPool
	tls    *tls.Config
	dirKey *identity.DirectorySigner
	cs     *identity.CountersignKey
	csCert *identity.OnlineKeyCertificate
	logger *slog.Logger // the servers' (to stderr with -v)
}

// newBenchKeys makes a network in netDir, with an escrow policy made for
// the run when withEscrow, and reads its keys.
func (f *benchFlags) newBenchKeys(ctx context.Context, netDir string, withEscrow bool) (*benchKeys, error) {
	if err := runAdminInit(ctx, []string{"--data", netDir, "--name", "bench"}); err != nil {
		return nil, err
	}
	k := &benchKeys{d: dataDir(netDir), logger: slog.New(slog.DiscardHandler)}
	var err error
	if k.root, err = k.d.RootKey(); err != nil {
		return nil, err
	}
	if withEscrow {
		if err := writeBenchPolicy(k.d, k.root); err != nil {
			return nil, err
		}
	}
	if k.policy, k.escrow, err = benchEscrow(k.d, k.root.Public(), withEscrow); err != nil {
		return nil, err
	}
	if k.pool, err = k.d.CAPool(); err != nil {
		return nil, err
	}
	if k.tls, err = k.d.TLSConfig(); err != nil {
		return nil, err
	}
	if k.dirKey, err = k.d.DirectorySigner(); err != nil {
		return nil, err
	}
	if k.cs, k.csCert, err = k.d.CountersignKey(); err != nil {
		return nil, err
	}
	if f.verbose {
		k.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return k, nil
}

// writeBenchPolicy deals an escrow key to 3 custodians (2 needed), with
// custodian and warrant issuer keys made for the run and thrown away,
// signs the policy with the root key and writes it where the server reads
// it.
func writeBenchPolicy(d dataDir, root *identity.RootKey) error {
	deal, err := escrow.Deal(rand.Reader, 2, 3)
	if err != nil {
		return err
	}
	p := &escrow.Policy{Version: 1, EscrowKey: deal.PublicKey, Threshold: 2, Created: time.Now().UTC().Truncate(time.Millisecond)}
	for i, sh := range deal.Shares {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		p.Custodians = append(p.Custodians, escrow.Custodian{Name: fmt.Sprintf("custodian-%d", i+1), Key: pub,
			Index: sh.Index, VerificationShare: deal.VerificationShares[i]})
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	p.Issuers = []escrow.Issuer{{Name: "bench", Key: pub}}
	sp, err := escrow.SignPolicy(p, root.Signer())
	if err != nil {
		return err
	}
	b, err := sp.MarshalBinary()
	if err != nil {
		return err
	}
	fmt.Printf("escrow policy made for the run (custodian and issuer keys made and thrown away): %s\n", p.Summary())
	tmp := d.Path("escrow-policy.new")
	if err := writeSecret(tmp, b); err != nil {
		return err
	}
	return os.Rename(tmp, d.Path("escrow-policy"))
}

// benchEscrow reads the network's escrow policy when messages must carry
// records: the signed policy for the server, and the records' settings.
func benchEscrow(d dataDir, root identity.RootPublicKey, withEscrow bool) ([]byte, *loadgen.EscrowConfig, error) {
	if !withEscrow {
		return nil, nil, nil
	}
	sp, err := readSignedPolicy(d.Path("escrow-policy"), root)
	if err != nil {
		return nil, nil, fmt.Errorf("--escrow: %w", err)
	}
	raw, err := d.SecretFile("escrow-policy")
	if err != nil {
		return nil, nil, err
	}
	return raw, &loadgen.EscrowConfig{Policy: sp.Policy, NetworkID: server.EscrowNetworkID(root)}, nil
}

func provisionExternal(ctx context.Context, t *loadgen.Target, root *identity.RootKey, d dataDir, prefix string, n, workers int, progress func(int)) ([]*loadgen.Device, error) {
	key, cert, err := loadAdminKey(d.AdminDir())
	if err != nil {
		return nil, err
	}
	ac := &adminapi.Client{Addr: t.Addr, Roots: t.Roots, Key: key, Cert: cert}
	tag := fmt.Sprintf("%s%x", prefix, time.Now().UnixNano()&0xffffff)
	name := "bench-" + tag
	dk, dc, err := loadgen.Distributor(root, name, uint32(n))
	if err != nil {
		return nil, err
	}
	if _, err := ac.Do(ctx, adminapi.OpAddDistributor, dc.Encode()); err != nil {
		return nil, fmt.Errorf("adding the bench's distributor: %w", err)
	}
	codes, batches, err := loadgen.CodeBatches(dk, name, n)
	if err != nil {
		return nil, err
	}
	for _, b := range batches {
		if _, err := ac.Do(ctx, adminapi.OpImportCodes, b.Encode()); err != nil {
			return nil, fmt.Errorf("importing the bench's codes: %w", err)
		}
	}
	// The server has taken the codes when it answered: devices activate
	// at once.
	devs := make([]*loadgen.Device, n)
	var done atomic.Int64
	err = loadgen.Parallel(ctx, n, workers, func(ctx context.Context, i int) error {
		dev, c, err := loadgen.ActivateOverWire(ctx, t, i, codes[i], fmt.Sprintf("%s-%d", tag, i), nil)
		if err != nil {
			return err
		}
		c.Close()
		devs[i] = dev
		if d := done.Add(1); progress != nil {
			progress(int(d))
		}
		return nil
	})
	return devs, err
}

func writeHeapProfile(path string) error {
	runtime.GC()
	pf, err := os.Create(path)
	if err != nil {
		return err
	}
	defer pf.Close()
	return pprof.WriteHeapProfile(pf)
}
