// Package jetstream is the store.Store backend on NATS JetStream, for
// cluster mode: several stateless anom servers share one store kept by a
// NATS cluster with three replicas.
//
// Layout: three streams per store, named after Options.Prefix (P below):
//
//   - P_kv, subjects "P.kv.<bucket>.<key>", one message kept per subject.
//     A KV entry is the last message of its subject and its revision the
//     stream sequence; a deletion writes a marker (header Anom-Op: del).
//     Create, Update and conditional Delete publish with
//     Nats-Expected-Last-Subject-Sequence, so the stream leader is the
//     only judge of every condition. Txn is one atomic batch (ADR-50,
//     AllowAtomicPublish); a CheckOp becomes a message on the scratch
//     subject "P.chk" that carries the check for the key's subject in
//     Nats-Expected-Last-Subject-Sequence-Subject. The same stream keeps
//     log cursors ("P.cur.<len(log)>.<log>.<consumer>", the length making
//     the split of log and consumer unambiguous), blob manifests
//     ("P.blob.<id>") and graves of blob uploads whose chunks are to be
//     purged ("P.grave.<upload>").
//
//   - P_logs, subjects "P.log.<name>": one message per entry, with the
//     dense per-log sequence (Anom-Seq) and the append time of the store's
//     clock (Anom-Time) in headers. Every append expects the stream
//     sequence of the log's last message (Nats-Expected-Last-Subject-
//     Sequence), so concurrent appenders never hand out a sequence twice;
//     several entries, or several logs (AppendAll), are one atomic batch.
//     Trim purges the subject below the first kept entry; trimming
//     everything first writes a trim marker holding the last sequence, so
//     sequences are never reused. Wait watches the logs with one ordered
//     consumer per Store (headers only), never one consumer per device,
//     and re-checks the log on every notification and once a second.
//
//   - P_blobs, subjects "P.chunk.<upload>": a blob is streamed in chunks
//     (256 KiB), each a message; once all are acknowledged, the manifest
//     (size, times, the chunks' stream sequences) is created in P_kv in
//     one atomic batch with the removal of the upload's grave, which a
//     crash mid-upload leaves for SweepBlobs to purge. Deleting a blob
//     replaces its manifest by a marker and graves its upload for
//     Options.BlobGrace, so readers opened before the deletion keep
//     reading for at least that long.
//
// Reads go to the stream leader (the STREAM.MSG.GET API; direct gets are
// not enabled because a follower may lag behind an acknowledged write), so
// a caller reads its own writes.
//
// Durability: a write returns once the stream leader has acknowledged it,
// which JetStream does only after a quorum of the replicas (2 of 3) has
// stored it. Whether "stored" means fsynced is the NATS servers' setting:
// JetStream's default sync_interval (2 minutes) writes to the page cache
// and fsyncs in the background, so a power loss of two nodes at once can
// lose acknowledged writes; with "sync_interval: always" (what the test
// cluster in internal/natstest runs, and what this package recommends)
// every replica fsyncs before it acknowledges, and an acknowledged write
// survives the loss of any one node and a power loss of all of them.
//
// Limits beyond the store package's: one Append, AppendAll or Txn is at
// most the servers' atomic batch size (default 1000 messages; entries of
// all logs plus one per operation), and at most 50 batches may be in
// flight per stream (more are retried).
package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"anom/internal/store"
)

// Defaults of Options.
const (
	DefaultPrefix      = "anom"
	DefaultReplicas    = 3
	DefaultMaxBlobSize = 256 << 20
	DefaultBlobGrace   = time.Hour
	DefaultTimeout     = 10 * time.Second
	chunkSize          = 256 << 10
)

// Options configures Open.
type Options struct {
	// URLs are the NATS servers to connect to (any of a cluster's nodes).
	URLs []string
	// CredsFile is a NATS credentials file (JWT and NKey seed); empty: none.
	CredsFile string
	// TLSCAFile, if set, is the PEM file of the CAs that sign the servers'
	// certificates (and turns TLS on).
	TLSCAFile string
	// TLSCertFile and TLSKeyFile, if set, are a client certificate for
	// servers that require one.
	TLSCertFile, TLSKeyFile string
	// Prefix names the streams and subjects ([A-Za-z0-9_-]); several
	// stores may share a NATS account with different prefixes. Empty means
	// DefaultPrefix.
	Prefix string
	// Replicas of each stream; zero means DefaultReplicas.
	Replicas int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// MaxBlobSize caps PutBlob; zero means DefaultMaxBlobSize. Values below
	// store.MinBlobLimit are raised to it.
	MaxBlobSize int64
	// BlobGrace is how long a deleted blob's chunks are kept for readers
	// that opened it before; zero means DefaultBlobGrace.
	BlobGrace time.Duration
	// Timeout bounds each request to NATS (a call may make several, and
	// retries reads that time out until its context ends); zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Name is the connection name the NATS servers show.
	Name string
	// Logger receives what Open retries; nil means no log.
	Logger *slog.Logger
}

