package writer

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the writer's metrics.
type Metrics struct {
	writes       *prometheus.CounterVec
	latency      prometheus.Histogram
	batchSize    prometheus.Histogram
	throttled    *prometheus.CounterVec
	throttleWait prometheus.Histogram
	superseded   prometheus.Counter
	tokens       prometheus.Counter
	failures     *prometheus.CounterVec
	backlog      *backlog
}

// NewMetrics registers the writer's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nac_writer_writes_total",
			Help: "Decisions handled, by outcome (written, would_write, obsolete, skipped, superseded, disabled, failed, retried, held) and HTTP status class.",
		}, []string{"outcome", "status_class"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nac_writer_write_duration_seconds",
			Help:    "Latency of one Dataverse write request (a PATCH or a $batch).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nac_writer_batch_operations",
			Help:    "Operations per Dataverse write request.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nac_writer_throttled_total",
			Help: "Writes held back, by reason: retry_after (Dataverse answered 429, or another replica saw one), the budget's limit they waited for (requests, execution_time, concurrency), or budget (the handling ended while waiting).",
		}, []string{"reason"}),
		throttleWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nac_writer_throttle_wait_seconds",
			Help:    "Time a write request waited for the budget (requests, execution time and concurrency).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		superseded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nac_writer_superseded_total",
			Help: "Decisions not written because a later one for the same contact came along.",
		}),
		tokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nac_writer_token_fetches_total",
			Help: "Access tokens fetched from the identity provider.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nac_writer_failures_total",
			Help: "Decisions not written on a delivery, by class: throttled, lease_held, server_error, auth, token, timeout, network, jetstream (retried or held), bad_request, invalid (set aside), not_found (obsolete).",
		}, []string{"class"}),
		backlog: newBacklog(),
	}
	reg.MustRegister(m.writes, m.latency, m.batchSize, m.throttled, m.throttleWait, m.superseded, m.tokens, m.failures, m.backlog)
	return m
}
