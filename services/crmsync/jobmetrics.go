package crmsync

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
)

// jobCollector reports each organization's sync job as it is stored, read
// at scrape time: a counter kept in process memory would forget the last
// good sweep on every restart, and an alert on "no sweep for a day and a
// half" would then never fire for a writer that restarts often. The label
// org is bounded by the organizations the deployment serves.
type jobCollector struct {
	kv      jetstream.KeyValue
	timeout time.Duration
}

var (
	lastSuccessDesc = prometheus.NewDesc("nac_sync_last_success_timestamp_seconds",
		"When the organization's last sync job (back-fill or sweep) finished without error, as a Unix time.", []string{"org"}, nil)
	lastFailedDesc = prometheus.NewDesc("nac_sync_last_job_failed",
		"1 when the organization's latest sync job failed, else 0.", []string{"org", "kind"}, nil)
)

func (c jobCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lastSuccessDesc
	ch <- lastFailedDesc
}

func (c jobCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	keys, err := c.kv.ListKeys(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(lastSuccessDesc, err)
		return
	}
	for key := range keys.Keys() {
		st, _, found, err := syncjobs.Get(ctx, c.kv, key)
		if err != nil || !found {
			continue
		}
		if st.LastOKAt > 0 {
			send(ch, lastSuccessDesc, float64(st.LastOKAt)/1000, key)
		}
		if st.State == syncjobs.StateDone || st.State == syncjobs.StateFailed {
			failed := 0.0
			if st.State == syncjobs.StateFailed {
				failed = 1
			}
			send(ch, lastFailedDesc, failed, key, st.Kind)
		}
	}
}

func send(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}
