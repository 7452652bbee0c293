// Package server is the anom server: the directory of devices (activation,
// certificates, revocation, the transparency log), the MLS delivery
// service (one ordered log per group, one commit per epoch, fan-out and
// catch-up), key packages, remote wipe and encrypted blobs, over a TLS
// WebSocket API of protobuf frames (package anom/proto/anom/v1).
//
// Files by concern: server.go (config, lifecycle, HTTP), conn.go (one
// WebSocket session: reading, batched writes), lanes.go (request lanes),
// hub.go (the sessions by device: local fan-out, revocation, shutdown),
// websocket.go (RFC 6455 upgrade and framing), poll_linux.go (readiness
// poller for idle sessions), dispatch.go (frame handling), auth.go
// (challenge, activation), directory.go (devices, users, transparency
// log), certlog.go (batched certificate logging),
// keypackages.go, groups.go (group state, catching up through the commit
// log), send.go, fetch.go, grouplog.go (the group's writer: batched
// conditional appends, turns between servers) and membership.go
// (delivery service), cluster.go
// and fanout.go (several servers on one store: what the store decides,
// revocations and pushes between servers),
// blobs.go, admin.go (revocation, wipe, distributors, codes),
// adminapi.go (the signed admin API),
// limits.go (limits, rate limits), metrics.go, records.go (stored records).
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"anom/identity"
	"anom/internal/adminapi"
	"anom/internal/store"
	"anom/internal/translog"
)

// Config configures a Server.
type Config struct {
	// Store keeps everything durable. Required; the caller closes it after
	// the server has stopped.
	Store store.Store
	// RootPublic is the network root public key: online key certificates,
	// distributor certificates and the escrow policy must chain to it.
	// Required. The root's private key is never on the server.
	RootPublic identity.RootPublicKey
	// Directory is the server's directory key with the root's certificate
	// of it: it signs device certificates, revocations, wipe commands,
	// admin approvals and transparency-log tree heads. Required; its
	// certificate is appended to the transparency log at start.
	Directory *identity.DirectorySigner
	// TLS is the server's TLS configuration (certificate from the
	// network CA). Required by Serve; ServeHandler-only use may leave it
	// nil.
	TLS *tls.Config
	// Name is the server name devices sign in authentication; "" means
	// "anom".
	Name string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the randomness for challenges, device IDs and tokens; nil
	// means crypto/rand.
	Rand io.Reader
	// Retention is how long group messages are kept at most; 0 means 30
	// days.
	Retention time.Duration
	// BlobTTL is how long an uploaded blob is kept; 0 means 30 days.
	BlobTTL time.Duration
	// MaxBlobSize caps a blob in bytes; 0 means 100 MiB.
	MaxBlobSize int64
	// BlobQuota is the most bytes one device may have in live blobs and
	// outstanding upload grants together; 0 means DefaultBlobQuota
	// (1 GiB). A grant beyond it is refused with LIMIT_EXCEEDED.
	BlobQuota int64
	// MaxBlobsPerDevice bounds a device's live blobs and grants in number;
	// 0 means DefaultMaxBlobsPerDevice (10,000).
	MaxBlobsPerDevice int
	// BlobUploadWindow is how long an upload grant (its put token) may be
	// used, and counts against the quota if unused; 0 means
	// DefaultBlobUploadWindow (one hour).
	BlobUploadWindow time.Duration
	// BlobKey is the HMAC key of blob capability tokens (at least 32
	// bytes); nil means a random key per process, so tokens die with it.
	BlobKey []byte
	// EscrowPolicy is the signed escrow policy (escrow.SignedPolicy
	// encoding, signed by Root). The server appends it to the transparency
	// log, serves it with its inclusion proof, and then refuses application
	// messages without a valid escrow record. Nil means none has been set:
	// messages carry no records.
	EscrowPolicy []byte
	// Countersign is the escrow countersigning key and CountersignCert the
	// root's certificate of it (role countersign). Required with
	// EscrowPolicy; the certificate is appended to the transparency log and
	// forwarded to the archive, and its "name/serial" (EscrowServerID)
	// names the key in countersignatures.
	Countersign     *identity.CountersignKey
	CountersignCert *identity.OnlineKeyCertificate
	// EscrowClockSkew is how far a record's claimed sending time may be
	// from the server's clock; 0 means DefaultEscrowClockSkew.
	EscrowClockSkew time.Duration
	// ArchiveToken is the bearer token the archive presents to pull the
	// escrow outbox at /v1/escrow/pull and /v1/escrow/ack; "" means the
	// outbox is not served over HTTP (EscrowSource still gives it).
	ArchiveToken string
	// AlertDir is a directory the server writes each alert (a reported
	// false escrow record) to as a JSON file; "" means alerts are only
	// logged and kept in the store (Alerts).
	AlertDir string
	// AdminWindow is how far from the server's clock, either way, an admin
	// request's issued-at may be; 0 means adminapi.DefaultWindow (five
	// minutes). Nonces are kept in the store for twice that.
	AdminWindow time.Duration
	// SweepInterval is how often retention, trimming, blob expiry, the
	// expiry of admin nonces and of sessions are processed; 0 means one
	// minute, and one second for sessions.
	SweepInterval time.Duration
	// Limits bounds sizes, counts and rates; zero fields take defaults.
	Limits Limits
	// Web serves the web app on the client port: every request no API
	// route takes (the API is under /v1/). Nil means none: such requests
	// get 404.
	Web http.Handler
	// WebRelease is the release of the web app Web serves (its manifest's
	// digest): appended to the transparency log at start unless logged
	// already; WebReleaseProof proves it. Nil: none.
	WebRelease *identity.WebRelease
	// Fanout carries pushes to the other servers sharing Store (a
	// cluster; see fanout.go), for example a StoreFanout or a
	// natsfanout.Fanout (registered with the metrics if it is a
	// prometheus.Collector); nil means this
	// server is the store's only one, and pushes stay in the process.
	Fanout Fanout
	// Registry receives the Prometheus metrics; nil means a registry of
	// the server's own, served by MetricsHandler (not on the client
	// port), which also has the Go runtime
	// and process collectors (memory, goroutines, file descriptors, the
	// garbage collector's settings and live heap).
	Registry *prometheus.Registry
}

