package ingest

import (
	"context"
	"time"

	"github.com/notatcompany/notatcompany/services/ingest/console"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/deadletters"
	"github.com/notatcompany/notatcompany/services/shared/evaluations"
	"github.com/notatcompany/notatcompany/services/shared/httpserver"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
)

// SecretPollInterval is how often secret files are read again; the
// kubelet itself takes up to a minute or so to update a mounted Secret.
const SecretPollInterval = 5 * time.Second

// Build is the composition root of ingest, for its own process and the
// devstack alike: the admin, sync-status and dead letter readers and the publisher on JetStream, the
// public webhook API on cfg.HTTPAddr, and the worker that rereads mounted
// secret files.
func Build(ctx context.Context, cfg Config, env lifecycle.Env) (lifecycle.Parts, error) {
	admin, err := orgs.NewReader(ctx, env.JS)
	if err != nil {
		return lifecycle.Parts{}, err
	}
	jobs, err := syncjobs.NewReader(ctx, env.JS)
	if err != nil {
		return lifecycle.Parts{}, err
	}
	explain, err := evaluations.NewReader(ctx, env.JS)
	if err != nil {
		return lifecycle.Parts{}, err
	}
	svc := New(cfg, bus.NewPublisher(env.JS, cfg.PublishTimeout), admin, jobs, env.Log, env.Registerer)
	svc.SetExplainReader(explain)
	if svc.deadLetters, err = deadletters.New(ctx, env.JS, cfg.PublishTimeout, env.Log); err != nil {
		return lifecycle.Parts{}, err
	}
	handler, err := svc.WithConsole(svc.Routes(), console.Options{Orgs: admin, Sync: jobs})
	if err != nil {
		return lifecycle.Parts{}, err
	}
	public, err := httpserver.Listen(cfg.HTTPAddr, handler)
	if err != nil {
		return lifecycle.Parts{}, err
	}
	rotate := func(ctx context.Context) error { return svc.WatchSecrets(ctx, SecretPollInterval) }
	return lifecycle.Parts{Public: []*httpserver.Server{public}, Workers: []func(context.Context) error{rotate}}, nil
}
