// Command ingest serves the webhook endpoints of notatcompany and publishes
// what it receives to JetStream.
package main

import (
	"context"
	"io"
	"time"

	"github.com/notatcompany/notatcompany/services/ingest"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/httpserver"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
)

func main() { lifecycle.Main("ingest", run) }

// secretPollInterval is how often secret files are read again; the kubelet
// itself takes up to a minute or so to update a mounted Secret.
const secretPollInterval = 5 * time.Second

// run is the composition root of ingest: it builds every concrete adapter
// and hands the service only what it needs.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := ingest.ParseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	return lifecycle.Serve(ctx, "ingest", cfg.Common, stdout, func(ctx context.Context, env lifecycle.Env) (lifecycle.Parts, error) {
		admin, err := orgs.NewReader(ctx, env.JS)
		if err != nil {
			return lifecycle.Parts{}, err
		}
		jobs, err := syncjobs.NewReader(ctx, env.JS)
		if err != nil {
			return lifecycle.Parts{}, err
		}
		svc := ingest.New(cfg, bus.NewPublisher(env.JS, cfg.PublishTimeout), env.Log, env.Registerer, ingest.WithAdmin(admin),
			ingest.WithSyncStatus(jobs))
		public, err := httpserver.Listen(cfg.HTTPAddr, svc.Routes())
		rotate := func(ctx context.Context) error { return svc.WatchSecrets(ctx, secretPollInterval) }
		return lifecycle.Parts{Public: []*httpserver.Server{public}, Workers: []func(context.Context) error{rotate}}, err
	})
}