// Store is a store.Store kept in NATS JetStream.
type Store struct {
	nc      *nats.Conn
	js      js.JetStream
	kv      js.Stream
	logs    js.Stream
	blobs   js.Stream
	names   names
	prefix  string
	now     func() time.Time
	maxBlob int64
	grace   time.Duration
	timeout time.Duration
	log     *slog.Logger

	closing   chan struct{} // closed by Close
	closed    atomic.Bool
	calls     sync.WaitGroup
	callsMu   sync.Mutex // orders calls.Add against Close's Wait
	closeOnce sync.Once
	cons      js.ConsumeContext

	tips    tipCache
	waiters waiters
}

var _ store.Store = (*Store)(nil)

// names are the streams' and subjects' names of one prefix.
type names struct {
	kvStream, logStream, blobStream string
	kv, cur, blob, grave, chk, log  string // subject prefixes (with the trailing '.'), chk is a subject
	chunk                           string
}

func newNames(prefix string) names {
	return names{
		kvStream:   prefix + "_kv",
		logStream:  prefix + "_logs",
		blobStream: prefix + "_blobs",
		kv:         prefix + ".kv.",
		cur:        prefix + ".cur.",
		blob:       prefix + ".blob.",
		grave:      prefix + ".grave.",
		chk:        prefix + ".chk",
		log:        prefix + ".log.",
		chunk:      prefix + ".chunk.",
	}
}

