package ingest

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests  *prometheus.CounterVec
	publish   *prometheus.HistogramVec
	bodyBytes *prometheus.HistogramVec
}

// knownOperations bounds the operation label; anything else is "other".
var knownOperations = map[string]bool{
	"Create": true, "Update": true, "Delete": true, "SetState": true, "SetStateDynamicEntity": true,
	"Assign": true, "Associate": true, "Disassociate": true, "Merge": true,
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nac_ingest_requests_total",
			Help: "Webhook requests by route (the webhook endpoint), kind (table or event type), operation and outcome.",
		}, []string{"route", "kind", "operation", "outcome"}),
		publish: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nac_ingest_publish_duration_seconds",
			Help:    "Time from publish to JetStream acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"route"}),
		bodyBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nac_ingest_body_bytes",
			Help:    "Size of accepted-for-parsing webhook bodies.",
			Buckets: prometheus.ExponentialBuckets(512, 2, 14),
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.publish, m.bodyBytes)
	return m
}

func (m *metrics) request(endpoint, kind, operation, outcome string) {
	if operation != "" && !knownOperations[operation] {
		operation = "other"
	}
	m.requests.WithLabelValues(endpoint, kind, operation, outcome).Inc()
}
