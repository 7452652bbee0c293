package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// IdleConfig configures Idle. Zero fields take the defaults in
// parentheses.
type IdleConfig struct {
	// Conns is how many authenticated connections to hold (100,000), one
	// per device.
	Conns int
	// Points is how many times memory is measured, with evenly spaced
	// numbers of connections up to Conns (2: at half and at all of them).
	// The growth per connection is taken between the last two points, so
	// that what the server holds whatever its load (and how the heap
	// stood before the first connection) does not count as growth; with
	// one point it is taken from before the first connection.
	Points int
	// Settle is how long to wait at each point, with its connections up,
	// before measuring (5s).
	Settle time.Duration
	// GCWait is how long to wait further at each point for a garbage
	// collection to finish, so that the server's live heap is counted
	// with every connection of the point up (0: no wait; the Go runtime
	// collects at least every two minutes). Without one the live heap is
	// not reported for that point.
	GCWait time.Duration
	// Measured, if not nil, is called after the last measurement while
	// every connection is still up (to take a heap profile, say).
	Measured func() error
}

// IdlePoint is the server's memory with some connections idle.
type IdlePoint struct {
	Conns  int
	Memory Memory
	// LiveCurrent says whether Memory.LiveHeap was counted by a
	// collection that finished with all Conns connections up.
	LiveCurrent bool
	// IdleGCs is how many collections finished while the connections
	// sat idle, before the measurement.
	IdleGCs uint64
}

// IdleResult is the result of Idle.
type IdleResult struct {
	Conns int
	// Before is the server's memory with the devices activated and no
	// connection; Points are the measurements, the last with Conns.
	Before         Memory
	Points         []IdlePoint
	ConnectTime    time.Duration
	ActivationTime time.Duration
}

// Last returns the measurement with every connection up.
func (r *IdleResult) Last() IdlePoint { return r.Points[len(r.Points)-1] }

// Growth returns what one more idle connection costs: the growth per
// connection between the last two measurements (from before the first
// connection if there is one point) of the RSS, of the Go heap in use
// plus goroutine stacks, and of the live heap (NaN unless both live
// heaps are current, so never with one point).
func (r *IdleResult) Growth() (rss, heapStack, live float64) {
	last := r.Last()
	prev := IdlePoint{Memory: r.Before}
	if len(r.Points) > 1 {
		prev = r.Points[len(r.Points)-2]
	}
	n := float64(max(last.Conns-prev.Conns, 1))
	a, b := prev.Memory, last.Memory
	rss = (float64(b.RSS) - float64(a.RSS)) / n
	heapStack = (float64(b.HeapInuse+b.StackInuse) - float64(a.HeapInuse+a.StackInuse)) / n
	live = math.NaN()
	if last.LiveCurrent && prev.LiveCurrent {
		live = (float64(b.LiveHeap) - float64(a.LiveHeap)) / n
	}
	return rss, heapStack, live
}

// Project returns the memory expected with n idle connections: the last
// measurement plus the growth per connection for each one more.
func (r *IdleResult) Project(n int) (rss, heapStack, live float64) {
	g1, g2, g3 := r.Growth()
	last := r.Last()
	more := float64(n - last.Conns)
	m := last.Memory
	return float64(m.RSS) + more*g1, float64(m.HeapInuse+m.StackInuse) + more*g2, float64(m.LiveHeap) + more*g3
}