// Open connects to NATS, creates the store's streams if they do not exist
// (or updates their configuration) and returns the store.
func Open(ctx context.Context, o Options) (*Store, error) {
	if len(o.URLs) == 0 {
		return nil, fmt.Errorf("opening JetStream store: no NATS URLs: %w", store.ErrInvalid)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if err := store.CheckBucket(o.Prefix); err != nil {
		return nil, fmt.Errorf("opening JetStream store: prefix: %w", err)
	}
	if o.Replicas == 0 {
		o.Replicas = DefaultReplicas
	}
	if o.Replicas < 1 || o.Replicas > 5 {
		return nil, fmt.Errorf("opening JetStream store: %d replicas: %w", o.Replicas, store.ErrInvalid)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBlobSize == 0 {
		o.MaxBlobSize = DefaultMaxBlobSize
	}
	o.MaxBlobSize = max(o.MaxBlobSize, store.MinBlobLimit)
	if o.BlobGrace <= 0 {
		o.BlobGrace = DefaultBlobGrace
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	copts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
	}
	if o.CredsFile != "" {
		copts = append(copts, nats.UserCredentials(o.CredsFile))
	}
	if o.TLSCAFile != "" {
		copts = append(copts, nats.RootCAs(o.TLSCAFile))
	}
	if o.TLSCertFile != "" || o.TLSKeyFile != "" {
		copts = append(copts, nats.ClientCert(o.TLSCertFile, o.TLSKeyFile))
	}
	nc, err := nats.Connect(joinURLs(o.URLs), copts...)
	if err != nil {
		return nil, fmt.Errorf("opening JetStream store: connecting to %v: %w", o.URLs, err)
	}
	s := &Store{
		nc:      nc,
		names:   newNames(o.Prefix),
		prefix:  o.Prefix,
		now:     o.Now,
		maxBlob: o.MaxBlobSize,
		grace:   o.BlobGrace,
		timeout: o.Timeout,
		log:     o.Logger,
		closing: make(chan struct{}),
	}
	s.waiters.init()
	if err := s.setup(ctx, o.Replicas); err != nil {
		nc.Close()
		return nil, fmt.Errorf("opening JetStream store: %w", err)
	}
	return s, nil
}

// Conn is the store's connection to NATS, for what shares it (the
// servers' fan-out, internal/natsfanout); Close closes it.
func (s *Store) Conn() *nats.Conn { return s.nc }

// Prefix is the prefix of the store's streams and subjects.
func (s *Store) Prefix() string { return s.prefix }

func joinURLs(urls []string) string {
	out := ""
	for i, u := range urls {
		if i > 0 {
			out += ","
		}
		out += u
	}
	return out
}

// setup creates or updates the streams and starts the log watcher.
func (s *Store) setup(ctx context.Context, replicas int) error {
	var err error
	s.js, err = js.New(s.nc)
	if err != nil {
		return fmt.Errorf("JetStream context: %w", err)
	}
	n := s.names
	cfgs := []js.StreamConfig{{
		Name:               n.kvStream,
		Description:        "anom store: KV entries, log cursors, blob manifests",
		Subjects:           []string{n.kv + ">", n.cur + ">", n.blob + ">", n.grave + ">", n.chk},
		Storage:            js.FileStorage,
		Replicas:           replicas,
		MaxMsgsPerSubject:  1,
		Discard:            js.DiscardOld,
		AllowAtomicPublish: true,
		DenyDelete:         true,
	}, {
		Name:               n.logStream,
		Description:        "anom store: logs",
		Subjects:           []string{n.log + ">"},
		Storage:            js.FileStorage,
		Replicas:           replicas,
		MaxMsgsPerSubject:  -1,
		AllowAtomicPublish: true,
		DenyDelete:         true,
	}, {
		Name:              n.blobStream,
		Description:       "anom store: blob chunks",
		Subjects:          []string{n.chunk + ">"},
		Storage:           js.FileStorage,
		Replicas:          replicas,
		MaxMsgsPerSubject: -1,
		DenyDelete:        true,
	}}
	var streams []js.Stream
	for _, cfg := range cfgs {
		st, err := s.createStream(ctx, cfg)
		if err != nil {
			return fmt.Errorf("creating stream %s: %w", cfg.Name, err)
		}
		streams = append(streams, st)
	}
	s.kv, s.logs, s.blobs = streams[0], streams[1], streams[2]
	return s.watchLogs(ctx)
}

// createStream creates or updates a stream. Each attempt waits 1 s for
// an answer, then twice as long as the one before (up to the store's
// timeout), whatever ctx's deadline: nats-server 2.15 sometimes answers
// neither of two identical creations sent at once (two servers starting
// together on a new cluster), and one attempt waiting out ctx would fail
// Open where the next attempt succeeds.
func (s *Store) createStream(ctx context.Context, cfg js.StreamConfig) (js.Stream, error) {
	wait := time.Second
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, min(wait, s.timeout))
		st, err := s.js.CreateOrUpdateStream(actx, cfg)
		cancel()
		if err == nil || !temporary(err) || ctx.Err() != nil {
			return st, err
		}
		s.log.Info("creating a stream: no answer yet, trying again", "stream", cfg.Name, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
		wait *= 2
	}
}

// retry runs fn until it succeeds, fails with an error other than the
// cluster's temporary unavailability, or ctx ends (used while a new
// cluster elects its leaders).
func (s *Store) retry(ctx context.Context, fn func(context.Context) error) error {
	for {
		rctx, cancel := s.reqCtx(ctx)
		err := fn(rctx)
		cancel()
		if err == nil || !temporary(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// temporary reports whether err means "try again": no stream leader yet.
func temporary(err error) bool {
	var ae *js.APIError
	if errors.As(err, &ae) && (ae.Code == 503 || ae.ErrorCode == codeClusterNotAvail) {
		return true
	}
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, js.ErrNoStreamResponse) ||
		errors.Is(err, js.ErrNoHeartbeat) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// Close implements store.Store.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.callsMu.Lock()
		s.closed.Store(true)
		close(s.closing)
		s.callsMu.Unlock()
		s.waiters.wakeAll()
		s.calls.Wait()
		if s.cons != nil {
			s.cons.Stop()
		}
		s.nc.Close()
	})
	return nil
}

// begin starts a call: it fails with ErrClosed after Close, and returns a
// context that also ends when the store closes.
func (s *Store) begin(ctx context.Context) (context.Context, func(), error) {
	s.callsMu.Lock()
	if s.closed.Load() {
		s.callsMu.Unlock()
		return nil, nil, store.ErrClosed
	}
	s.calls.Add(1)
	s.callsMu.Unlock()
	cctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(ctxOf(s.closing), cancel)
	return cctx, func() {
		stop()
		cancel()
		s.calls.Done()
	}, nil
}

// ctxOf is a context that ends when ch is closed.
type chanCtx struct {
	context.Context
	ch <-chan struct{}
}

func (c chanCtx) Done() <-chan struct{} { return c.ch }
func (c chanCtx) Err() error {
	select {
	case <-c.ch:
		return store.ErrClosed
	default:
		return nil
	}
}

func ctxOf(ch <-chan struct{}) context.Context {
	return chanCtx{Context: context.Background(), ch: ch}
}

// fail wraps err with what, reporting ErrClosed if the store closed meanwhile.
func (s *Store) fail(what string, err error) error {
	if s.closed.Load() && !errors.Is(err, store.ErrClosed) {
		return fmt.Errorf("%s: %w (%v)", what, store.ErrClosed, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// reqCtx bounds one request with the store's timeout, or the caller's
// deadline if that comes first. A caller's longer deadline must not
// lengthen it: a request to a stream leader that was just killed gets no
// answer, and only the timeout ends it (reads are then retried; a write
// fails and may or may not have been applied, as the store package says).
func (s *Store) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// lastMsg returns the last message of subject in st, or nil if there is none.
func (s *Store) lastMsg(ctx context.Context, st js.Stream, subject string) (*js.RawStreamMsg, error) {
	var m *js.RawStreamMsg
	err := s.retry(ctx, func(ctx context.Context) error {
		var err error
		m, err = st.GetLastMsgForSubject(ctx, subject)
		return err
	})
	if errors.Is(err, js.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading last message of %s: %w", subject, err)
	}
	return m, nil
}

// nextMsg returns the first message of subject at stream sequence >= seq,
// or nil if there is none.
func (s *Store) nextMsg(ctx context.Context, st js.Stream, subject string, seq uint64) (*js.RawStreamMsg, error) {
	var m *js.RawStreamMsg
	err := s.retry(ctx, func(ctx context.Context) error {
		var err error
		m, err = st.GetMsg(ctx, seq, js.WithGetMsgSubject(subject))
		return err
	})
	if errors.Is(err, js.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading message of %s from %d: %w", subject, seq, err)
	}
	return m, nil
}

// msgAt returns the message at stream sequence seq, or nil if it is gone.
func (s *Store) msgAt(ctx context.Context, st js.Stream, seq uint64) (*js.RawStreamMsg, error) {
	var m *js.RawStreamMsg
	err := s.retry(ctx, func(ctx context.Context) error {
		var err error
		m, err = st.GetMsg(ctx, seq)
		return err
	})
	if errors.Is(err, js.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading message %d: %w", seq, err)
	}
	return m, nil
}

// subjects returns the subjects with messages in st that match filter.
func (s *Store) subjects(ctx context.Context, st js.Stream, filter string) (map[string]uint64, error) {
	var info *js.StreamInfo
	err := s.retry(ctx, func(ctx context.Context) error {
		var err error
		info, err = st.Info(ctx, js.WithSubjectFilter(filter))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing subjects %s: %w", filter, err)
	}
	return info.State.Subjects, nil
}

// purge removes the messages of subject below stream sequence before (all
// of them if before is 0).
func (s *Store) purge(ctx context.Context, st js.Stream, subject string, before uint64) error {
	opts := []js.StreamPurgeOpt{js.WithPurgeSubject(subject)}
	if before > 0 {
		opts = append(opts, js.WithPurgeSequence(before))
	}
	err := s.retry(ctx, func(ctx context.Context) error { return st.Purge(ctx, opts...) })
	if err != nil {
		return fmt.Errorf("purging %s below %d: %w", subject, before, err)
	}
	return nil
}

// Error codes of the JetStream API that the store acts on.
const (
	codeClusterNotAvail   = 10008
	codeWrongLastSeq      = 10071 // an expected last (subject) sequence did not match
	codeWrongLastSeqBusy  = 10164 // the subject has a conditional write in flight
	codeExpectNotReady    = 10163
	codeBatchIncomplete   = 10176
	codeBatchTooMany      = 10210
	codeBatchTooLarge     = 10199
	codeMsgTooLarge       = 10054
	codeStoreFailedTooBig = 10077
)

// pubMsg is one message to publish.
type pubMsg struct {
	subject string
	header  nats.Header
	data    []byte
	// expect, if set, is the stream sequence the last message of
	// expectSubject (default: subject) must have (0: none).
	expect        bool
	expectSeq     uint64
	expectSubject string
}

func (m pubMsg) natsMsg() *nats.Msg {
	h := nats.Header{}
	for k, v := range m.header {
		h[k] = v
	}
	if m.expect {
		h.Set(hdrExpectSubjSeq, fmt.Sprint(m.expectSeq))
		if m.expectSubject != "" {
			h.Set(hdrExpectSubjName, m.expectSubject)
		}
	}
	return &nats.Msg{Subject: m.subject, Header: h, Data: m.data}
}

// pubAck is the JetStream answer to a publish or a batch commit.
type pubAck struct {
	Stream string       `json:"stream"`
	Seq    uint64       `json:"seq"`
	Batch  string       `json:"batch,omitempty"`
	Count  uint64       `json:"count,omitempty"`
	Error  *js.APIError `json:"error,omitempty"`
}

// publish publishes msgs to one stream, atomically: one message plainly,
// several as an atomic batch. It returns the stream sequence of the first
// message; the others follow it without gaps. A failed condition is an
// *js.APIError with codeWrongLastSeq; busy and temporary failures, where
// nothing was written, are retried here.
func (s *Store) publish(ctx context.Context, msgs []pubMsg) (uint64, error) {
	for attempt := 0; ; attempt++ {
		first, err := s.publishOnce(ctx, msgs)
		if err == nil {
			return first, nil
		}
		var ae *js.APIError
		retry := errors.Is(err, nats.ErrNoResponders) ||
			errors.As(err, &ae) && (ae.ErrorCode == codeWrongLastSeqBusy || ae.ErrorCode == codeExpectNotReady ||
				ae.ErrorCode == codeBatchIncomplete || ae.ErrorCode == codeBatchTooMany ||
				ae.ErrorCode == codeClusterNotAvail || ae.Code == 503)
		if !retry {
			return 0, err
		}
		wait := time.Duration(1+attempt%8) * time.Millisecond
		if errors.Is(err, nats.ErrNoResponders) || ae != nil && ae.Code == 503 {
			wait = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(jitter(wait)):
		}
	}
}

func jitter(d time.Duration) time.Duration {
	var b [1]byte
	rand.Read(b[:])
	return d + d*time.Duration(b[0])/256
}

func (s *Store) publishOnce(ctx context.Context, msgs []pubMsg) (uint64, error) {
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	if len(msgs) == 1 {
		resp, err := s.nc.RequestMsgWithContext(rctx, msgs[0].natsMsg())
		if err != nil {
			return 0, err
		}
		ack, err := parseAck(resp)
		if err != nil {
			return 0, err
		}
		return ack.Seq, nil
	}
	id := newID()
	for i, m := range msgs {
		nm := m.natsMsg()
		nm.Header.Set(hdrBatchID, id)
		nm.Header.Set(hdrBatchSeq, fmt.Sprint(i+1))
		if i < len(msgs)-1 {
			if err := s.nc.PublishMsg(nm); err != nil {
				return 0, err
			}
			continue
		}
		nm.Header.Set(hdrBatchCommit, "1")
		resp, err := s.nc.RequestMsgWithContext(rctx, nm)
		if err != nil {
			return 0, err
		}
		ack, err := parseAck(resp)
		if err != nil {
			return 0, err
		}
		if ack.Count != uint64(len(msgs)) || ack.Seq < ack.Count {
			return 0, fmt.Errorf("batch of %d messages acknowledged as %d ending at %d: %w", len(msgs), ack.Count, ack.Seq, store.ErrCorrupt)
		}
		return ack.Seq - ack.Count + 1, nil
	}
	panic("unreachable")
}

func parseAck(resp *nats.Msg) (pubAck, error) {
	if len(resp.Data) == 0 && resp.Header.Get("Status") == "503" {
		return pubAck{}, nats.ErrNoResponders
	}
	ack, err := decodeAck(resp.Data)
	if err != nil {
		return pubAck{}, err
	}
	if ack.Error != nil {
		return pubAck{}, ack.Error
	}
	return ack, nil
}

// isWrongLast reports whether err is a failed expected-sequence condition.
func isWrongLast(err error) bool {
	var ae *js.APIError
	return errors.As(err, &ae) && ae.ErrorCode == codeWrongLastSeq
}

// isTooLarge reports whether the servers refused a message or batch as too large.
func isTooLarge(err error) bool {
	var ae *js.APIError
	return errors.As(err, &ae) && (ae.ErrorCode == codeBatchTooLarge || ae.ErrorCode == codeMsgTooLarge ||
		ae.ErrorCode == codeStoreFailedTooBig) || errors.Is(err, nats.ErrMaxPayload)
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
