// Package natsfanout carries pushes between the servers of a cluster on
// a NATS core subject, "<prefix>.push" (prefix: the JetStream store's),
// over the connection the servers already have to the store's NATS
// cluster. Every server publishes its pushes there and subscribes once:
// one subscription per server, never one JetStream consumer per device,
// and nothing is stored, since a push is only a wake-up (a device that
// misses one catches up from its cursor in the store).
//
// Pushes are batched: a publisher that was idle for FlushInterval sends
// a push at once; one that sent a batch less than FlushInterval ago
// gathers what comes until then into one NATS message (or until
// MaxBatchBytes), so a busy server sends few large messages and an idle
// one adds no delay.
//
// Each batch carries its publisher's random node ID, a sequence number
// and the publisher's time, and an HMAC-SHA256 tag under a key derived
// (HKDF) from a secret every server of the network holds and nobody else
// does: the network's blob key (blob.key in its data directory), which
// the servers share anyway because each checks the blob tokens the
// others issue. Anyone else who can publish on the subject (another
// network on the same NATS account, a client with stolen NATS
// credentials) gets its batches dropped and counted as forged.
//
// Replays: a receiver keeps, for every publisher heard from in the last
// two Windows, the highest sequence it accepted, and drops a batch whose
// sequence is not above it, or whose time is more than Window from its
// own clock. An authentic batch replayed later is dropped, with one
// exception: a receiver that started after the batch was published and
// less than Window before the replay has no record of its publisher and
// accepts it once. Such a replay delivers again, to that receiver's
// sessions, pushes a server of the network really sent at most Window
// ago: copies of frames already in the store, which the devices named
// may read anyway and handle as duplicates. A receiver whose clock is
// more than Window off the publishers' drops their batches (counted as
// stale): keep the servers' clocks synchronised.
package natsfanout

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"anom/internal/push"
)

// Defaults of Options.
const (
	DefaultFlushInterval = time.Millisecond
	DefaultMaxBatchBytes = 256 << 10
	DefaultWindow        = time.Minute
)

// Options configures New.
type Options struct {
	// Conn is the connection to NATS, typically the store's
	// (jetstream.Store.Conn); the Fanout neither drains nor closes it.
	Conn *nats.Conn
	// Prefix is the network's subject prefix (the JetStream store's,
	// jetstream.Store.Prefix); batches go on "<Prefix>.push".
	Prefix string
	// Secret is the secret the servers of the network share (at least
	// MinSecretLen bytes): the network's blob key.
	Secret []byte
	// Now is the clock of the batches' times and of the replay check;
	// nil means time.Now.
	Now func() time.Time
	// FlushInterval is the least time between two batches of this
	// publisher; zero means DefaultFlushInterval.
	FlushInterval time.Duration
	// MaxBatchBytes caps a batch of several pushes (a single larger push
	// goes alone, up to the NATS servers' maximum payload); zero means
	// DefaultMaxBatchBytes.
	MaxBatchBytes int
	// Window is how far a batch's time may be from the receiver's clock;
	// zero means DefaultWindow.
	Window time.Duration
	// Logger receives a warning for every batch dropped on receipt (wrap
	// it in internal/lograte against floods); nil means no log.
	Logger *slog.Logger
}

// Fanout is a push.Fanout over a NATS core subject.
type Fanout struct {
	nc       *nats.Conn
	subject  string
	key      []byte
	node     [nodeLen]byte
	now      func() time.Time
	interval time.Duration
	maxBatch int
	window   time.Duration
	log      *slog.Logger

	mu        sync.Mutex
	mac       hash.Hash // the publisher's, under mu
	buf       []byte    // the batch being gathered: header space, then pushes
	seq       uint64
	lastTime  int64
	lastFlush time.Time // monotonic
	timer     *time.Timer
	timerSet  bool
	failed    error // why a batch flushed by the timer failed, for the next Publish
	closed    bool

	stats stats
}

var _ push.Fanout = (*Fanout)(nil)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("NATS fan-out closed")

