package validator

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// Workers wires the validator to its durable consumers and returns the
// loops to run; each stops pulling when its context ends and finishes what
// it holds. js must be on the default topology, set up by bus.Declare.
func Workers(ctx context.Context, cfg Config, js jetstream.JetStream, log *slog.Logger, reg prometheus.Registerer) ([]func(context.Context) error, error) {
	return workers(ctx, cfg, bus.DefaultOptions(), js, log, reg)
}

// workers is Workers on topo, the topology bus.Declare set up: its retry
// policies settle the messages.
func workers(ctx context.Context, cfg Config, topo bus.Options, js jetstream.JetStream, log *slog.Logger, reg prometheus.Registerer) ([]func(context.Context) error, error) {
	svc, err := Open(ctx, cfg, js, log, reg)
	if err != nil {
		return nil, err
	}
	pub := bus.NewPublisher(js, 5*time.Second)
	consumerMetrics := bus.NewMetrics(reg)
	var loops []func(context.Context) error
	for _, c := range []struct {
		stream, name string
		handler      bus.Handler
	}{
		{bus.StreamCRM, bus.ConsumerValidatorCRM, svc.HandleCRM},
		{bus.StreamProfile, bus.ConsumerValidatorProfile, svc.HandleProfile},
		{bus.StreamAdmin, bus.ConsumerValidatorAdmin, svc.HandleAdmin},
		{bus.StreamWork, bus.ConsumerValidatorWork, svc.HandleWork},
	} {
		cons, err := js.Consumer(ctx, c.stream, c.name)
		if err != nil {
			return nil, fmt.Errorf("bind consumer %s: %w", c.name, err)
		}
		r := &bus.Runner{
			Name: c.name, Consumer: cons, Handler: c.handler, Publisher: pub,
			Workers: cfg.Workers, Retry: topo.RetryFor(c.name), HandleTimeout: cfg.HandleTimeout,
			Logger: log, Metrics: consumerMetrics,
		}
		loops = append(loops, r.Run)
	}
	return loops, nil
}

// Open builds the validator on JetStream: its state, the profile events it
// may purge, the decision stream and a publisher.
func Open(ctx context.Context, cfg Config, js jetstream.JetStream, log *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	store, err := state.Open(ctx, js, cfg.Columns())
	if err != nil {
		return nil, err
	}
	profiles, err := js.Stream(ctx, bus.StreamProfile)
	if err != nil {
		return nil, fmt.Errorf("bind stream %s: %w", bus.StreamProfile, err)
	}
	dead, err := js.Stream(ctx, bus.StreamDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("bind stream %s: %w", bus.StreamDeadLetter, err)
	}
	decisions, err := js.Stream(ctx, bus.StreamDecisions)
	if err != nil {
		return nil, fmt.Errorf("bind stream %s: %w", bus.StreamDecisions, err)
	}
	svc := New(cfg, store, profileStream{profiles: profiles, dead: dead}, streamDecisions{js: js, stream: decisions},
		bus.NewPublisher(js, 5*time.Second), log, reg)
	if svc.evals, err = openEvaluations(ctx, js, reg); err != nil {
		return nil, err
	}
	return svc, nil
}
