package systest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"anom/client"
	"anom/escrow"
	"anom/internal/archive"
	"anom/internal/loadgen"
	anomv1 "anom/proto/anom/v1"
)

// TestClusterServerKill: kill -9 of one of the two anom servers of a
// cluster while real clients and the load generator send through the
// relay. The devices that were on the killed server reconnect through the
// relay to the other and catch up. Measured as TestCrashNoLoss does
// (cmd/anom): every message a server acknowledged reaches every other
// member exactly once (0 lost, 0 duplicated), what was pushed agrees with
// the group's log, and the escrow outbox holds exactly one record per
// stored message.
func TestClusterServerKill(t *testing.T) {
	const (
		perSender = 15 // texts each real client gets acknowledged
		groups    = 2  // load generator groups
		perGroup  = 4  // devices in each
		window    = 2  // sends each load device keeps outstanding
		size      = 256
		afterKill = 1500 * time.Millisecond // load sent after the kill
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newCluster(t, 2)
	codes := c.codes(3 + groups*perGroup)
	via := c.network(c.relayAddr)

	// Real clients, connected through the relay.
	alice, bob, carol := c.activate(ctx, "alice", codes[0], via), c.activate(ctx, "bob", codes[1], via), c.activate(ctx, "carol", codes[2], via)
	devs := []*device{alice, bob, carol}
	g, err := bob.c.CreateGroup(ctx, "alice", "carol")
	if err != nil {
		t.Fatal(err)
	}
	alice.wait(t, client.EventJoined)
	carol.wait(t, client.EventJoined)
	for _, d := range devs {
		d.run(t)
	}

	// Load generator devices, through the relay too, each recording what
	// it is pushed (seq -> message number) on every connection it has.
	target := &loadgen.Target{Addr: c.relayAddr, Roots: c.pool, ServerName: networkName}
	ld := make([]*loadDevice, groups*perGroup)
	for i := range ld {
		d := &loadDevice{i: i, group: i % groups, size: size, pushed: map[uint64]uint64{}}
		d.dev, d.conn, err = loadgen.ActivateOverWire(ctx, target, i, codes[3+i], fmt.Sprintf("load-%d", i), d.onPush)
		if err != nil {
			t.Fatalf("activating load device %d: %v", i, err)
		}
		ld[i] = d
	}
	lgs := make([]*loadgen.Group, groups)
	tmpl := make([][]byte, groups)
	exporter := make([][]byte, groups) // stands in for each group's exporter secret, as loadgen's escrow does
	for gi := range lgs {
		var members []*loadgen.Device
		for _, d := range ld {
			if d.group == gi {
				members = append(members, d.dev)
			}
		}
		if lgs[gi], err = loadgen.SetupGroup(ctx, ld[gi].conn, loadgen.GroupID("systest", gi), members); err != nil {
			t.Fatalf("setting up load group %d: %v", gi, err)
		}
		tmpl[gi] = loadgen.MessageTemplate(lgs[gi].ID, lgs[gi].Epoch, size)
		exporter[gi] = make([]byte, 32)
		rand.Read(exporter[gi])
	}
	for _, d := range ld {
		d.leaf = lgs[d.group].Leaves[d.i/groups]
	}

	// The load: each device keeps window sends outstanding, each with a
	// device-signed escrow record; a connection that breaks is replaced
	// through the relay, and what was not acknowledged is sent again as
	// a new message.
	type ackRec struct {
		group int
		seq   uint64
	}
	var (
		ackMu     sync.Mutex
		acked     = map[uint64]ackRec{} // message number -> where it was put
		nextID    atomic.Uint64
		sendErrs  atomic.Int64 // errors from a server (not a broken connection)
		stopLoad  = make(chan struct{})
		loadWG    sync.WaitGroup
		plaintext = make([]byte, size)
	)
	for _, d := range ld {
		for range window {
			loadWG.Add(1)
			go func() {
				defer loadWG.Done()
				for {
					select {
					case <-stopLoad:
						return
					default:
					}
					conn, err := d.current(ctx, target)
					if err != nil {
						t.Errorf("load device %d: %v", d.i, err)
						return
					}
					gr := lgs[d.group]
					m := escrow.Metadata{NetworkID: c.root, GroupID: gr.ID, Epoch: gr.Epoch, SenderLeaf: d.leaf,
						Generation: d.gen.Add(1) - 1, SenderDevice: d.dev.Cert.DeviceID[:], ContentType: 1, SentAt: time.Now()}
					rec, err := escrow.Seal(c.policy.Policy.EscrowKey, exporter[d.group], m, plaintext)
					if err != nil {
						t.Error(err)
						return
					}
					sr, err := escrow.SignRecord(rec, d.dev.Key)
					if err != nil {
						t.Error(err)
						return
					}
					rb, err := sr.MarshalBinary()
					if err != nil {
						t.Error(err)
						return
					}
					id := nextID.Add(1)
					seq, err := conn.Sender().Send(ctx, gr.ID, loadgen.Stamp(nil, tmpl[d.group], size, id, time.Now()), rb)
					var se *loadgen.ServerError
					if errors.As(err, &se) {
						sendErrs.Add(1)
						t.Errorf("load device %d: %v", d.i, err)
						return
					}
					if err != nil {
						time.Sleep(10 * time.Millisecond)
						continue // the connection broke: current replaces it
					}
					ackMu.Lock()
					acked[id] = ackRec{d.group, seq}
					ackMu.Unlock()
				}
			}()
		}
	}

	// The real clients each send in turn; a send that fails (its
	// connection went with the server) is not acknowledged, and the next
	// text is a new one.
	var (
		mu      sync.Mutex
		texts   = map[string]string{} // acknowledged text -> sender
		tried   = map[string]bool{}
		realWG  sync.WaitGroup
		killed  = make(chan struct{})
		afterOK atomic.Int64 // texts acknowledged after the kill
	)
	for _, d := range devs {
		realWG.Add(1)
		go func() {
			defer realWG.Done()
			for i, try := 0, 0; i < perSender; try++ {
				text := fmt.Sprintf("%s-%d-%d", d.name, i, try)
				mu.Lock()
				tried[text] = true
				mu.Unlock()
				sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
				err := d.c.SendText(sctx, g, text)
				scancel()
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				mu.Lock()
				texts[text] = d.name
				mu.Unlock()
				select {
				case <-killed:
					afterOK.Add(1)
				default:
				}
				i++
				time.Sleep(30 * time.Millisecond)
			}
		}()
	}

	// The kill comes once both kinds of traffic are flowing, with most
	// of the real clients' texts still to send.
	var before, realBefore int
	waitUntil(t, "traffic before the kill", func() bool {
		ackMu.Lock()
		before = len(acked)
		ackMu.Unlock()
		mu.Lock()
		realBefore = len(texts)
		mu.Unlock()
		return before >= 50 && realBefore >= 6
	})
	c.servers[0].kill(t)
	close(killed)
	realWG.Wait()
	time.Sleep(afterKill)
	close(stopLoad)
	loadWG.Wait()
	ackMu.Lock()
	nAcked := len(acked)
	ackMu.Unlock()
	var cut int
	for _, d := range ld {
		cut += int(d.reconnects.Load())
	}
	if cut == 0 {
		t.Fatal("no load connection was on the killed server: the test did not test a failover")
	}
	if afterOK.Load() == 0 {
		t.Fatal("the real clients had nothing acknowledged after the kill")
	}

	// The real clients catch up: each has every text acknowledged to the
	// others, once, in its history and in its events.
	for _, d := range devs {
		waitUntil(t, d.name+" caught up", func() bool {
			h, err := d.c.History(g)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, m := range h {
				if m.Content.Kind == client.KindText && !m.Outgoing {
					seen[m.Content.Text] = true
				}
			}
			for text, from := range texts {
				if from != d.name && !seen[text] {
					return false
				}
			}
			return true
		})
	}
	realLost, realDup, reconnected := 0, 0, 0
	stored := map[string]bool{} // texts some member received: they are in the group's log
	for _, d := range devs {
		h, err := d.c.History(g)
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, m := range h {
			if m.Content.Kind == client.KindText {
				count[m.Content.Text]++
				if !m.Outgoing {
					stored[m.Content.Text] = true
				}
			}
		}
		events := map[string]int{}
	drain:
		for {
			select {
			case e := <-d.events:
				switch {
				case e.Type == client.EventEscrowMismatch:
					t.Errorf("%s: escrow mismatch: %s", d.name, e.Text)
				case e.Type == client.EventConnected:
					reconnected++
				case e.Type == client.EventMessage && e.Message.Content.Kind == client.KindText && !e.Message.Outgoing:
					events[e.Message.Content.Text]++
				}
			default:
				break drain
			}
		}
		for text, n := range count {
			if !tried[text] {
				t.Errorf("%s: unknown message %q", d.name, text)
			}
			if n > 1 || events[text] > 1 {
				realDup++
				t.Errorf("%s: %q %d times in history, %d events", d.name, text, n, events[text])
			}
		}
		for text, from := range texts {
			if from != d.name && count[text] != 1 {
				realLost++
				t.Errorf("%s: acknowledged %q from %s in history %d times", d.name, text, from, count[text])
			}
		}
	}
	if len(texts) != 3*perSender {
		t.Fatalf("%d texts acknowledged, want %d", len(texts), 3*perSender)
	}
	if reconnected == 0 {
		t.Error("no real client reconnected: none was on the killed server")
	}

	// Every load device reads its group's log from the start through
	// the relay (so from the surviving server).
	var lost, dup, delivered, unacked, mismatched int
	logged := make([]map[uint64]bool, groups) // message numbers in each group's log
	for gi := range logged {
		logged[gi] = map[uint64]bool{}
	}
	for _, d := range ld {
		conn, err := d.dev.Connect(ctx, target, d.i, nil)
		if err != nil {
			t.Fatalf("load device %d reconnecting: %v", d.i, err)
		}
		got := map[uint64][]uint64{} // message number -> seqs
		for from := uint64(0); ; {
			r, err := conn.Call(ctx, &anomv1.Frame{Body: &anomv1.Frame_Fetch{Fetch: &anomv1.Fetch{GroupId: lgs[d.group].ID, From: from, Max: 500}}})
			if err != nil {
				t.Fatalf("load device %d fetching: %v", d.i, err)
			}
			ms := r.GetMessages()
			for _, gm := range ms.GetMessages() {
				if len(gm.GetMessage()) != len(tmpl[d.group]) {
					continue // a commit
				}
				id, _, err := loadgen.ReadStamp(gm.GetMessage(), size)
				if err != nil {
					t.Fatal(err)
				}
				got[id] = append(got[id], gm.GetSeq())
				logged[d.group][id] = true
			}
			if len(ms.GetMessages()) == 0 {
				break
			}
			from = ms.GetMessages()[len(ms.GetMessages())-1].GetSeq() + 1
			if from > ms.GetLast() {
				break
			}
		}
		conn.Close()
		for id, a := range acked {
			if a.group != d.group {
				continue
			}
			switch seqs := got[id]; {
			case len(seqs) == 0:
				lost++
			case len(seqs) > 1:
				dup++
				delivered++
			default:
				delivered++
				if seqs[0] != a.seq {
					t.Errorf("load device %d: message %d acknowledged at seq %d, in the log at %d", d.i, id, a.seq, seqs[0])
				}
			}
		}
		for id, seqs := range got {
			if _, ok := acked[id]; !ok {
				unacked++
				if len(seqs) > 1 {
					dup++
				}
			}
		}
		d.mu.Lock()
		for seq, id := range d.pushed {
			if seqs := got[id]; len(seqs) == 0 || seqs[0] != seq {
				mismatched++
			}
		}
		d.mu.Unlock()
	}

	// The escrow outbox, read through the surviving server: one record
	// per message in each group's log.
	records := map[string]int{}
	for _, it := range pullAll(t, ctx, c.outbox(c.servers[1].addr, c.servers[1].data)) {
		if it.Kind != archive.KindRecord {
			continue
		}
		sr, err := escrow.ParseServerRecord(it.Data)
		if err != nil {
			t.Fatalf("outbox item %d: %v", it.Cursor, err)
		}
		records[string(sr.Signed.Record.Metadata.GroupID)]++
	}
	var loadStored int
	for gi := range logged {
		loadStored += len(logged[gi])
		if records[string(lgs[gi].ID)] != len(logged[gi]) {
			t.Errorf("load group %d: %d escrow records in the outbox for %d messages in its log", gi, records[string(lgs[gi].ID)], len(logged[gi]))
		}
	}
	if records[string(g)] != len(stored) {
		t.Errorf("the real clients' group: %d escrow records in the outbox for %d messages in its log", records[string(g)], len(stored))
	}

	t.Logf("real clients: %d texts acknowledged of %d tried (%d before the kill, %d after), %d stored, %d reconnections; lost %d, duplicated %d",
		len(texts), len(tried), realBefore, afterOK.Load(), len(stored), reconnected, realLost, realDup)
	t.Logf("load: %d acknowledged (%d before the kill), %d connections cut and replaced; member deliveries expected %d, delivered %d, lost %d, duplicated %d; unacknowledged but stored %d (device-reads); pushes not matching the log %d",
		nAcked, before, cut, nAcked*perGroup, delivered, lost, dup, unacked, mismatched)
	t.Logf("escrow outbox: %d records for the real group (%d stored), %d for the load groups (%d stored)",
		records[string(g)], len(stored), records[string(lgs[0].ID)]+records[string(lgs[1].ID)], loadStored)
	if lost != 0 || dup != 0 || mismatched != 0 || delivered != nAcked*perGroup || sendErrs.Load() != 0 {
		t.Fatalf("load: lost %d, duplicated %d, pushes not in the log %d, delivered %d of %d, server errors %d",
			lost, dup, mismatched, delivered, nAcked*perGroup, sendErrs.Load())
	}
}

// loadDevice is a load generator device with its current connection,
// replaced through the relay when it breaks.
type loadDevice struct {
	i, group   int
	size       int // of its messages
	dev        *loadgen.Device
	leaf       uint32
	gen        atomic.Uint32 // the next escrow record's generation
	reconnects atomic.Int64

	connMu sync.Mutex
	conn   *loadgen.Conn

	mu     sync.Mutex
	pushed map[uint64]uint64 // seq -> message number, on every connection
}

// onPush records the load messages pushed to the device.
func (d *loadDevice) onPush(f *anomv1.Frame) {
	for _, gm := range f.GetPushMessages().GetMessages() {
		if id, _, err := loadgen.ReadStamp(gm.GetMessage(), d.size); err == nil && len(gm.GetMessage()) < 2*d.size {
			d.mu.Lock()
			d.pushed[gm.GetSeq()] = id
			d.mu.Unlock()
		}
	}
}

// current returns the device's connection, first replacing a broken one
// through the relay (trying for up to 20 seconds).
func (d *loadDevice) current(ctx context.Context, target *loadgen.Target) (*loadgen.Conn, error) {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	select {
	case <-d.conn.Done():
	default:
		return d.conn, nil
	}
	d.reconnects.Add(1)
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := d.dev.Connect(ctx, target, d.i, d.onPush)
		if err == nil {
			d.conn = conn
			return conn, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("reconnecting through the relay: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 20s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
