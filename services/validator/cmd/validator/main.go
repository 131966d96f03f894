// Command validator keeps the materialized state and decides, contact by
// contact, whether the person is still at the company.
package main

import (
	"context"
	"io"

	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
	"github.com/notatcompany/notatcompany/services/validator"
)

func main() { lifecycle.Main("validator", run) }

// run is the composition root of the validator.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := validator.ParseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	return lifecycle.Serve(ctx, "validator", cfg.Common, stdout, func(ctx context.Context, env lifecycle.Env) (lifecycle.Parts, error) {
		workers, err := validator.Workers(ctx, cfg, env.JS, env.Log, env.Registerer)
		return lifecycle.Parts{Workers: workers}, err
	})
}