// gcSettingsMetrics adds to the Go collector's metrics the collector's
// settings in force (go_gc_gogc_percent, go_gc_gomemlimit_bytes) and the
// heap the last collection found live (go_gc_heap_live_bytes).
var gcSettingsMetrics = collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/(gogc:percent|gomemlimit:bytes|heap/live:bytes)$`)}

// Server is one anom server. Create it with New, run it with Serve.
type Server struct {
	cfg     Config
	name    string
	st      store.Store
	dir     *identity.DirectorySigner
	dirIdx  uint64 // log index of the directory key's certificate
	rootPub identity.RootPublicKey
	log     *slog.Logger
	now     func() time.Time
	rand    io.Reader
	limits  Limits
	blobKey []byte

	tlog   *translog.Log
	tlogMu sync.Mutex // serialises certificate appends with record updates
	certs  certBatcher
	hub    *hub
	groups *groupCache
	rates  *rateLimiters
	// signers holds one copy of each directory key certificate the
	// sessions' device certificates carry (auth.go).
	signers signerSet
	// Before authentication (preauth.go).
	preauth     *preauthSessions
	adminSlots  chan struct{} // admin requests being read or applied (adminConcurrency)
	activations *activationLimiter
	metrics     *metrics
	reg         *prometheus.Registry

	esc *escrowState // nil without an escrow policy

	grantMu [16]sync.Mutex // serialise the blob grants of a device (by its first byte)

	revokedMu sync.RWMutex
	revoked   map[identity.DeviceID]bool
	// revSeen is the last sequence of logRevocations when the
	// revocations were loaded: the watcher goes on from there.
	revSeen uint64

	pub publisher // pushes on their way to the other servers (fanout.go)

	httpSrv *http.Server
	ctx     context.Context // cancelled when the server stops
	cancel  context.CancelFunc
	wg      sync.WaitGroup // background loops and sessions
	closing chan struct{}
	once    sync.Once
}

// New opens the server's state in cfg.Store: it rebuilds the transparency
// log, finishes interrupted activations and loads the revocation list.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Directory == nil || len(cfg.RootPublic) == 0 {
		return nil, errors.New("creating server: Store, RootPublic and Directory are required")
	}
	s := &Server{
		cfg:     cfg,
		name:    cfg.Name,
		st:      cfg.Store,
		dir:     cfg.Directory,
		rootPub: cfg.RootPublic,
		log:     cfg.Logger,
		now:     cfg.Now,
		rand:    cfg.Rand,
		limits:  cfg.Limits.withDefaults(),
		revoked: map[identity.DeviceID]bool{},
		closing: make(chan struct{}),
	}
	if s.name == "" {
		s.name = "anom"
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.cfg.Retention <= 0 {
		s.cfg.Retention = 30 * 24 * time.Hour
	}
	if s.cfg.BlobTTL <= 0 {
		s.cfg.BlobTTL = 30 * 24 * time.Hour
	}
	if s.cfg.AdminWindow <= 0 {
		s.cfg.AdminWindow = adminapi.DefaultWindow
	}
	if s.cfg.MaxBlobSize <= 0 {
		s.cfg.MaxBlobSize = 100 << 20
	}
	if s.cfg.BlobQuota <= 0 {
		s.cfg.BlobQuota = DefaultBlobQuota
	}
	if s.cfg.MaxBlobsPerDevice <= 0 {
		s.cfg.MaxBlobsPerDevice = DefaultMaxBlobsPerDevice
	}
	if s.cfg.BlobUploadWindow <= 0 {
		s.cfg.BlobUploadWindow = DefaultBlobUploadWindow
	}
	s.blobKey = cfg.BlobKey
	if len(s.blobKey) < 32 {
		s.blobKey = make([]byte, 32)
		if _, err := io.ReadFull(s.rand, s.blobKey); err != nil {
			return nil, fmt.Errorf("creating server: drawing blob key: %w", err)
		}
	}
	s.reg = cfg.Registry
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
		s.reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(gcSettingsMetrics)), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if c, ok := cfg.Fanout.(prometheus.Collector); ok {
		// The fan-out's own counters (internal/natsfanout's: batches
		// sent, received, dropped as forged or replayed).
		if err := s.reg.Register(c); err != nil {
			return nil, fmt.Errorf("creating server: registering the fan-out's metrics: %w", err)
		}
	}
	m, err := newMetrics(s.reg)
	if err != nil {
		return nil, fmt.Errorf("creating server: %w", err)
	}
	s.metrics = m
	s.hub = newHub()
	s.groups = newGroupCache()
	s.rates = newRateLimiters(s.limits)
	s.preauth = newPreauthSessions(s.limits)
	s.adminSlots = make(chan struct{}, adminConcurrency)
	s.activations = newActivationLimiter(s.limits)
	s.ctx, s.cancel = context.WithCancel(context.Background())

	tl, err := translog.Open(ctx, translog.Config{Storage: logStorage{s.st}, Now: s.now})
	if err != nil {
		return nil, fmt.Errorf("creating server: %w", err)
	}
	s.tlog = tl
	if err := s.initDirectoryKey(ctx); err != nil {
		return nil, fmt.Errorf("creating server: %w", err)
	}
	if err := s.finishActivations(ctx); err != nil {
		return nil, fmt.Errorf("creating server: %w", err)
	}
	info, err := s.st.Info(ctx, logRevocations)
	if err != nil {
		return nil, fmt.Errorf("creating server: reading revocations: %w", err)
	}
	s.revSeen = info.Last
	if err := s.loadRevoked(ctx, func(id identity.DeviceID) { s.revoked[id] = true }); err != nil {
		return nil, fmt.Errorf("creating server: %w", err)
	}
	if err := s.initEscrow(ctx); err != nil {
		return nil, fmt.Errorf("creating server: %w", err)
	}
	if err := s.initWebRelease(ctx); err != nil {
		return nil, fmt.Errorf("creating server: %w", err)
	}
	return s, nil
}

// Handler returns the server's HTTP handler for the client port: /v1/ws,
// /v1/blobs/{id}, /v1/admin and, for the archive, /v1/escrow/; with
// Config.Web, the web app at / (every other path but /v1/). The metrics
// are not served here (MetricsHandler).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", s.serveWS)
	mux.HandleFunc("PUT /v1/blobs/{id}", s.putBlob)
	mux.HandleFunc("GET /v1/blobs/{id}", s.getBlob)
	mux.HandleFunc("POST "+adminapi.Path, s.serveAdmin)
	if s.esc != nil && s.cfg.ArchiveToken != "" {
		mux.Handle("/v1/escrow/", s.archiveHandler())
	}
	if s.cfg.Web != nil {
		mux.Handle("/", s.cfg.Web)
	}
	return mux
}

// MetricsHandler serves the Prometheus metrics at /metrics. They tell
// how many devices are connected and how busy the server is, so they
// belong on an address only the operator reaches (ServeMetrics), never on
// the client port.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	return mux
}

// ServeMetrics serves MetricsHandler over plain HTTP on l (a loopback or
// otherwise private address: the metrics are not authenticated) until
// ctx ends or the server stops.
func (s *Server) ServeMetrics(ctx context.Context, l net.Listener) error {
	hs := &http.Server{
		Handler:           s.MetricsHandler(),
		ReadHeaderTimeout: s.limits.ReadHeaderTimeout,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       s.limits.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving metrics: %w", err)
	case <-ctx.Done():
	case <-s.closing:
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(shutCtx)
	<-errc
	return nil
}

// Serve accepts TLS connections on l until ctx ends or Shutdown is
// called, then shuts down gracefully: it stops accepting, tells every
// session it is closing, waits for in-flight requests and background work,
// and returns. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if s.cfg.TLS == nil {
		return errors.New("serving: no TLS configuration")
	}
	// Full-size TLS records from the start: the writer batches frames,
	// and small records would cost a system call each.
	tc := s.cfg.TLS.Clone()
	tc.DynamicRecordSizingDisabled = true
	s.httpSrv = &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         tc,
		ReadHeaderTimeout: s.limits.ReadHeaderTimeout,
		IdleTimeout:       s.limits.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	s.startBackground()
	errc := make(chan error, 1)
	go func() { errc <- s.httpSrv.Serve(tls.NewListener(l, tc)) }()
	s.log.Info("serving", "addr", l.Addr().String(), "name", s.name)
	select {
	case <-ctx.Done():
	case <-s.closing:
	case err := <-errc:
		s.stop()
		return fmt.Errorf("serving: %w", err)
	}
	s.stop()
	<-errc
	return nil
}

// Shutdown makes Serve stop and return.
func (s *Server) Shutdown() {
	s.once.Do(func() { close(s.closing) })
}

// stop shuts the HTTP server and sessions down and waits for them.
func (s *Server) stop() {
	s.Shutdown()
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.httpSrv.Shutdown(shutCtx) // closes listeners and idle HTTP connections
	s.cancel()                      // ends sessions and background loops
	s.hub.closeAll()
	s.wg.Wait()
	s.log.Info("stopped")
}

// startBackground starts the periodic work.
func (s *Server) startBackground() {
	loops := []func(context.Context){
		s.backgroundLoop,
		func(ctx context.Context) { s.watchRevocations(ctx, s.revSeen) },
		s.watchTransparencyLog,
	}
	if s.cfg.Fanout != nil {
		loops = append(loops, s.subscribeFanout)
	}
	for _, loop := range loops {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			loop(s.ctx)
		}()
	}
}

func (s *Server) backgroundLoop(ctx context.Context) {
	fast := time.Second
	slow := time.Minute
	if s.cfg.SweepInterval > 0 {
		fast, slow = s.cfg.SweepInterval, s.cfg.SweepInterval
	}
	ft, sl := time.NewTicker(fast), time.NewTicker(slow)
	defer ft.Stop()
	defer sl.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ft.C:
			s.expireSessions()
			s.groups.dropStaleFanouts(s.hub.gen.Load())
		case <-sl.C:
			if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("sweeping", "err", err)
			}
		}
	}
}

// Sweep applies retention and trimming to every group log, removes
// expired blobs and pairing requests and forgets the rate limits of idle
// devices.
func (s *Server) Sweep(ctx context.Context) error {
	if err := s.trimGroups(ctx); err != nil {
		return err
	}
	if err := s.sweepRevocations(ctx); err != nil {
		return err
	}
	if f, ok := s.cfg.Fanout.(interface {
		Trim(context.Context, time.Time) error
	}); ok {
		if err := f.Trim(ctx, s.now()); err != nil {
			return err
		}
	}
	s.rates.sweep(s.now())
	s.activations.sweep(s.now())
	if err := s.sweepAdminNonces(ctx); err != nil {
		return err
	}
	if err := s.sweepPairings(ctx); err != nil {
		return err
	}
	if _, err := s.st.SweepBlobs(ctx, s.now()); err != nil {
		return fmt.Errorf("sweeping blobs: %w", err)
	}
	if err := s.sweepBlobUsage(ctx); err != nil {
		return err
	}
	return s.sweepEscrowBlobs(ctx)
}

// RootPublicKey returns the network root public key.
func (s *Server) RootPublicKey() identity.RootPublicKey { return s.rootPub }