// New returns the fan-out of one server.
func New(o Options) (*Fanout, error) {
	if o.Conn == nil {
		return nil, errors.New("NATS fan-out: no NATS connection")
	}
	if o.Prefix == "" {
		return nil, errors.New("NATS fan-out: no subject prefix")
	}
	subject := o.Prefix + ".push"
	key, err := batchKey(o.Secret, subject)
	if err != nil {
		return nil, fmt.Errorf("NATS fan-out: %w", err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	f := &Fanout{
		nc: o.Conn, subject: subject, key: key, now: o.Now, interval: o.FlushInterval,
		maxBatch: o.MaxBatchBytes, window: o.Window, log: o.Logger,
		mac: hmac.New(sha256.New, key), buf: make([]byte, headerLen, 4096),
	}
	rand.Read(f.node[:])
	f.timer = time.AfterFunc(time.Hour, f.flushTimer)
	f.timer.Stop()
	return f, nil
}

// Subject is the NATS subject the batches go on.
func (f *Fanout) Subject() string { return f.subject }

// Publish implements push.Fanout: it queues the pushes for the next
// batch, sending it now if this publisher has been idle for
// FlushInterval or the batch is full. It returns why pushes were lost: a
// push too large for one NATS message, a batch NATS refused (this call's
// or one the timer sent since the last call). A lost push's devices catch
// up from their cursors.
func (f *Fanout) Publish(ctx context.Context, pushes []push.Push) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	errs := []error{f.failed}
	f.failed = nil
	for _, p := range pushes {
		if len(p.Devices) == 0 || len(p.Frame) == 0 {
			continue
		}
		size := pushSize(p)
		if limit := f.payloadLimit(); headerLen+size+tagLen > limit {
			f.stats.tooLarge.Add(1)
			errs = append(errs, fmt.Errorf("publishing a push of %d bytes to %d devices: larger than the NATS servers' maximum payload (%d bytes with the batch's header and tag); its devices catch up from their cursors", size, len(p.Devices), limit))
			continue
		}
		if len(f.buf) > headerLen && len(f.buf)+size+tagLen > f.maxBatch {
			errs = append(errs, f.flushLocked())
		}
		f.buf = appendPush(f.buf, p)
		if len(f.buf)+tagLen >= f.maxBatch {
			errs = append(errs, f.flushLocked())
		}
	}
	if len(f.buf) > headerLen && !f.timerSet {
		if wait := f.interval - time.Since(f.lastFlush); wait <= 0 {
			errs = append(errs, f.flushLocked())
		} else {
			f.timerSet = true
			f.timer.Reset(wait)
		}
	}
	return errors.Join(errs...)
}

// payloadLimit is the largest NATS message the servers take now.
func (f *Fanout) payloadLimit() int {
	if m := f.nc.MaxPayload(); m > 0 {
		return int(m)
	}
	return f.maxBatch
}

// flushTimer sends the batch gathered since the last one.
func (f *Fanout) flushTimer() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timerSet = false
	if f.closed || len(f.buf) == headerLen {
		return
	}
	if err := f.flushLocked(); err != nil {
		f.failed = errors.Join(f.failed, err)
	}
}

// flushLocked seals and publishes the batch gathered in f.buf.
func (f *Fanout) flushLocked() error {
	f.seq++
	t := max(f.now().UnixNano(), f.lastTime)
	f.lastTime = t
	putHeader(f.buf, f.node, f.seq, t)
	msg := seal(f.mac, f.buf)
	err := f.nc.Publish(f.subject, msg) // copies msg
	f.buf = msg[:headerLen]
	f.lastFlush = time.Now()
	if err != nil {
		f.stats.publishFailed.Add(1)
		return fmt.Errorf("publishing push batch %d on %s: %w", f.seq, f.subject, err)
	}
	f.stats.published.Add(1)
	return nil
}

// Close sends what is gathered and stops; Publish fails after it. It
// does not close the NATS connection.
func (f *Fanout) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	f.timer.Stop()
	f.timerSet = false
	if len(f.buf) > headerLen {
		return f.flushLocked()
	}
	return nil
}

// Subscribe implements push.Fanout: it delivers, in order, the pushes of
// the other servers' batches that pass the checks (the package comment),
// and counts the batches it drops.
func (f *Fanout) Subscribe(ctx context.Context, deliver func(push.Push)) error {
	sub, err := f.nc.SubscribeSync(f.subject)
	if err != nil {
		return fmt.Errorf("subscribing to %s: %w", f.subject, err)
	}
	defer sub.Unsubscribe()
	mac := hmac.New(sha256.New, f.key)
	g := guard{window: f.window, peers: map[[nodeLen]byte]peer{}}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if errors.Is(err, nats.ErrSlowConsumer) {
			// NATS dropped batches this subscriber did not read in time:
			// their devices catch up from their cursors.
			f.drop("slow_consumer", errors.New("NATS dropped push batches this server did not read in time"))
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("receiving pushes on %s: %w", f.subject, err)
		}
		if node, ok := batchNode(m.Data); ok && node == f.node {
			continue // our own
		}
		bt, err := decodeBatch(mac, m.Data)
		if err != nil {
			f.drop(dropReason(err), err)
			continue
		}
		if reason, err := g.check(bt, f.now()); err != nil {
			f.drop(reason, err)
			continue
		}
		f.stats.received.Add(1)
		for _, p := range bt.pushes {
			deliver(p)
		}
		f.stats.delivered.Add(uint64(len(bt.pushes)))
	}
}

func dropReason(err error) string {
	switch {
	case errors.Is(err, errForged):
		return "forged"
	case errors.Is(err, errVersion):
		return "version"
	default:
		return "malformed"
	}
}

// drop counts and logs a batch dropped on receipt.
func (f *Fanout) drop(reason string, err error) {
	f.stats.dropped(reason).Add(1)
	if f.log != nil {
		f.log.Warn("dropped a push batch", "subject", f.subject, "reason", reason, "err", err)
	}
}

// guard is a receiver's replay check.
type guard struct {
	window    time.Duration
	peers     map[[nodeLen]byte]peer
	lastPrune time.Time
}

// peer is what a receiver remembers of a publisher.
type peer struct {
	seq  uint64    // the highest sequence accepted
	seen time.Time // when (the receiver's clock)
}

