package writer

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	writes  *prometheus.CounterVec
	latency prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nac_writer_writes_total",
			Help: "Decisions handled, by outcome (written, would_write, obsolete, skipped, failed, retried) and HTTP status class.",
		}, []string{"outcome", "status_class"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nac_writer_write_duration_seconds",
			Help:    "Latency of one Dataverse write request.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
	}
	reg.MustRegister(m.writes, m.latency)
	return m
}
