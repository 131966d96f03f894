package writer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
)

// Workers wires the writer to its durable consumer and to the Dataverse
// environment of each organization, and returns the loop to run.
func Workers(ctx context.Context, cfg Config, js jetstream.JetStream, log *slog.Logger, reg prometheus.Registerer) ([]func(context.Context) error, error) {
	pub := bus.NewPublisher(js, 5*time.Second)
	svc := New(cfg, &Targets{ByOrg: map[string]*Target{}}, pub, log, reg)
	targets, err := svc.buildTargets(ctx)
	if err != nil {
		return nil, err
	}
	svc.targets = targets
	if svc.switches, err = orgs.NewReader(ctx, js); err != nil {
		return nil, err
	}
	decisions, err := js.Stream(ctx, bus.StreamDecisions)
	if err != nil {
		return nil, fmt.Errorf("bind stream %s: %w", bus.StreamDecisions, err)
	}
	svc.decisions = streamDecisions{decisions}
	cons, err := js.Consumer(ctx, bus.StreamDecisions, bus.ConsumerWriter)
	if err != nil {
		return nil, fmt.Errorf("bind consumer %s: %w", bus.ConsumerWriter, err)
	}
	r := &bus.BatchRunner{
		Name: bus.ConsumerWriter, Consumer: cons, Handle: svc.HandleBatch,
		Size: cfg.BatchSize, Linger: cfg.Linger, Workers: cfg.Workers, HandleTimeout: cfg.HandleTimeout, Logger: log,
	}
	return []func(context.Context) error{r.Run}, nil
}

// buildTargets makes a client and a throttle per configured organization,
// and the default for all others.
func (s *Service) buildTargets(ctx context.Context) (*Targets, error) {
	build := func(tc TargetConfig) (*Target, error) {
		t := &Target{Disabled: tc.Disabled, Throttle: NewThrottle(s.cfg.Budget, s.cfg.BatchSize)}
		if tc.DryRun() || tc.Disabled {
			return t, nil
		}
		// Token fetches must outlive shutdown's start: in-flight writes finish.
		client, err := dataverse.New(context.WithoutCancel(ctx), tc.URL, tc.credentials(), dataverse.Options{
			Timeout:      s.cfg.RequestTimeout,
			OnTokenFetch: s.metrics.tokens.Inc,
			OnRateLimit:  t.Throttle.Observe,
		})
		if err != nil {
			return nil, err
		}
		t.Dataverse = client
		return t, nil
	}
	def, err := build(s.cfg.Default)
	if err != nil {
		return nil, err
	}
	if def.Dataverse == nil {
		s.log.Warn("dry run for organizations without a target: no NAC_DATAVERSE_URL, decisions are recorded as would_write")
	}
	targets := &Targets{ByOrg: map[string]*Target{}, Default: def}
	for _, tc := range s.cfg.Targets {
		if targets.ByOrg[tc.OrganizationID], err = build(tc); err != nil {
			return nil, fmt.Errorf("target %s: %w", tc.OrganizationID, err)
		}
	}
	return targets, nil
}

// streamDecisions is the NAC_DECISIONS stream as Decisions.
type streamDecisions struct{ stream jetstream.Stream }

func (d streamDecisions) LastSequence(ctx context.Context, org, contact string) (uint64, error) {
	raw, err := d.stream.GetLastMsgForSubject(ctx, bus.DecisionSubject(org, contact))
	if err != nil {
		return 0, err
	}
	return raw.Sequence, nil
}
