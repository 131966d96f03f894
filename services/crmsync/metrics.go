package crmsync

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	rows      *prometheus.CounterVec
	pages     *prometheus.CounterVec
	published *prometheus.CounterVec
	resyncs   *prometheus.CounterVec
	jobs      *prometheus.CounterVec
	readBacks *prometheus.CounterVec
	drift     *prometheus.CounterVec
	lagWaits  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nac_sync_rows_total",
			Help: "Rows (and deletes) read from the Web API by back-fills and sweeps, by table and mode (delta, full)."}, []string{"table", "mode"}),
		pages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nac_sync_pages_total",
			Help: "Pages read from the Web API by back-fills and sweeps, by table."}, []string{"table"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nac_sync_events_published_total",
			Help: "CRM changes the sync workers fed into the pipeline, by table."}, []string{"table"}),
		resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nac_sync_resync_total",
			Help: "Full re-reads instead of a delta read, by table and reason (token_expired, untracked, no_link)."}, []string{"table", "reason"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nac_sync_jobs_total",
			Help: "Sync jobs finished, by kind and outcome (done, failed)."}, []string{"kind", "outcome"}),
		readBacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nac_sync_read_backs_total",
			Help: "Rows read back for webhooks that came without columns, by outcome (read, deleted, no_target)."}, []string{"outcome"}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nac_sync_drift_total",
			Help: "Flag columns that differ from our last decision, by kind (lost_write, person_override) and action."}, []string{"kind", "action"}),
		lagWaits: prometheus.NewCounter(prometheus.CounterOpts{Name: "nac_sync_lag_waits_total",
			Help: "Times a read waited for the validator to catch up, so live webhooks are not held back."}),
	}
	reg.MustRegister(m.rows, m.pages, m.published, m.resyncs, m.jobs, m.readBacks, m.drift, m.lagWaits)
	return m
}
