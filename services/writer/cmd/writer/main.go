// Command writer writes the validator's decisions into Dynamics 365.
package main

import (
	"context"
	"io"

	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
	"github.com/notatcompany/notatcompany/services/writer"
)

func main() { lifecycle.Main("writer", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	p, err := start(ctx, args, getenv, stdout)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// start reads the configuration, builds the writer (writer.Build) and
// binds its addresses.
func start(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (*lifecycle.Process, error) {
	cfg, err := writer.ParseConfig(args, getenv, stdout)
	if err != nil {
		return nil, err
	}
	return lifecycle.StartService(ctx, "writer", cfg.Common, stdout, func(ctx context.Context, env lifecycle.Env) (lifecycle.Parts, error) {
		return writer.Build(ctx, cfg, env)
	})
}
