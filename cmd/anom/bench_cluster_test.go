package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestBenchClusterSmoke runs anom bench --cluster scaled down: three NATS
// JetStream nodes and two anom servers in this process, devices spread
// over both. Both servers must have accepted messages and pushed frames,
// and every acknowledged message must reach its group's other members,
// half of whom are on the other server: pushes must cross between the
// servers. The latency phase alone runs, at a rate this machine keeps up
// with under the race detector; a saturating throughput phase would leave
// the servers' fan-out seconds behind there, and its pushes outside the
// measured time (TestBenchSmoke runs both phases).
func TestBenchClusterSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	f, err := parseBenchFlags([]string{"--cluster", "--skip-throughput",
		"--devices", "12", "--groups", "2", "--duration", "1s", "--warmup", "500ms", "--rate", "20", "--workers", "8"})
	if err != nil {
		t.Fatal(err)
	}
	lim, err := raiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	f.fileLimit = int(lim)
	res, err := benchMessages(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.servers) != benchAnomServers {
		t.Fatalf("counts of %d servers, want %d", len(res.servers), benchAnomServers)
	}
	for i, s := range res.servers {
		if s.Messages == 0 || s.Pushes == 0 {
			t.Errorf("server %d did not take its share of the load: %+v", i+1, s)
		}
	}
	r := res.Latency
	t.Logf("%d acknowledged, %d delivered to groups of %d, %d errors", r.Acked, r.Delivered, res.GroupSize, r.Errors)
	if r.Acked == 0 || r.Errors != 0 {
		t.Fatalf("%d messages acknowledged, %d errors", r.Acked, r.Errors)
	}
	// Each message goes to the group's other GroupSize-1 members, all
	// online. Messages acknowledged at the end of the measured time may
	// be pushed after it, those of the warm-up in it, so allow some
	// slack; without pushes across servers, fewer than half would arrive.
	want := r.Acked * uint64(res.GroupSize-1)
	if r.Delivered < want*8/10 {
		t.Errorf("%d deliveries of %d acknowledged messages to groups of %d: want about %d", r.Delivered, r.Acked, res.GroupSize, want)
	}
}

// TestBenchClusterFlags checks that anom bench refuses what --cluster
// cannot run, with an error that names the flag, before anything starts.
func TestBenchClusterFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster", "--addr", "127.0.0.1:8443", "--data", "net"}, "drop --addr, --data"},
		{[]string{"--cluster", "--server-process"}, "drop --server-process"},
		{[]string{"--cluster", "--idle-in-process", "--idle-conns", "10"}, "drop --idle-in-process, --idle-conns"},
		{[]string{"--cluster", "--server-memory-limit", "1GiB", "--server-gogc", "50"}, "drop --server-memory-limit, --server-gogc"},
		{[]string{"--cluster", "--metrics", "127.0.0.1:9464"}, "drop --metrics"},
		{[]string{"--cluster", "--heap-profile", "h.prof"}, "drop --heap-profile"},
		{[]string{"--cluster", "--scenario", "idle"}, "the cluster bench has the message scenario only"},
		{[]string{"--cluster", "--scenario", "all"}, "the cluster bench has the message scenario only"},
		{[]string{"--cluster", "--scenario", "nonsense"}, `--scenario "nonsense": want messages, idle or all`},
		{[]string{"--cluster", "--cpu-profile", "a", "--phase-cpu-profile", "b"}, "cannot both be given"},
		{[]string{"--cluster", "yes"}, "takes flags only"},
	} {
		start := time.Now()
		_, err := parseBenchFlags(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("anom bench %s: error %v, want one saying %q", strings.Join(c.args, " "), err, c.want)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("anom bench %s: refused after %v, want at once", strings.Join(c.args, " "), d)
		}
	}
	// What --cluster does take: the workload flags, and messages as the
	// scenario, which it is by default.
	for _, args := range [][]string{
		{"--cluster"},
		{"--cluster", "--scenario", "messages", "--devices", "100", "--groups", "10", "--online", "50", "--size", "512",
			"--window", "2", "--rate", "600", "--duration", "5s", "--warmup", "1s", "--escrow", "--phase-cpu-profile", "cpu.prof"},
	} {
		f, err := parseBenchFlags(args)
		if err != nil {
			t.Errorf("anom bench %s: %v", strings.Join(args, " "), err)
			continue
		}
		if !f.cluster || f.scenario != "messages" {
			t.Errorf("anom bench %s: cluster %v, scenario %q; want the cluster's message scenario", strings.Join(args, " "), f.cluster, f.scenario)
		}
	}
}
