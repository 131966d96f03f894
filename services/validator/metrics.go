package validator

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	events      *prometheus.CounterVec
	evaluations *prometheus.CounterVec
	decisions   *prometheus.CounterVec
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
	}
	reg.MustRegister(m.events, m.evaluations, m.decisions)
	return m
}
