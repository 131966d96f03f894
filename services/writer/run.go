package writer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
	"github.com/notatcompany/notatcompany/services/shared/memberkeys"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
)

// Build is the composition root of the writer, for its own process and
// the devstack alike: the writer wired to its durable consumer and to the
// Dataverse environment of each organization, settling by the declared
// topology's retry policy of the writer. Any number of replicas may run it
// at once.
func Build(ctx context.Context, cfg Config, env lifecycle.Env) (lifecycle.Parts, error) {
	svc, cons, err := Open(ctx, cfg, env.Topology, env.JS, env.Log, env.Registerer)
	if err != nil {
		return lifecycle.Parts{}, err
	}
	syncs, err := svc.SyncWorkers(ctx, env.JS, env.Registerer)
	if err != nil {
		return lifecycle.Parts{}, err
	}
	return lifecycle.Parts{Workers: append([]func(context.Context) error{svc.Runner(cons).Run}, syncs...)}, nil
}

// Open makes the writer on JetStream, its targets built first, and binds
// its consumer. topo is the topology bus.Declare set up.
func Open(ctx context.Context, cfg Config, topo bus.Options, js jetstream.JetStream, log *slog.Logger, reg prometheus.Registerer) (*Service, jetstream.Consumer, error) {
	m := NewMetrics(reg)
	budgets, err := js.KeyValue(ctx, bus.BucketBudgets)
	if err != nil {
		return nil, nil, fmt.Errorf("bind bucket %s: %w", bus.BucketBudgets, err)
	}
	targets, err := BuildTargets(ctx, cfg, m, log, budgets)
	if err != nil {
		return nil, nil, err
	}
	switches, err := orgs.NewReader(ctx, js)
	if err != nil {
		return nil, nil, err
	}
	decisions, err := js.Stream(ctx, bus.StreamDecisions)
	if err != nil {
		return nil, nil, fmt.Errorf("bind stream %s: %w", bus.StreamDecisions, err)
	}
	host, _ := os.Hostname()
	leases, err := NewKVLeases(ctx, js, cfg.LeaseTTL, host+"/"+strconv.Itoa(os.Getpid()))
	if err != nil {
		return nil, nil, err
	}
	cons, err := js.Consumer(ctx, bus.StreamDecisions, bus.ConsumerWriter)
	if err != nil {
		return nil, nil, fmt.Errorf("bind consumer %s: %w", bus.ConsumerWriter, err)
	}
	var members MemberOpener
	if !cfg.Evidence.Off {
		if members, err = memberkeys.Bind(ctx, js); err != nil {
			return nil, nil, err
		}
	}
	pub := bus.NewPublisher(js, 5*time.Second)
	settler := &bus.Settler{Consumer: bus.ConsumerWriter, Retry: topo.RetryFor(bus.ConsumerWriter), Publisher: pub,
		Metrics: bus.NewMetrics(reg), Logger: log}
	svc := New(cfg, Deps{Targets: targets, Switch: switches, Decisions: streamDecisions{decisions}, Leases: leases,
		Publisher: pub, Settler: settler, Members: members}, log, m)
	return svc, cons, nil
}

// Runner is the batch runner of the writer on cons.
func (s *Service) Runner(cons jetstream.Consumer) *bus.BatchRunner {
	return &bus.BatchRunner{
		Name: bus.ConsumerWriter, Consumer: cons, Handle: s.HandleBatch, Settler: s.settler,
		Size: s.cfg.BatchSize, Linger: s.cfg.Linger, Workers: s.cfg.Workers, HandleTimeout: s.cfg.HandleTimeout, Logger: s.log,
	}
}

// BuildTargets makes a client and a throttle per configured organization,
// and the default for all others. The request budget of an environment
// and application user is kept in budgets, shared by every replica; nil
// keeps it in this process.
func BuildTargets(ctx context.Context, cfg Config, m *Metrics, log *slog.Logger, budgets jetstream.KeyValue) (*Targets, error) {
	// The replica's name in the budgets' holds: unique, as replicas may
	// share a process (the devstack).
	host, _ := os.Hostname()
	owner := host + "/" + strconv.Itoa(os.Getpid()) + "/" + nuid.Next()
	build := func(tc TargetConfig) (*Target, error) {
		t := &Target{Disabled: tc.Disabled}
		if tc.DryRun() || tc.Disabled {
			return t, nil
		}
		if budgets != nil {
			// A request in progress of a replica that died stops counting
			// once no request can be.
			t.Throttle = NewSharedThrottle(cfg.Budget, NewKVLedger(budgets, tc.URL, tc.ClientID, owner, cfg.Budget, cfg.HandleTimeout+cfg.RequestTimeout))
		} else {
			t.Throttle = NewThrottle(cfg.Budget)
		}
		// Token fetches must outlive shutdown's start: in-flight writes finish.
		client, err := dataverse.New(context.WithoutCancel(ctx), tc.URL, tc.credentials(), dataverse.Options{
			Timeout:      cfg.RequestTimeout,
			OnTokenFetch: m.tokens.Inc,
			OnRateLimit:  t.Throttle.Observe,
		})
		if err != nil {
			return nil, err
		}
		t.Dataverse = client
		return t, nil
	}
	def, err := build(cfg.Default)
	if err != nil {
		return nil, err
	}
	if def.Dataverse == nil {
		log.Warn("dry run for organizations without a target: no NAC_DATAVERSE_URL, decisions are recorded as would_write")
	}
	targets := &Targets{ByOrg: map[string]*Target{}, Default: def}
	for _, tc := range cfg.Targets {
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