// check accepts an authenticated batch received at now, or says why not.
// A publisher's record is forgotten two windows after its last accepted
// batch: by then any batch of it up to that one is older than a window
// (its time was at most a window ahead of the receiver's clock then), so
// the time check refuses it.
func (g *guard) check(bt batch, now time.Time) (reason string, err error) {
	t := time.Unix(0, bt.time)
	if d := now.Sub(t); d > g.window || d < -g.window {
		return "stale", fmt.Errorf("push batch %d of publisher %x is timed %s, %v from this server's clock (more than %v: a replay, or the servers' clocks disagree)", bt.seq, bt.node, t.UTC().Format(time.RFC3339Nano), d, g.window)
	}
	if p, ok := g.peers[bt.node]; ok && bt.seq <= p.seq {
		return "replayed", fmt.Errorf("push batch %d of publisher %x again (its batch %d was accepted already): a replay", bt.seq, bt.node, p.seq)
	}
	g.peers[bt.node] = peer{seq: bt.seq, seen: now}
	if now.Sub(g.lastPrune) > g.window {
		g.lastPrune = now
		for n, p := range g.peers {
			if now.Sub(p.seen) > 2*g.window {
				delete(g.peers, n)
			}
		}
	}
	return "", nil
}

// stats count what a Fanout did.
type stats struct {
	published, publishFailed, tooLarge                         atomic.Uint64
	received, delivered                                        atomic.Uint64
	forged, malformed, version, stale, replayed, slowConsumers atomic.Uint64
}

func (s *stats) dropped(reason string) *atomic.Uint64 {
	switch reason {
	case "forged":
		return &s.forged
	case "version":
		return &s.version
	case "stale":
		return &s.stale
	case "replayed":
		return &s.replayed
	case "slow_consumer":
		return &s.slowConsumers
	default:
		return &s.malformed
	}
}

// Stats is a snapshot of a Fanout's counters.
type Stats struct {
	// Published and PublishFailed count batches sent and refused by NATS;
	// TooLarge counts pushes too large for one NATS message.
	Published, PublishFailed, TooLarge uint64
	// Received counts the other servers' batches accepted, Delivered
	// their pushes.
	Received, Delivered uint64
	// Batches dropped on receipt: without a valid tag (Forged), of an
	// unknown format version, malformed under a valid tag, timed outside
	// the window (Stale), sequence not above the publisher's last
	// (Replayed); SlowConsumer counts the times NATS dropped batches this
	// subscriber did not read in time.
	Forged, Version, Malformed, Stale, Replayed, SlowConsumer uint64
}

// Stats returns the counters.
func (f *Fanout) Stats() Stats {
	s := &f.stats
	return Stats{
		Published: s.published.Load(), PublishFailed: s.publishFailed.Load(), TooLarge: s.tooLarge.Load(),
		Received: s.received.Load(), Delivered: s.delivered.Load(),
		Forged: s.forged.Load(), Version: s.version.Load(), Malformed: s.malformed.Load(),
		Stale: s.stale.Load(), Replayed: s.replayed.Load(), SlowConsumer: s.slowConsumers.Load(),
	}
}

// Metrics: a Fanout is a prometheus.Collector (the server registers it
// with its own metrics).
var (
	descPublished = prometheus.NewDesc("anom_fanout_batches_published_total", "Push batches this server published to the other servers.", nil, nil)
	descPubFailed = prometheus.NewDesc("anom_fanout_publish_failures_total", "Push batches NATS refused to publish (their devices catch up from their cursors).", nil, nil)
	descTooLarge  = prometheus.NewDesc("anom_fanout_pushes_too_large_total", "Pushes too large for one NATS message, not sent to the other servers.", nil, nil)
	descReceived  = prometheus.NewDesc("anom_fanout_batches_received_total", "Push batches of other servers accepted.", nil, nil)
	descDelivered = prometheus.NewDesc("anom_fanout_pushes_received_total", "Pushes of other servers delivered to this server's sessions.", nil, nil)
	descDropped   = prometheus.NewDesc("anom_fanout_batches_dropped_total", "Push batches dropped on receipt, by reason: forged (no valid tag under the network's key), version, malformed, stale (timed outside the window), replayed, slow_consumer (times NATS dropped batches not read in time).", []string{"reason"}, nil)
)

// Describe implements prometheus.Collector.
func (f *Fanout) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPublished, descPubFailed, descTooLarge, descReceived, descDelivered, descDropped} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (f *Fanout) Collect(ch chan<- prometheus.Metric) {
	s := f.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descPublished, s.Published)
	counter(descPubFailed, s.PublishFailed)
	counter(descTooLarge, s.TooLarge)
	counter(descReceived, s.Received)
	counter(descDelivered, s.Delivered)
	for _, r := range []struct {
		reason string
		v      uint64
	}{{"forged", s.Forged}, {"version", s.Version}, {"malformed", s.Malformed}, {"stale", s.Stale}, {"replayed", s.Replayed}, {"slow_consumer", s.SlowConsumer}} {
		counter(descDropped, r.v, r.reason)
	}
}
