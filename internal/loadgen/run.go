package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	anomv1 "anom/proto/anom/v1"
)

// Env is what the scenarios need from their caller.
type Env struct {
	// Target is the server.
	Target *Target
	// Spread, if not empty, are the servers of a cluster (several servers
	// of one network sharing a store) that the Messages scenario spreads
	// its connections over instead of Target: member m of group g
	// connects to Spread[(g+m) % len(Spread)], so the groups' creators
	// are spread evenly and every group of two or more members spans
	// servers, and its pushes cross between them. The Idle scenario uses
	// Target alone.
	Spread []*Target
	// Provision activates n new devices; prefix (lowercase letters) keeps
	// usernames unique across calls; progress, if not nil, gets the count
	// done so far.
	Provision func(ctx context.Context, prefix string, n int, progress func(int)) ([]*Device, error)
	// Memory reports the server's memory; nil if it cannot be measured.
	Memory func(ctx context.Context) (Memory, error)
	// Out receives progress lines (about one a second); nil discards them.
	Out io.Writer
	// Workers bounds concurrent activations and connection attempts; 0
	// means 128.
	Workers int
}

func (e *Env) printf(format string, args ...any) {
	if e.Out != nil {
		fmt.Fprintf(e.Out, format, args...)
	}
}

func (e *Env) workers() int {
	if e.Workers <= 0 {
		return 128
	}
	return e.Workers
}

// Memory is a server's memory use.
type Memory struct {
	// RSS is the resident set of the server process, in bytes (0 if
	// unknown).
	RSS uint64
	// HeapInuse and StackInuse are the Go runtime's in-use heap spans and
	// goroutine stacks, in bytes.
	HeapInuse, StackInuse uint64
	// Goroutines is the number of goroutines.
	Goroutines uint64
	// LiveHeap is the heap the last garbage collection found live, in
	// bytes, and GCs the collections finished so far (both 0 if the
	// server does not export them).
	LiveHeap, GCs uint64
	// GOGC and MemoryLimit are the collector's settings in force (GOGC
	// percent, -1 if off; the soft memory limit in bytes, 0 if none);
	// Settings says whether the server exports them.
	GOGC        int64
	MemoryLimit uint64
	Settings    bool
}

