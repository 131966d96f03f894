package validator

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	events      *prometheus.CounterVec
	evaluations *prometheus.CounterVec
	decisions   *prometheus.CounterVec
	fanout      *prometheus.HistogramVec
	conflicts   prometheus.Counter
	corrections prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nac_validator_events_total",
			Help: "Events applied to the state, by kind and outcome (applied, unchanged, not_used).",
		}, []string{"kind", "outcome"}),
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nac_validator_evaluations_total",
			Help: "Contact evaluations, by the kind of event that caused them.",
		}, []string{"kind"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nac_validator_decisions_total",
			Help: "Decisions published, by flag value and rule.",
		}, []string{"value", "reason"}),
		fanout: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nac_validator_fanout_contacts",
			Help:    "Contacts an event affects, by kind of event.",
			Buckets: []float64{0, 1, 2, 5, 10, 50, 200, 1000, 10000, 100000},
		}, []string{"kind"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nac_validator_decision_conflicts_total",
			Help: "Decisions another replica published first; decided again.",
		}),
		corrections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nac_validator_decision_corrections_total",
			Help: "Decisions corrected right after publishing because the state changed meanwhile.",
		}),
	}
	reg.MustRegister(m.events, m.evaluations, m.decisions, m.fanout, m.conflicts, m.corrections)
	return m
}
