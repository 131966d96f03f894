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

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	p, err := start(ctx, args, getenv, stdout)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// start reads the configuration, builds the validator (validator.Build)
// and binds its addresses.
func start(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (*lifecycle.Process, error) {
	cfg, err := validator.ParseConfig(args, getenv, stdout)
	if err != nil {
		return nil, err
	}
	return lifecycle.StartService(ctx, "validator", cfg.Common, stdout, func(ctx context.Context, env lifecycle.Env) (lifecycle.Parts, error) {
		return validator.Build(ctx, cfg, env)
	})
}
