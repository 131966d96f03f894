package writer

import (
	"context"
	"os"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/crmsync"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// SyncWorkers are the back-fill, sweep and read-back workers, run in the
// writer's process: they read through the writer's clients and spend the
// same budget as its writes, one per environment and application user.
func (s *Service) SyncWorkers(ctx context.Context, js jetstream.JetStream, reg prometheus.Registerer) ([]func(context.Context) error, error) {
	// The owner names this replica in the job claims: the host and process
	// for a person reading them, and a unique part, because replicas may
	// share a process (the devstack runs two writers in one).
	host, _ := os.Hostname()
	return crmsync.Workers(ctx, s.cfg.Sync, crmsync.Deps{
		JS: js, Targets: s.syncTarget, Owner: host + "/" + strconv.Itoa(os.Getpid()) + "/" + nuid.Next(),
		Log: s.log.With("worker", "sync"), Registerer: reg, BusMetrics: s.settler.Metrics,
	})
}

// syncTarget is an organization's environment for reads; nil in a dry run
// or while the organization's target is disabled.
func (s *Service) syncTarget(org string) *crmsync.Target {
	t := s.targets.For(org)
	client, ok := t.Dataverse.(*dataverse.Client)
	if !ok || t.Disabled {
		return nil
	}
	return &crmsync.Target{Reader: client, Acquire: func(ctx context.Context, n int) (func(), error) {
		if t.Throttle == nil {
			return func() {}, nil
		}
		release, _, err := t.Throttle.Acquire(ctx, n)
		return release, err
	}}
}