// Idle activates Conns devices, connects and authenticates them in
// Points steps, lets the connections sit idle after each, and reports
// the server's memory before the first and after each step.
func Idle(ctx context.Context, e *Env, cfg IdleConfig) (*IdleResult, error) {
	if cfg.Conns <= 0 {
		cfg.Conns = 100000
	}
	if cfg.Points <= 0 {
		cfg.Points = 2
	}
	cfg.Points = min(cfg.Points, cfg.Conns)
	if cfg.Settle <= 0 {
		cfg.Settle = 5 * time.Second
	}
	if e.Memory == nil {
		return nil, errors.New("idle connections: the server's memory cannot be measured here")
	}
	res := &IdleResult{Conns: cfg.Conns}
	e.printf("activating %d devices\n", cfg.Conns)
	t0 := time.Now()
	devs, err := e.provision(ctx, "i", cfg.Conns)
	if err != nil {
		return nil, err
	}
	res.ActivationTime = time.Since(t0)
	if res.Before, err = e.Memory(ctx); err != nil {
		return nil, err
	}
	e.printf("server before: %s\n", res.Before)
	var conns []*Conn
	defer func() { closeAll(conns) }()
	for p := 1; p <= cfg.Points; p++ {
		upTo := cfg.Conns * p / cfg.Points
		e.printf("connecting devices %d to %d\n", len(conns)+1, upTo)
		t0 = time.Now()
		more, err := e.connectAll(ctx, devs[len(conns):upTo], nil, nil)
		if err != nil {
			return nil, err
		}
		conns = append(conns, more...)
		res.ConnectTime += time.Since(t0)
		pt, err := e.idlePoint(ctx, cfg, conns)
		if err != nil {
			return nil, err
		}
		res.Points = append(res.Points, pt)
	}
	if cfg.Measured != nil {
		if err := cfg.Measured(); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// idlePoint measures the server with conns up and idle.
func (e *Env) idlePoint(ctx context.Context, cfg IdleConfig, conns []*Conn) (IdlePoint, error) {
	pt := IdlePoint{Conns: len(conns)}
	up, err := e.Memory(ctx)
	if err != nil {
		return pt, err
	}
	e.printf("%d connections authenticated and idle; settling %s\n", len(conns), cfg.Settle)
	if err := sleep(ctx, cfg.Settle); err != nil {
		return pt, err
	}
	if pt.Memory, err = e.Memory(ctx); err != nil {
		return pt, err
	}
	if pt.Memory.GCs == up.GCs && cfg.GCWait > 0 && pt.Memory.LiveHeap > 0 {
		e.printf("waiting up to %s for a garbage collection to count the live heap\n", cfg.GCWait)
		deadline := time.Now().Add(cfg.GCWait)
		for pt.Memory.GCs == up.GCs && time.Now().Before(deadline) {
			if err := sleep(ctx, time.Second); err != nil {
				return pt, err
			}
			if pt.Memory, err = e.Memory(ctx); err != nil {
				return pt, err
			}
		}
	}
	pt.LiveCurrent = pt.Memory.GCs > up.GCs && pt.Memory.LiveHeap > 0
	pt.IdleGCs = pt.Memory.GCs - up.GCs
	for _, c := range conns {
		select {
		case <-c.Done():
			return pt, fmt.Errorf("a connection ended while idle: %v", c.Err())
		default:
		}
	}
	e.printf("server with %d connections: %s\n", len(conns), pt.Memory)
	return pt, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m Memory) String() string {
	s := fmt.Sprintf("RSS %s, Go heap in use %s, stacks %s, %d goroutines", mib(m.RSS), mib(m.HeapInuse), mib(m.StackInuse), m.Goroutines)
	if m.LiveHeap > 0 {
		s += fmt.Sprintf(", live heap at the last of %d collections %s", m.GCs, mib(m.LiveHeap))
	}
	return s
}

// GCSettings describes the server's garbage-collector settings.
func (m Memory) GCSettings() string {
	if !m.Settings {
		return "not exported by the server"
	}
	gogc := fmt.Sprintf("GOGC=%d", m.GOGC)
	if m.GOGC < 0 {
		gogc = "GOGC=off"
	}
	if m.MemoryLimit == 0 {
		return gogc + ", no memory limit"
	}
	return fmt.Sprintf("%s, memory limit %s", gogc, mib(m.MemoryLimit))
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
