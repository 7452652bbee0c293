package natsfault

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/loadgen"
	"anom/internal/natstest"
	"anom/internal/server"
	"anom/internal/servertest"
	"anom/internal/store/jetstream"
	"anom/internal/tlstest"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// The shape of the load: devices in groups, each member connected to one
// of the two servers in turn, each sending with a few messages in flight.
const (
	groups   = 2
	perGroup = 4
	window   = 2 // sends each device keeps outstanding
	size     = 256
	prefix   = "fault"
	// storeTimeout is the servers' JetStream request timeout: short, so a
	// request to a killed leader fails within the test's time.
	storeTimeout = 1500 * time.Millisecond
)

// TestFaultKillStreamLeader kills -9 the NATS node that leads the stream
// of the group logs (and, moved there first, the KV stream) while devices
// send through two anom servers, keeps sending until the cluster has a
// new leader and acknowledges again, restarts the killed node under the
// same load and waits until it has caught up. Every acknowledged message
// must then be in its group's log exactly once, read by every member;
// what devices were pushed must agree with the log. A send that failed
// is handled as the client's outbox does: the device looks for it in the
// group's log and sends it again only if it is not there.
func TestFaultKillStreamLeader(t *testing.T) {
	f := newFault(t)
	logs, kv := prefix+"_logs", prefix+"_kv"
	victim, err := f.procs.StreamLeader(f.ctx, logs)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.procs.MoveStreamLeader(f.ctx, kv, victim); err != nil {
		t.Fatal(err)
	}
	f.killAndRestart(victim, fmt.Sprintf("leader of %s and %s", logs, kv))
}

