package server

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus metrics.
type metrics struct {
	connections prometheus.Gauge
	authed      prometheus.Gauge
	messages    *prometheus.CounterVec   // by kind: application, commit
	requests    *prometheus.HistogramVec // latency by request type
	errors      *prometheus.CounterVec   // by code
	storeCommit prometheus.Histogram     // durable group log appends
	// appendConflicts counts conditional group-log appends that found
	// another entry first (another server's, or a commit of this one).
	appendConflicts prometheus.Counter
	// appendSkips counts those after which the writer appended again
	// without reading the other's entries (no commit among them).
	appendSkips prometheus.Counter
	// catchUpReads counts catch-ups that read every entry after the view
	// (the commit log could not tell).
	catchUpReads prometheus.Counter
	pushes       prometheus.Counter
	slowClosures prometheus.Counter
	// Before authentication.
	preauthRefused     prometheus.Counter
	activationFailures *prometheus.CounterVec // by code
	activationsLimited prometheus.Counter

	// Children looked up once (read-only): messages' two counters, and
	// requests' histogram of each frame type.
	messagesApp, messagesCommit prometheus.Counter
	requestsBy                  map[string]prometheus.Observer
}

// observeRequest records the handling time of a request of a type.
func (m *metrics) observeRequest(kind string, d time.Duration) {
	o := m.requestsBy[kind]
	if o == nil {
		o = m.requests.WithLabelValues(kind)
	}
	o.Observe(d.Seconds())
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "anom_connections", Help: "Open WebSocket connections."}),
		authed:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "anom_authenticated_connections", Help: "Authenticated WebSocket connections."}),
		messages:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "anom_group_messages_total", Help: "Group messages accepted, by kind."}, []string{"kind"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "anom_request_seconds", Help: "Request handling latency, by request type.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "anom_request_errors_total", Help: "Requests answered with an error, by code."}, []string{"code"}),
		storeCommit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "anom_store_commit_seconds", Help: "Time for a group message to become durable in the store.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		appendConflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "anom_group_append_conflicts_total",
			Help: "Conditional appends to a group log that found another entry first (another server's, or a commit) and were judged again."}),
		appendSkips: prometheus.NewCounter(prometheus.CounterOpts{Name: "anom_group_append_skips_total",
			Help: "Lost group-log appends retried without reading the entries that came first, the commit log showing no commit among them."}),
		catchUpReads: prometheus.NewCounter(prometheus.CounterOpts{Name: "anom_group_catch_up_reads_total",
			Help: "Catch-ups with a group log that read every entry after the server's view, the commit log not telling (commits older than commit logs, or trimmed)."}),
		pushes:       prometheus.NewCounter(prometheus.CounterOpts{Name: "anom_pushes_total", Help: "Frames pushed to devices."}),
		slowClosures: prometheus.NewCounter(prometheus.CounterOpts{Name: "anom_slow_consumer_closures_total", Help: "Connections closed because their send queue was full."}),
		preauthRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "anom_unauthenticated_refused_total",
			Help: "WebSocket upgrades refused because too many sessions (in all, or from the source address) had not authenticated."}),
		activationFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "anom_activation_failures_total",
			Help: "Activations that failed through the client's fault (counted against its source address), by code."}, []string{"code"}),
		activationsLimited: prometheus.NewCounter(prometheus.CounterOpts{Name: "anom_activations_rate_limited_total",
			Help: "Activations refused unseen because their source address had failed too often."}),
	}
	m.requestsBy = map[string]prometheus.Observer{}
	fields := bodyOneof.Fields()
	for i := range fields.Len() {
		name := string(fields.Get(i).Name())
		m.requestsBy[name] = m.requests.WithLabelValues(name)
	}
	m.messagesApp, m.messagesCommit = m.messages.WithLabelValues("application"), m.messages.WithLabelValues("commit")
	for _, c := range []prometheus.Collector{m.connections, m.authed, m.messages, m.requests, m.errors, m.storeCommit, m.appendConflicts, m.appendSkips, m.catchUpReads, m.pushes, m.slowClosures, m.preauthRefused, m.activationFailures, m.activationsLimited} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return m, nil
}