// ticker prints progress lines until stop is called.
func (e *Env) ticker(line func(elapsed time.Duration) string) (stop func()) {
	if e.Out == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				e.printf("  [%5.1fs] %s\n", time.Since(start).Seconds(), line(time.Since(start)))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// Parallel runs fn(i) for i in [0, n) on workers goroutines and returns
// the first error.
func Parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(max(workers, 1), max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// provision activates devices with progress lines.
func (e *Env) provision(ctx context.Context, prefix string, n int) ([]*Device, error) {
	var done atomic.Int64
	start := time.Now()
	stop := e.ticker(func(el time.Duration) string {
		d := done.Load()
		return fmt.Sprintf("devices activated %d/%d (%.0f/s)", d, n, float64(d)/el.Seconds())
	})
	devs, err := e.Provision(ctx, prefix, n, func(d int) { done.Store(int64(d)) })
	stop()
	if err != nil {
		return nil, fmt.Errorf("activating devices: %w", err)
	}
	if el := time.Since(start); el > 10*time.Millisecond {
		e.printf("  %d devices activated in %.1fs (%.0f/s)\n", n, el.Seconds(), float64(n)/el.Seconds())
	} else {
		e.printf("  %d devices were activated beforehand\n", n)
	}
	return devs, nil
}

// connectAll authenticates devs[i] on connection i to server target(i)
// (nil: e.Target), with progress lines.
func (e *Env) connectAll(ctx context.Context, devs []*Device, target func(i int) *Target, handlers func(i int) Handlers) ([]*Conn, error) {
	conns := make([]*Conn, len(devs))
	var up atomic.Int64
	start := time.Now()
	stop := e.ticker(func(el time.Duration) string {
		u := up.Load()
		return fmt.Sprintf("connections up %d/%d (%.0f/s)", u, len(devs), float64(u)/el.Seconds())
	})
	err := Parallel(ctx, len(devs), e.workers(), func(ctx context.Context, i int) error {
		var h Handlers
		if handlers != nil {
			h = handlers(i)
		}
		t := e.Target
		if target != nil {
			t = target(i)
		}
		var c *Conn
		var err error
		for attempt := 0; ; attempt++ {
			c, err = devs[i].ConnectWith(ctx, t, i, h)
			if err == nil || attempt == 4 || ctx.Err() != nil {
				break
			}
			time.Sleep(time.Duration(50<<attempt) * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns[i] = c
		up.Add(1)
		return nil
	})
	stop()
	if err != nil {
		closeAll(conns)
		return nil, err
	}
	e.printf("  %d connections authenticated in %.1fs (%.0f/s)\n", len(devs), time.Since(start).Seconds(), float64(len(devs))/time.Since(start).Seconds())
	return conns, nil
}

func closeAll(conns []*Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// MessagesConfig configures Messages. Zero fields take the defaults in
// parentheses.
type MessagesConfig struct {
	// Devices is how many devices are activated (12,000), Groups how many
	// groups they are spread over, round robin (300).
	Devices, Groups int
	// Online is how many devices are connected (all); they are the
	// senders and get pushes. The others are offline members, whose
	// messages wait in the group logs. At least Groups.
	Online int
	// Size is the application ciphertext size in bytes (1024).
	Size int
	// Window is the sends each online device keeps outstanding (1).
	Window int
	// Duration is how long each phase measures (10s); Warmup runs before
	// it unmeasured (2s). The throughput phase's warm-up also lasts until
	// every sender has had a message acknowledged (or stopped), at most
	// a minute more: a device's first message costs the server more (and
	// thousands of senders' first round takes seconds), which is not the
	// steady state the phase measures.
	Duration, Warmup time.Duration
	// Rate is the offered load of the latency phase in messages per
	// second (10,000); negative skips the phase.
	Rate int
	// SkipThroughput skips the maximum-throughput phase.
	SkipThroughput bool
	// Escrow, if not nil, makes every message carry a real escrow record
	// (see EscrowConfig); nil sends none, for a network without an
	// escrow policy.
	Escrow *EscrowConfig
	// Mix, if not nil, runs a realistic mix of 1:1 chats, small and
	// large groups (MixConfig) instead of Groups of equal size; Online
	// then defaults to a quarter of the devices.
	Mix *MixConfig
	// Measure, if not nil, is called as each phase's measured time starts
	// (start true) and ends, with the phase's name ("throughput" or
	// "latency"), on the goroutine running the scenario: to profile the
	// measured time alone, say.
	Measure func(phase string, start bool)
}

func (c *MessagesConfig) defaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Devices, 12000)
	def(&c.Groups, 300)
	if c.Mix != nil {
		def(&c.Online, max(1, c.Devices/4))
	}
	def(&c.Online, c.Devices)
	def(&c.Size, 1024)
	def(&c.Window, 1)
	def(&c.Rate, 10000)
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup <= 0 {
		c.Warmup = 2 * time.Second
	}
	c.Online = min(c.Online, c.Devices)
	c.Groups = min(c.Groups, c.Devices)
}

// PhaseResult is what one measured phase saw.
type PhaseResult struct {
	// Offered is the offered load in messages per second (0: as fast as
	// acknowledgements allow).
	Offered int
	// Acked counts messages the server acknowledged as durable (Sent)
	// during the measured time; Errors counts refused or failed sends.
	Acked, Errors uint64
	// Delivered counts pushes of measured messages to member devices.
	Delivered uint64
	Elapsed   time.Duration
	// AckLatency is send to Sent; DeliverLatency is send (the scheduled
	// send time, at a fixed offered load) to push received, over every
	// receiving device.
	AckP50, AckP99, DeliverP50, DeliverP99, DeliverMax time.Duration
	// Escrow is set when messages carried escrow records.
	Escrow *EscrowPhase
	// ByKind counts Acked by kind of chat (KindNames) in a mix.
	ByKind [kinds]uint64
}

// PerSecond is acknowledged messages per second.
func (r PhaseResult) PerSecond() float64 { return float64(r.Acked) / r.Elapsed.Seconds() }

// DeliveriesPerSecond is pushes received per second.
func (r PhaseResult) DeliveriesPerSecond() float64 {
	return float64(r.Delivered) / r.Elapsed.Seconds()
}

// MessagesResult is the result of Messages.
type MessagesResult struct {
	Config                MessagesConfig
	GroupSize             int // members per group (the largest)
	Mix                   *MixResult
	Throughput, Latency   *PhaseResult
	ActivateTime, Connect time.Duration
}

// Messages activates devices, connects the online ones, sets up the
// groups with MLS commits, then measures: maximum durable throughput
// (each online device keeps Window sends outstanding), and latency at
// a fixed offered load.
func Messages(ctx context.Context, e *Env, cfg MessagesConfig) (*MessagesResult, error) {
	cfg.defaults()
	if cfg.Mix != nil {
		m := *cfg.Mix
		m.defaults(cfg.Devices, cfg.Online)
		cfg.Mix = &m
	}
	if cfg.Mix == nil && cfg.Online < cfg.Groups {
		return nil, fmt.Errorf("%d online devices cannot create %d groups", cfg.Online, cfg.Groups)
	}
	res := &MessagesResult{Config: cfg}
	e.printf("activating %d devices\n", cfg.Devices)
	t0 := time.Now()
	devs, err := e.provision(ctx, "m", cfg.Devices)
	if err != nil {
		return nil, err
	}
	res.ActivateTime = time.Since(t0)

	// Device i is in group i % Groups; so devices 0..Groups-1 create them.
	// A mix lays out its chats itself.
	groupOf := func(i int) int { return i % cfg.Groups }
	var members [][]*Device
	var creator []int
	var plan *mixPlan
	if cfg.Mix != nil {
		plan = planMix(*cfg.Mix, cfg.Devices, cfg.Online)
		res.Mix = &MixResult{Config: *cfg.Mix}
		for g, ms := range plan.members {
			ds := make([]*Device, len(ms))
			for j, d := range ms {
				ds[j] = devs[d]
			}
			members = append(members, ds)
			creator = append(creator, ms[0])
			res.Mix.Groups[plan.kind[g]]++
			res.Mix.Members[plan.kind[g]] += len(ms)
		}
		cfg.Groups = len(members)
		res.Config = cfg
	} else {
		members = make([][]*Device, cfg.Groups)
		for i, d := range devs {
			members[groupOf(i)] = append(members[groupOf(i)], d)
		}
		for g := range members {
			creator = append(creator, g)
		}
	}
	for _, m := range members {
		res.GroupSize = max(res.GroupSize, len(m))
	}
	st := &deliveryStats{}
	var target func(i int) *Target
	if n := len(e.Spread); n > 0 {
		// Device i is member i / Groups of group i % Groups.
		target = func(i int) *Target { return e.Spread[(groupOf(i)+i/cfg.Groups)%n] }
		e.printf("connecting %d of them to %d servers in turn (the others stay offline)\n", cfg.Online, n)
	} else {
		e.printf("connecting %d of them (the others stay offline)\n", cfg.Online)
	}
	t0 = time.Now()
	conns, err := e.connectAll(ctx, devs[:cfg.Online], target, func(int) Handlers { return Handlers{Messages: st.onPush} })
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	res.Connect = time.Since(t0)

	e.printf("setting up %d MLS groups of up to %d members (commits with key packages and Welcomes)\n", cfg.Groups, res.GroupSize)
	groups := make([]*Group, cfg.Groups)
	var made atomic.Int64
	stop := e.ticker(func(time.Duration) string { return fmt.Sprintf("groups %d/%d", made.Load(), cfg.Groups) })
	run := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	err = Parallel(ctx, cfg.Groups, 8, func(ctx context.Context, g int) error {
		gr, err := SetupGroup(ctx, conns[creator[g]], GroupID(run, g), members[g])
		if err != nil {
			return fmt.Errorf("group %d: %w", g, err)
		}
		groups[g] = gr
		made.Add(1)
		return nil
	})
	stop()
	if err != nil {
		return nil, err
	}
	templates := make([][]byte, cfg.Groups)
	for g, gr := range groups {
		templates[g] = MessageTemplate(gr.ID, gr.Epoch, cfg.Size)
	}
	st.msgLen = len(templates[0])
	st.size = cfg.Size

	ld := &load{cfg: cfg, conns: conns, devs: devs[:cfg.Online], groups: groups, templates: templates, st: st,
		// Device i is member i / Groups of its group.
		pick: func(i int, _ *rand.Rand) (int, uint32) { return groupOf(i), groups[groupOf(i)].Leaves[i/cfg.Groups] }}
	if plan != nil {
		pk, err := newMixPicker(*cfg.Mix, plan, groups, cfg.Online)
		if err != nil {
			return nil, err
		}
		ld.pick, ld.kindOf = pk.pick, pk.kindOf
	}
	if cfg.Escrow != nil {
		if ld.esc, err = newEscrowLoad(cfg.Escrow, cfg.Groups, cfg.Online, cfg.Size); err != nil {
			return nil, err
		}
	}
	if !cfg.SkipThroughput {
		e.printf("phase 1: maximum durable throughput, %d senders with %d outstanding each, %s\n", cfg.Online, cfg.Window, cfg.Duration)
		r, err := ld.phase(ctx, e, "throughput", 0)
		if err != nil {
			return nil, err
		}
		res.Throughput = r
	}
	if cfg.Rate > 0 {
		e.printf("phase 2: latency at an offered load of %d msgs/s, %s\n", cfg.Rate, cfg.Duration)
		r, err := ld.phase(ctx, e, "latency", cfg.Rate)
		if err != nil {
			return nil, err
		}
		res.Latency = r
	}
	return res, nil
}

// deliveryStats counts pushes of measured messages.
type deliveryStats struct {
	msgLen, size int
	measuring    atomic.Bool
	delivered    atomic.Uint64
	hist         atomic.Pointer[Hist]
}

func (s *deliveryStats) onPush(p *Pushed) {
	if !s.measuring.Load() {
		return
	}
	now := time.Now()
	h := s.hist.Load()
	for i := range p.Messages {
		m := p.Messages[i].Message
		if len(m) != s.msgLen {
			continue // a commit
		}
		_, at, err := ReadStamp(m, s.size)
		if err != nil {
			continue
		}
		s.delivered.Add(1)
		h.Add(now.Sub(at))
	}
}

// maxFirstRound bounds how much longer than Warmup the throughput phase
// waits for every sender's first acknowledgement.
const maxFirstRound = time.Minute

type load struct {
	cfg       MessagesConfig
	conns     []*Conn
	devs      []*Device // of conns
	groups    []*Group
	templates [][]byte
	// pick chooses the group of online device i's next message, and
	// its leaf there.
	pick func(i int, rng *rand.Rand) (int, uint32)
	// kindOf is each group's kind in a mix, nil otherwise.
	kindOf []int
	st     *deliveryStats
	esc    *escrowLoad // nil: no escrow records
	nextID atomic.Uint64
}

// Schedule is the clock of an open-loop phase: it sends on the channel the
// scheduled time of each send, rate a second from now until ctx ends, for
// senders to take and stamp their message with. The channel holds at most
// a second of backlog: a send more than a second behind its time is
// dropped (not offered), so a slow server is measured by the queueing of
// what is offered, not by an ever-growing backlog.
func Schedule(ctx context.Context, rate int) <-chan time.Time {
	tokens := make(chan time.Time, rate)
	go func() {
		start := time.Now()
		var sent int64
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				due := int64(now.Sub(start).Seconds() * float64(rate))
				for ; sent < due; sent++ {
					at := start.Add(time.Duration(float64(sent) / float64(rate) * float64(time.Second)))
					select {
					case tokens <- at:
					default: // more than a second behind: dropped
					}
				}
			}
		}
	}()
	return tokens
}

// phase runs senders for Warmup+Duration and measures the Duration. rate
// 0 is closed loop (each sender sends again when acknowledged); rate > 0
// is open loop: sends are scheduled at that total rate and stamped with
// their scheduled time, so queueing behind a slow server counts.
func (l *load) phase(ctx context.Context, e *Env, name string, rate int) (*PhaseResult, error) {
	var records [][]planned
	var escrowPhase *EscrowPhase
	if l.esc != nil {
		var err error
		if records, escrowPhase, err = l.pools(ctx, e, l.perSender(rate)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var acked, errs, escrowErrs atomic.Uint64
	var byKind [kinds]atomic.Uint64
	var ranOut, senders, warmAcked atomic.Int64
	var measuring, ended atomic.Bool
	ackHist := &Hist{}
	var firstErr, firstEscrowErr atomic.Pointer[error]

	var tokens <-chan time.Time
	if rate > 0 {
		tokens = Schedule(ctx, rate)
	}

	var wg sync.WaitGroup
	for i, c := range l.conns {
		for w := range l.cfg.Window {
			var pool []planned
			if records != nil {
				pool = records[i*l.cfg.Window+w]
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf, rec []byte
				var g int
				rng := rand.New(rand.NewPCG(uint64(i), uint64(w)))
				sender := c.Sender()
				once := false
				defer func() {
					if !once {
						senders.Add(1) // stopped: not waited for
					}
				}()
				for ctx.Err() == nil {
					if records != nil {
						if len(pool) == 0 {
							if !ended.Load() {
								ranOut.Add(1)
							}
							return
						}
						g, rec, pool = pool[0].group, pool[0].rec, pool[1:]
					} else {
						g, _ = l.pick(i, rng)
					}
					at := time.Now()
					if tokens != nil {
						select {
						case at = <-tokens:
						case <-ctx.Done():
							return
						}
					}
					buf = Stamp(buf, l.templates[g], l.cfg.Size, l.nextID.Add(1), at)
					_, err := sender.Send(ctx, l.groups[g].ID, buf, rec)
					if ctx.Err() != nil {
						return
					}
					if err != nil {
						var se *ServerError
						if errors.As(err, &se) && se.Code == anomv1.ErrorCode_ERROR_CODE_RATE_LIMITED {
							time.Sleep(10 * time.Millisecond)
						}
						if se != nil && se.Code == anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD {
							escrowErrs.Add(1)
							firstEscrowErr.CompareAndSwap(nil, &err)
						}
						if measuring.Load() {
							errs.Add(1)
						}
						firstErr.CompareAndSwap(nil, &err)
						if errors.Is(err, ErrClosed) {
							return
						}
						continue
					}
					if measuring.Load() {
						acked.Add(1)
						ackHist.Add(time.Since(at))
						if l.kindOf != nil {
							byKind[l.kindOf[g]].Add(1)
						}
					} else {
						warmAcked.Add(1)
					}
					if !once {
						once = true
						senders.Add(1)
					}
				}
			}()
		}
	}
	var lastWarm int64
	lastT := time.Now()
	stop := e.ticker(func(time.Duration) string {
		now := time.Now()
		a := warmAcked.Load()
		line := fmt.Sprintf("warm-up: %8.0f msgs/s durable; %d of %d senders acknowledged at least once",
			float64(a-lastWarm)/now.Sub(lastT).Seconds(), senders.Load(), len(l.conns)*l.cfg.Window)
		lastWarm, lastT = a, now
		return line
	})
	select {
	case <-time.After(l.cfg.Warmup):
	case <-ctx.Done():
	}
	if total := int64(len(l.conns) * l.cfg.Window); rate == 0 && senders.Load() < total {
		t0 := time.Now()
		tick := time.NewTicker(10 * time.Millisecond)
		for senders.Load() < total && time.Since(t0) < maxFirstRound && ctx.Err() == nil {
			<-tick.C
		}
		tick.Stop()
		if n := senders.Load(); n < total {
			e.printf("  warm-up: %d of %d senders had a message acknowledged after %s more; measuring anyway\n", n, total, maxFirstRound)
		} else {
			e.printf("  warm-up extended by %.1fs, until every sender had a message acknowledged\n", time.Since(t0).Seconds())
		}
	}
	stop()
	dh := &Hist{}
	l.st.hist.Store(dh)
	l.st.delivered.Store(0)
	if l.cfg.Measure != nil {
		l.cfg.Measure(name, true)
	}
	l.st.measuring.Store(true)
	measuring.Store(true)
	start := time.Now()
	var lastAcked, lastDel uint64
	lastT = start
	stop = e.ticker(func(time.Duration) string {
		now := time.Now()
		a, d := acked.Load(), l.st.delivered.Load()
		dt := now.Sub(lastT).Seconds()
		line := fmt.Sprintf("%8.0f msgs/s durable, %9.0f deliveries/s; so far p50 %v p99 %v send-to-deliver, %d errors",
			float64(a-lastAcked)/dt, float64(d-lastDel)/dt, dh.Quantile(0.5), dh.Quantile(0.99), errs.Load())
		lastAcked, lastDel, lastT = a, d, now
		return line
	})
	select {
	case <-time.After(l.cfg.Duration):
	case <-ctx.Done():
	}
	ended.Store(true)
	measuring.Store(false)
	l.st.measuring.Store(false)
	if l.cfg.Measure != nil {
		l.cfg.Measure(name, false)
	}
	elapsed := time.Since(start)
	stop()
	cancel()
	wg.Wait()
	if err := ctx.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	r := &PhaseResult{
		Offered: rate, Acked: acked.Load(), Errors: errs.Load(), Delivered: l.st.delivered.Load(), Elapsed: elapsed,
		AckP50: ackHist.Quantile(0.5), AckP99: ackHist.Quantile(0.99),
		DeliverP50: dh.Quantile(0.5), DeliverP99: dh.Quantile(0.99), DeliverMax: dh.Max(),
	}
	for k := range r.ByKind {
		r.ByKind[k] = byKind[k].Load()
	}
	if escrowPhase != nil {
		escrowPhase.RanOut = int(ranOut.Load())
		r.Escrow = escrowPhase
	}
	if p := firstEscrowErr.Load(); p != nil {
		if l.esc == nil {
			return r, fmt.Errorf("the server wants escrow records (its network has an escrow policy; EscrowConfig makes them): %w", *p)
		}
		return r, fmt.Errorf("the server refused %d escrow records: %w", escrowErrs.Load(), *p)
	}
	if p := firstErr.Load(); p != nil && r.Acked == 0 {
		return r, fmt.Errorf("no message acknowledged: %w", *p)
	}
	return r, nil
}