// TestFaultKillFollower is TestFaultKillStreamLeader with the node killed
// leading none of the streams: the leaders keep their quorum of two, so
// there is no election, but the servers connected to that node lose
// their NATS connection and reconnect to another.
func TestFaultKillFollower(t *testing.T) {
	f := newFault(t)
	streams := []string{prefix + "_logs", prefix + "_kv", prefix + "_blobs"}
	leads := map[int]bool{}
	for _, st := range streams {
		i, err := f.procs.StreamLeader(f.ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		leads[i] = true
	}
	victim := -1
	for i := range f.procs.Len() {
		if !leads[i] {
			victim = i
			break
		}
	}
	if victim < 0 {
		// Every node leads a stream: move the KV and blob streams'
		// leaders to the logs stream's.
		for _, st := range streams[1:] {
			if err := f.procs.MoveStreamLeader(f.ctx, st, 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.procs.MoveStreamLeader(f.ctx, streams[0], 0); err != nil {
			t.Fatal(err)
		}
		victim = 1
	}
	f.killAndRestart(victim, "a follower of every stream")
}

// killAndRestart runs the load, kills node victim with SIGKILL, keeps the
// load on until a message sent after the kill is acknowledged, restarts
// the node under the load, waits until it has caught up, stops the load
// and checks every member's log.
func (f *fault) killAndRestart(victim int, what string) {
	t := f.t
	f.startLoad()
	time.Sleep(time.Second)
	f.kill(victim)
	recovery := f.waitRecovered(30 * time.Second)
	time.Sleep(250 * time.Millisecond)
	rejoin := f.restart(victim, prefix+"_logs", prefix+"_kv", prefix+"_blobs")
	time.Sleep(250 * time.Millisecond)
	f.stopLoad()
	r := f.check()
	t.Logf("kill -9 of %s, %s: %s; recovery (kill to the first acknowledgement of a message sent after it) %v, rejoin (restart to all replicas current) %v; test took %v",
		f.procs.Name(victim), what, r, recovery.Round(time.Millisecond), rejoin.Round(time.Millisecond), time.Since(f.start).Round(time.Millisecond))
	r.fail(t)
}

// fault is one run: the NATS processes, two anom servers on one
// JetStream store, and the devices in their groups.
type fault struct {
	t     *testing.T
	ctx   context.Context
	start time.Time
	procs *natstest.Procs
	devs  []*device
	gs    []*loadgen.Group
	tmpl  [][]byte

	stop    chan struct{} // closed to end the load
	senders sync.WaitGroup
	nextID  atomic.Uint64
	sent    atomic.Int64
	failed  atomic.Int64 // send attempts that got an error
	resent  atomic.Int64 // messages sent again after a failed attempt

	mu      sync.Mutex
	acked   map[uint64]ack // message number -> where the server put it
	found   map[uint64]int // message number -> group: answer failed, found in the log
	dropped int            // messages neither acknowledged nor found when the load ended
	codes   map[string]int // failed send attempts by error code
	high    []uint64       // per group, the highest acknowledged sequence
	killAt  time.Time
	firstOK time.Time // first acknowledgement of a message sent after killAt
	okAfter chan struct{}
}

type ack struct {
	group int
	seq   uint64
}

// device is a member device, recording what it is pushed.
type device struct {
	dev   *loadgen.Device
	conn  *loadgen.Conn
	group int

	mu     sync.Mutex
	pushed map[uint64]uint64 // seq -> message number
	repush int               // pushes of a sequence already pushed
}

// newFault starts three nats-server processes, two anom servers on a
// JetStream store kept by them (R3), and the devices in their groups.
func newFault(t *testing.T) *fault {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	f := &fault{t: t, ctx: ctx, start: time.Now(), stop: make(chan struct{}), acked: map[uint64]ack{}, found: map[uint64]int{}, codes: map[string]int{},
		high: make([]uint64, groups), okAfter: make(chan struct{})}
	f.procs = natstest.StartProcs(t, 3)
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pki := tlstest.New(t, "127.0.0.1")
	var base server.Config
	servertest.Keys(t, &base, root)
	var srvs []*server.Server
	var targets []*loadgen.Target
	for _, node := range []string{"a", "b"} {
		st, err := jetstream.Open(ctx, jetstream.Options{URLs: f.procs.URLs(), Prefix: prefix, Timeout: storeTimeout, Name: "anom-" + node})
		if err != nil {
			t.Fatal(err)
		}
		cfg := base
		cfg.Store, cfg.TLS, cfg.Name = st, pki.Server, "fault"
		cfg.Fanout = server.NewStoreFanout(st, []byte(node))
		cfg.Limits.RequestsPerSecond, cfg.Limits.RequestBurst = 1e9, 1<<30
		srv, err := server.New(context.Background(), cfg)
		if err != nil {
			st.Close()
			t.Fatalf("server %s: %v", node, err)
		}
		addr, _ := servertest.Serve(t, srv, st, "127.0.0.1:0")
		srvs = append(srvs, srv)
		targets = append(targets, &loadgen.Target{Addr: addr, Roots: pki.Pool, ServerName: "fault"})
	}
	devs, err := loadgen.ProvisionInProcess(ctx, srvs[0], root, "fault", groups*perGroup, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range devs {
		dv := &device{dev: d, group: i / perGroup, pushed: map[uint64]uint64{}}
		dv.conn, err = d.Connect(ctx, targets[i%len(targets)], i, dv.onPush)
		if err != nil {
			t.Fatalf("connecting device %d: %v", i, err)
		}
		t.Cleanup(dv.conn.Close)
		f.devs = append(f.devs, dv)
	}
	for g := range groups {
		members := devs[g*perGroup : (g+1)*perGroup]
		gr, err := loadgen.SetupGroup(ctx, f.devs[g*perGroup].conn, loadgen.GroupID("fault", g), members)
		if err != nil {
			t.Fatalf("setting up group %d: %v", g, err)
		}
		f.gs = append(f.gs, gr)
		f.tmpl = append(f.tmpl, loadgen.MessageTemplate(gr.ID, gr.Epoch, size))
	}
	t.Logf("set-up (3 nats-server processes, 2 servers, %d devices in %d groups) took %v", len(devs), groups, time.Since(f.start).Round(time.Millisecond))
	return f
}

// stampOf returns the message number of a load message, false for
// anything else (the commits that set the groups up).
func stampOf(msg []byte) (uint64, bool) {
	m, err := mls.DecodeMLSMessage(msg)
	if err != nil || m.WireFormat != mls.WirePrivateMessage {
		return 0, false
	}
	id, _, err := loadgen.ReadStamp(msg, size)
	return id, err == nil
}

func (dv *device) onPush(fr *anomv1.Frame) {
	for _, gm := range fr.GetPushMessages().GetMessages() {
		id, ok := stampOf(gm.GetMessage())
		if !ok {
			continue
		}
		dv.mu.Lock()
		if _, seen := dv.pushed[gm.GetSeq()]; seen {
			dv.repush++
		} else {
			dv.pushed[gm.GetSeq()] = id
		}
		dv.mu.Unlock()
	}
}

// startLoad starts every device's senders.
func (f *fault) startLoad() {
	for _, dv := range f.devs {
		for range window {
			f.senders.Add(1)
			go func() {
				defer f.senders.Done()
				f.sendLoop(dv)
			}()
		}
	}
}

// stopLoad ends the load and waits for the senders. A message in flight
// is finished (sent again while it is neither acknowledged nor in the
// log), for as long as the test's context lasts.
func (f *fault) stopLoad() {
	close(f.stop)
	f.senders.Wait()
}

func (f *fault) stopping() bool {
	select {
	case <-f.stop:
		return true
	default:
		return false
	}
}

// sendLoop sends new messages until the load stops.
func (f *fault) sendLoop(dv *device) {
	s := dv.conn.Sender()
	for !f.stopping() && f.ctx.Err() == nil {
		f.sendOne(dv, s)
	}
}

// sendOne sends one new message until it is acknowledged or found in the
// group's log, as the client's outbox does.
func (f *fault) sendOne(dv *device, s *loadgen.Sender) {
	g := f.gs[dv.group]
	id := f.nextID.Add(1)
	msg := loadgen.Stamp(nil, f.tmpl[dv.group], size, id, time.Now())
	f.mu.Lock()
	from := f.high[dv.group] + 1 // the message goes after every one acknowledged so far
	f.mu.Unlock()
	f.sent.Add(1)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			f.resent.Add(1)
		}
		sentAt := time.Now()
		seq, err := s.Send(f.ctx, g.ID, msg, nil)
		if err == nil {
			f.mu.Lock()
			f.acked[id] = ack{dv.group, seq}
			f.high[dv.group] = max(f.high[dv.group], seq)
			if !f.killAt.IsZero() && sentAt.After(f.killAt) && f.firstOK.IsZero() {
				f.firstOK = time.Now()
				close(f.okAfter)
			}
			f.mu.Unlock()
			return
		}
		f.failed.Add(1)
		var se *loadgen.ServerError
		if !errors.As(err, &se) {
			f.t.Errorf("device %s: send failed other than with the server's error: %v", dv.dev.Cert.DeviceID, err)
			return
		}
		f.mu.Lock()
		f.codes[se.Code.String()]++
		if se.Code != anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE {
			// A client keeps and sends again only what failed for want
			// of the server; any other code makes it drop the message,
			// which may well be in the log.
			f.t.Errorf("device %s: a send failed with %v, want UNAVAILABLE while the cluster recovers", dv.dev.Cert.DeviceID, se)
		}
		f.mu.Unlock()
		// The answer is lost or the server failed: the message may be
		// in the log. Look before sending it again.
		for {
			in, err := f.inLog(dv, from, id)
			if err == nil && in {
				f.mu.Lock()
				f.found[id] = dv.group
				f.mu.Unlock()
				return
			}
			if err == nil {
				break
			}
			if f.ctx.Err() != nil {
				f.mu.Lock()
				f.dropped++
				f.mu.Unlock()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inLog reports whether message id is in the device's group log at or
// after sequence from.
func (f *fault) inLog(dv *device, from, id uint64) (bool, error) {
	found := false
	err := f.readLog(dv, from, func(_ uint64, got uint64) {
		found = found || got == id
	})
	return found, err
}

// readLog reads the device's group log from sequence from to its end and
// calls fn with the sequence and message number of each load message.
func (f *fault) readLog(dv *device, from uint64, fn func(seq, id uint64)) error {
	g := f.gs[dv.group]
	for {
		r, err := dv.conn.Call(f.ctx, &anomv1.Frame{Body: &anomv1.Frame_Fetch{Fetch: &anomv1.Fetch{GroupId: g.ID, From: from, Max: 500}}})
		if err != nil {
			return err
		}
		ms := r.GetMessages()
		for _, gm := range ms.GetMessages() {
			if id, ok := stampOf(gm.GetMessage()); ok {
				fn(gm.GetSeq(), id)
			}
		}
		if len(ms.GetMessages()) == 0 {
			return nil
		}
		from = ms.GetMessages()[len(ms.GetMessages())-1].GetSeq() + 1
		if from > ms.GetLast() {
			return nil
		}
	}
}

// kill kills node i with SIGKILL mid-load.
func (f *fault) kill(i int) {
	f.mu.Lock()
	f.killAt = time.Now()
	f.mu.Unlock()
	f.procs.Kill(i)
}

// waitRecovered waits until a message sent after the kill is
// acknowledged and returns how long after the kill that was.
func (f *fault) waitRecovered(timeout time.Duration) time.Duration {
	f.t.Helper()
	select {
	case <-f.okAfter:
	case <-time.After(timeout):
		f.t.Fatalf("no message sent after the kill acknowledged within %v (%d send attempts failed)", timeout, f.failed.Load())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.firstOK.Sub(f.killAt)
}

// restart starts node i again under the load and waits until its replica
// of every stream is current; it returns how long that took.
func (f *fault) restart(i int, streams ...string) time.Duration {
	f.t.Helper()
	at := time.Now()
	if err := f.procs.Restart(i); err != nil {
		f.t.Fatal(err)
	}
	deadline := at.Add(30 * time.Second)
	if err := f.procs.WaitHealthy(i, time.Until(deadline)); err != nil {
		f.t.Fatal(err)
	}
	healthy := time.Since(at)
	for _, st := range streams {
		for {
			ok, err := f.procs.StreamCurrent(f.ctx, st, i)
			if ok {
				break
			}
			if time.Now().After(deadline) {
				f.t.Fatalf("node %s: stream %s not current 30s after the restart (last error: %v)", f.procs.Name(i), st, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	f.t.Logf("node %s: healthy %v after the restart, all replicas current after %v", f.procs.Name(i), healthy.Round(time.Millisecond), time.Since(at).Round(time.Millisecond))
	return time.Since(at)
}

// result is what every member read from its group's log after the run.
type result struct {
	sent, acked, found, dropped, failed, resent int
	expected, delivered, lost, dup, pushed      int
	repush, pushMismatch                        int
	codes                                       map[string]int
}

func (r result) String() string {
	return fmt.Sprintf("sent %d messages, %d acknowledged, %d found in the log after a failed answer, %d given up; %d send attempts failed %v, %d resent; "+
		"member deliveries expected %d, delivered %d, lost %d, duplicated %d; pushes %d, pushed twice %d, not matching the log %d",
		r.sent, r.acked, r.found, r.dropped, r.failed, r.codes, r.resent, r.expected, r.delivered, r.lost, r.dup, r.pushed, r.repush, r.pushMismatch)
}

func (r result) fail(t *testing.T) {
	t.Helper()
	if r.lost != 0 || r.dup != 0 || r.delivered != r.expected || r.repush != 0 || r.pushMismatch != 0 || r.dropped != 0 {
		t.Fatalf("lost %d, duplicated %d, delivered %d of %d, pushed twice %d, pushes not in the log %d, given up %d",
			r.lost, r.dup, r.delivered, r.expected, r.repush, r.pushMismatch, r.dropped)
	}
	if r.acked == 0 {
		t.Fatal("nothing acknowledged")
	}
}

// check has every member read its group's log from the start and
// compares it with what was acknowledged and pushed.
func (f *fault) check() result {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	r := result{sent: int(f.sent.Load()), acked: len(f.acked), found: len(f.found), dropped: f.dropped,
		failed: int(f.failed.Load()), resent: int(f.resent.Load()), codes: f.codes}
	for _, dv := range f.devs {
		seqs := map[uint64][]uint64{} // message number -> its sequences in the log
		err := f.readLog(dv, 1, func(seq, id uint64) { seqs[id] = append(seqs[id], seq) })
		if err != nil {
			f.t.Fatalf("device %s reading its group's log: %v", dv.dev.Cert.DeviceID, err)
		}
		for id, a := range f.acked {
			if a.group != dv.group {
				continue
			}
			r.expected++
			switch s := seqs[id]; {
			case len(s) == 0:
				r.lost++
			case s[0] != a.seq:
				f.t.Errorf("message %d acknowledged at %d, in the log at %v", id, a.seq, s)
				r.delivered++
			default:
				r.delivered++
			}
		}
		var dups []uint64
		for id, s := range seqs {
			if len(s) > 1 {
				r.dup++
				dups = append(dups, id)
			}
		}
		sort.Slice(dups, func(i, j int) bool { return dups[i] < dups[j] })
		if len(dups) > 0 {
			f.t.Errorf("device %s: messages in the log more than once: %v", dv.dev.Cert.DeviceID, dups[:min(len(dups), 10)])
		}
		dv.mu.Lock()
		r.pushed += len(dv.pushed)
		r.repush += dv.repush
		for seq, id := range dv.pushed {
			if s := seqs[id]; len(s) == 0 || s[0] != seq {
				r.pushMismatch++
			}
		}
		dv.mu.Unlock()
	}
	return r
}
