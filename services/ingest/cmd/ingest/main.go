// Command ingest serves the webhook endpoints of notatcompany and publishes
// what it receives to JetStream.
package main

import (
	"context"
	"io"

	"github.com/notatcompany/notatcompany/services/ingest"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
)

func main() { lifecycle.Main("ingest", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	p, err := start(ctx, args, getenv, stdout)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// start reads the configuration, builds ingest (ingest.Build) and binds
// its addresses.
func start(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (*lifecycle.Process, error) {
	cfg, err := ingest.ParseConfig(args, getenv, stdout)
	if err != nil {
		return nil, err
	}
	return lifecycle.StartService(ctx, "ingest", cfg.Common, stdout, func(ctx context.Context, env lifecycle.Env) (lifecycle.Parts, error) {
		return ingest.Build(ctx, cfg, env)
	})
}
