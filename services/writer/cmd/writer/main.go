// Command writer writes the validator's decisions into Dynamics 365.
package main

import (
	"context"
	"io"

	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
	"github.com/notatcompany/notatcompany/services/writer"
)

func main() { lifecycle.Main("writer", run) }

// run is the composition root of the writer.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := writer.ParseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	return lifecycle.Serve(ctx, "writer", cfg.Common, stdout, func(ctx context.Context, env lifecycle.Env) (lifecycle.Parts, error) {
		workers, err := writer.Workers(ctx, cfg, env.Topology, env.JS, env.Log, env.Registerer)
		return lifecycle.Parts{Workers: workers}, err
	})
}
